"""Plain-language questions end to end: a signed DM or @mention event, read as a `/cro`
command, run through the router as that person, answered with how it was read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from crobot.services import milestones
from crobot.storage.models import Milestone
from tests.approval_support import bot_for, send, send_event, wait_until
from tests.bot_server import RunningBot
from tests.conftest import APEX_PM, APPROVER, C_SPONSOR, TODAY, World
from tests.dbstate import snapshot
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls


@pytest.fixture
def bot(world: World, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    with world.db.write() as s:
        for name, org, days in (("APEXLATE", "Apex CRO", -3), ("LABLATE", "CentraLab", -3)):
            milestones.add(
                s,
                world.actor(APPROVER),
                today=TODAY - timedelta(days=10),
                study="ONC-301",
                name=name,
                planned=TODAY + timedelta(days=days),
                org=org,
            )
    with bot_for(world.db, fake_slack) as running:
        yield running


def _answers(fake: FakeSlack, method: str, count: int = 1) -> list[dict[str, Any]]:
    calls = wait_until(lambda: c if len(c := fake.calls_to(method)) >= count else None)
    return [c.params for c in calls]


def test_a_dm_question_is_answered_with_how_it_was_read(
    bot: RunningBot, fake_slack: FakeSlack, world: World
) -> None:
    before = snapshot(world.db)
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": "DAPPROVER",
        "user": APPROVER,
        "text": "what's late at Apex?",
        "ts": "1.0001",
    }
    assert send_event(bot, event)[0] == 200
    (answer,) = _answers(fake_slack, "chat.postMessage")
    shown = json.dumps(answer["blocks"], ensure_ascii=False)
    assert answer["channel"] == "DAPPROVER"
    assert "APEXLATE" in shown and "LABLATE" not in shown  # read as org:Apex CRO
    assert "I read this as" in shown and "milestone list ONC-301 --late" in shown
    assert validate_calls(fake_slack.calls_to("chat.postMessage")) == 1
    assert snapshot(world.db) == before  # a question writes nothing


def test_a_mention_is_answered_privately_with_the_askers_view(
    bot: RunningBot, fake_slack: FakeSlack, world: World
) -> None:
    event = {
        "type": "app_mention",
        "channel": C_SPONSOR,
        "user": APEX_PM,
        "text": "<@UBOT> what is late on ONC-301?",
        "ts": "1.0002",
    }
    assert send_event(bot, event)[0] == 200
    (answer,) = _answers(fake_slack, "chat.postEphemeral")
    shown = json.dumps(answer["blocks"], ensure_ascii=False)
    assert answer["user"] == APEX_PM and answer["channel"] == C_SPONSOR
    # Apex's own view, even in the sponsor's channel: never the lab's milestone.
    assert "APEXLATE" in shown and "LABLATE" not in shown
    assert fake_slack.calls_to("chat.postMessage") == []


def test_an_unsure_question_offers_two_readings_and_a_click_runs_one(
    bot: RunningBot, fake_slack: FakeSlack, world: World
) -> None:
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": "DAPPROVER",
        "user": APPROVER,
        "text": "milestones slipping or coming up",
        "ts": "1.0003",
    }
    assert send_event(bot, event)[0] == 200
    (answer,) = _answers(fake_slack, "chat.postMessage")
    buttons = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert len(buttons) == 2 and all(b["value"].startswith("milestone list") for b in buttons)
    late = next(b for b in buttons if "--late" in b["value"])
    payload = {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "fake"},
        "user": {"id": APPROVER, "username": "approver", "team_id": "T1"},
        "api_app_id": "A1",
        "token": "legacy-unused",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "channel": {"id": "DAPPROVER", "name": "directmessage"},
        "container": {"type": "message", "message_ts": "9.9", "channel_id": "DAPPROVER"},
        "message": {"type": "message", "ts": "9.9", "text": "", "blocks": answer["blocks"]},
        "response_url": fake_slack.base_url.replace("/api/", "/response/q1"),
        "actions": [{**late, "block_id": "b", "action_ts": "1.1"}],
    }
    assert send(bot, payload)[0] == 200
    reply = wait_until(lambda: [c for c in fake_slack.state.calls if "/response/q1" in c.method])
    shown = json.dumps(reply[0].params, ensure_ascii=False)
    assert "APEXLATE" in shown and "I read this as" in shown


def test_a_stranger_gets_no_answer_and_crobots_own_posts_are_not_questions(
    bot: RunningBot, fake_slack: FakeSlack, world: World
) -> None:
    for event in (
        {
            "type": "message",
            "channel_type": "im",
            "channel": "DX",
            "user": "USTRANGE",
            "text": "what's late at Apex?",
            "ts": "1.1",
        },
        {
            "type": "message",
            "channel_type": "im",
            "channel": "DAPPROVER",
            "user": APPROVER,
            "bot_id": "BBOT",
            "text": "what's late at Apex?",
            "ts": "1.2",
        },
        {
            "type": "message",
            "channel_type": "im",
            "channel": "DAPPROVER",
            "user": APPROVER,
            "text": "what's late at Apex?",
            "ts": "1.3",
        },
    ):
        assert send_event(bot, event)[0] == 200
    # The ack function decides, before the HTTP answer, that the first two are not
    # questions (nothing is handed to the lazy listener): only the third is answered.
    (answer,) = _answers(fake_slack, "chat.postMessage")
    assert answer["channel"] == "DAPPROVER"
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    with world.db.read() as s:
        assert s.query(Milestone).count() == 2
