"""The overdue reminder's buttons, end to end: the DM the scheduler sends carries Snooze
and Done; a signed click snoozes the clicker's reminders (audited) or marks one done."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select

from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.digests.runner import DigestRunner
from crobot.services import actions
from crobot.services.runtime import Runtime
from crobot.storage.models import ActionItem, ActionStatus, AuditEvent, NudgeSnooze
from tests.approval_support import bot_for, send, wait_until
from tests.conftest import TODAY, World
from tests.digest_helpers import Clock
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls
from tests.slack_requests import new_trigger_id

THURSDAY_9_IST = datetime(2026, 11, 26, 3, 30, tzinfo=UTC)


def _runner(world: World, fake: FakeSlack, clock: Clock) -> DigestRunner:
    client = delivery_client(WebClient(token="xoxb-test", base_url=fake.base_url))
    runtime = Runtime(world.db, now=clock)
    return DigestRunner(runtime, Delivery(runtime, client, pacer=ChannelPacer(0.0)))


def _overdue(world: World) -> list[int]:
    with world.db.write() as s:
        return [
            actions.add(
                s,
                world.actor("UAPEX"),
                today=TODAY,
                allow_past=True,
                study="ONC-301",
                title=title,
                owner_user_id="UAPEX",
                due=date(2026, 11, 20),
            ).id
            for title in ("Send the CRFs", "Close the queries")
        ]


def _click(bot: Any, fake: FakeSlack, msg: dict[str, Any], action: dict[str, Any]) -> None:
    payload = {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "fake"},
        "user": {"id": "UAPEX", "username": "uapex", "team_id": "T1"},
        "api_app_id": "A1",
        "token": "legacy-unused",
        "trigger_id": new_trigger_id(),
        "container": {"type": "message", "message_ts": msg["ts"], "channel_id": msg["channel"]},
        "channel": {"id": msg["channel"], "name": "directmessage"},
        "message": {"type": "message", "ts": msg["ts"], "text": "", "blocks": msg["blocks"]},
        "response_url": fake.base_url.replace("/api/", "/response/nudge"),
        "actions": [{**action, "block_id": "nudge_actions", "action_ts": "1.1"}],
    }
    assert send(bot, payload)[0] == 200


def _replies(fake: FakeSlack, count: int) -> list[dict[str, Any]]:
    calls = wait_until(
        lambda: (
            c
            if len(c := [x for x in fake.state.calls if "/response/nudge" in x.method]) >= count
            else None
        )
    )
    return [c.params for c in calls]


def test_snooze_pauses_the_clickers_reminders_and_done_closes_an_action(
    world: World, fake_slack: FakeSlack
) -> None:
    ids = _overdue(world)
    clock = Clock(THURSDAY_9_IST)
    runner = _runner(world, fake_slack, clock)
    assert [o.state for o in runner.nudges("Asia/Kolkata")] == ["sent"]
    (msg,) = fake_slack.posted("DAPEX")
    assert validate_calls(fake_slack.calls_to("chat.postMessage")) == 1
    elements = next(b for b in msg["blocks"] if b["type"] == "actions")["elements"]
    day, _monday, done = elements
    assert done["type"] == "static_select"
    assert {o["value"] for o in done["options"]} == {str(i) for i in ids}
    with bot_for(world.db, fake_slack) as bot:
        _click(
            bot,
            fake_slack,
            msg,
            {"type": "button", "action_id": day["action_id"], "value": day["value"]},
        )
        (snoozed,) = _replies(fake_slack, 1)
        assert snoozed["replace_original"] and "Snoozed" in json.dumps(snoozed)
        pick = {
            "type": "static_select",
            "action_id": done["action_id"],
            "selected_option": done["options"][0],
        }
        _click(bot, fake_slack, msg, pick)
        closed = _replies(fake_slack, 2)[1]
        assert "done" in json.dumps(closed)
    with world.db.read() as s:
        snooze = s.scalars(select(NudgeSnooze)).one()
        states = {i: s.get_one(ActionItem, i).status for i in ids}
        events = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    # The bot's clock (Thu 26 Nov, 00:35 in Kolkata): one day is Friday.
    assert (snooze.team_id, snooze.user_id, snooze.until) == ("T1", "UAPEX", date(2026, 11, 27))
    assert states == {ids[0]: ActionStatus.DONE, ids[1]: ActionStatus.OPEN}
    assert "nudge.snooze" in events and "action.done" in events
    # Friday 09:00 in Kolkata: snoozed. Monday: the remaining overdue action again.
    clock.set(THURSDAY_9_IST + timedelta(days=1))
    assert runner.nudges("Asia/Kolkata") == []
    clock.set(THURSDAY_9_IST + timedelta(days=4))
    assert [o.state for o in runner.nudges("Asia/Kolkata")] == ["sent"]
    latest = fake_slack.posted("DAPEX")[-1]
    assert "Close the queries" in json.dumps(latest) and "Send the CRFs" not in json.dumps(latest)
