"""Someone crobot does not know gets one answer, how to get access, and nothing else.

Reproduces the finding: `/cro status NOPE` listed every study code ("Known: …") and an
unregistered user could read the shared items of any study.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from crobot.services import actions, milestones
from tests import form_values as form
from tests.approval_support import (
    block_action,
    ephemerals,
    message,
    pending_kpi,
    posted_request,
    send,
    send_event,
    view_submission,
)
from tests.conftest import APEX_PM, C_APEX, C_JOINT, SPONSOR, STRANGER, TODAY, World
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient

COMMAND = f"crobot person add {STRANGER} --team T1"
SHARED = "Shared kick-off QSH"
COMMANDS = [
    "status NOPE",
    "status ONC-301",
    "status",
    "milestone list",
    "milestone list ONC-301",
    "milestone add",  # would open the form
    'milestone add "X" planned:fri',
    "milestone update 1 done",
    "action list",
    "action list mine",
    "action add",
    "action done 1",
    "kpi list",
    "kpi show ONC-301 enrollment",
    "kpi trend enrollment",
    "kpi report",
    "digest preview",
    "digest schedule Mon 09:00",
    "nonsense",
    "milestone",
    'status "unclosed',
]


@pytest.fixture
def seeded(world: World) -> dict[str, int]:
    with world.db.write() as s:
        sponsor = world.actor(SPONSOR)
        ms = milestones.add(
            s,
            sponsor,
            today=TODAY,
            study="ONC-301",
            name=SHARED,
            planned=TODAY + timedelta(days=5),
            shared=True,
        )
        item = actions.add(
            s,
            sponsor,
            today=TODAY,
            study="ONC-301",
            title="Shared action QSA",
            owner_user_id=SPONSOR,
            due=TODAY + timedelta(days=3),
            shared=True,
        )
    return {"milestone": ms.id, "action": item.id}


def _access(text: str) -> bool:
    return "crobot does not know you" in text and COMMAND in text


def _leaks(text: str) -> bool:
    return any(w in text for w in ("ONC-301", SHARED, "QSA", "Known", "Helix", "Apex"))


def test_every_command_but_help_answers_how_to_get_access(
    world: World, seeded: dict[str, int], slash: SlashClient, fake_slack: FakeSlack
) -> None:
    before = snapshot(world.db)
    answers: list[dict[str, Any]] = []
    for channel in (C_JOINT, "D0STRANGE"):
        for text in COMMANDS:
            a = slash.send(text, STRANGER, channel)
            assert _access(a.text), (text, a.text)
            assert not _leaks(a.text), (text, a.text)
            assert not a.in_channel
            answers.append(a.payload)
    assert all(p == answers[0] for p in answers)  # one message, whatever was asked
    assert fake_slack.calls_to("views.open") == []
    assert_unchanged(world.db, before)
    # Help is for everyone.
    for text in ("", "help", "help kpi"):
        a = slash.send(text, STRANGER, C_JOINT)
        assert "/cro" in a.text and not _access(a.text)
    # The same user id registered in another workspace is not this person either.
    a = slash.send("status", APEX_PM, C_APEX, team="T9")
    assert "crobot does not know you" in a.text and "--team T9" in a.text


def test_buttons_forms_and_home_answer_how_to_get_access(
    world: World, seeded: dict[str, int], slash: SlashClient, fake_slack: FakeSlack
) -> None:
    bot = slash.bot
    aid = pending_kpi(world, 12)
    request = message(fake_slack, **posted_request(bot, world, aid))
    before = snapshot(world.db)
    for action in ("approval_approve", "approval_reject"):
        click = block_action(action, aid, user=STRANGER, msg=request)
        assert send(bot, click)[0] == 200
    fake_slack.wait_for("chat.postEphemeral", 2)
    said = ephemerals(fake_slack, STRANGER)
    assert len(said) == 2 and all(_access(t) and not _leaks(t) for t in said)
    assert fake_slack.calls_to("views.open") == []

    values = {
        "study": form.select("ONC-301"),
        "name": form.text("X"),
        "planned": form.day("2026-12-20"),
    }
    status, body = send(
        bot,
        view_submission(
            "modal_milestone_add", values, user=STRANGER, private_metadata='{"channel_id": null}'
        ),
    )
    errors = json.loads(body)["errors"]
    assert status == 200 and "crobot does not know you" in " ".join(errors.values())

    send_event(bot, {"type": "app_home_opened", "user": STRANGER, "tab": "home"})
    done = block_action("home_action_done", seeded["action"], user=STRANGER, msg=None, home=True)
    assert send(bot, done)[0] == 200
    views = fake_slack.wait_for("views.publish", 2)
    for call in views:
        text = json.dumps(call.params["view"])
        assert call.params["user_id"] == STRANGER
        assert _access(text) and not _leaks(text), text
    assert_unchanged(world.db, before, audited={"approval.refused"})  # logged, audited
