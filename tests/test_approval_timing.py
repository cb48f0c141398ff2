"""Acks stay fast while Slack is slow, a click storm records one decision, decider's zone."""

from __future__ import annotations

import re
import time

from crobot.handlers.user_tz import user_timezone
from crobot.services import directory
from crobot.services.actor import SYSTEM
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState
from tests.approval_support import (
    NOW,
    assert_chain_ok,
    audit_actions,
    block_action,
    bot_for,
    ephemerals,
    message,
    outbox_settled,
    pending_kpi,
    posted_request,
    race,
    send,
    wait_until,
)
from tests.conftest import World
from tests.fake_slack import FakeSlack


def _add_approver(world: World, user: str, tz: str | None) -> None:
    with world.db.write() as s:
        directory.add_person(
            s,
            SYSTEM,
            team_id="T1",
            user_id=user,
            display_name=user.title(),
            org="Helix Pharma",
            role="sponsor_approver",
            timezone=tz,
        )


def test_ack_does_not_wait_for_slack(db: Database, world: World, fake_slack: FakeSlack) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        msg = message(fake_slack, **posted_request(bot, world, aid))
        fake_slack.fail("chat.update", status=200, delay=1.5)  # chat.update takes 1.5 s
        started = time.perf_counter()
        status, _ = send(bot, block_action("approval_approve", aid, user="UAPPROVER", msg=msg))
        acked = time.perf_counter() - started
        assert status == 200
        assert acked < 0.5, f"ack took {acked:.3f}s"
        wait_until(lambda: audit_actions(db, "approval.notify"))


def test_click_storm_records_one_decision(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    _add_approver(world, "UAPPROVER2", "Europe/Berlin")
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        msg = message(fake_slack, **posted_request(bot, world, aid))
        payloads = [
            block_action("approval_approve", aid, user=u, msg=msg)
            for u in ["UAPPROVER", "UAPPROVER2"] * 4
        ]
        results = race(bot, payloads)
        assert results == [200] * len(payloads)

        def total() -> int:
            return len(ephemerals(fake_slack, "UAPPROVER") + ephemerals(fake_slack, "UAPPROVER2"))

        wait_until(lambda: total() == len(payloads) - 1)
        wait_until(lambda: outbox_settled(db, aid))
    approves = audit_actions(db, "approval.approve")
    assert len(approves) == 1
    winner = approves[0].actor.split(":")[1]
    for user in ("UAPPROVER", "UAPPROVER2"):
        assert set(ephemerals(fake_slack, user)) <= {
            f"This request was already approved by <@{winner}>."
        }
    assert len(audit_actions(db, "approval.notify")) == 2  # the DM and Apex's channel, once
    assert len(audit_actions(db, "approval.message.update")) == 1
    assert_chain_ok(db)


def test_decision_time_in_deciders_zone_from_slack(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    _add_approver(world, "UPARIS", None)  # no zone on file: Slack's users.info tells
    fake_slack.add_user("UPARIS", tz="Europe/Paris")
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        msg = message(fake_slack, **loc)
        assert send(bot, block_action("approval_approve", aid, user="UPARIS", msg=msg))[0] == 200
        wait_until(lambda: audit_actions(db, "approval.notify"))
        text = str(message(fake_slack, **loc)["blocks"])
    assert re.search(r"Approved by <@UPARIS> at \d\d:\d\d CET on \d+ \w{3} 20\d\d", text)
    # The answer is cached: asking again costs no Slack call.
    runtime = Runtime(db, now=lambda: NOW)
    calls = len(fake_slack.calls_to("users.info"))
    assert calls >= 1
    assert user_timezone(runtime, bot.app.client, world.actor("UPARIS")) == "Europe/Paris"
    assert len(fake_slack.calls_to("users.info")) == calls
    with db.read() as s:
        assert s.get_one(Approval, aid).state == ApprovalState.APPROVED
    assert_chain_ok(db)
