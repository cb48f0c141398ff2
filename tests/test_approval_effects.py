"""Milestone completions through the buttons, approval history, and posting off the ack path."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from crobot.services import approval_log, approvals, milestones
from crobot.services.visibility import Audience, Scope
from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState, Milestone, MilestoneStatus, SubjectType
from tests.approval_support import (
    assert_chain_ok,
    audit_actions,
    block_action,
    bot_for,
    message,
    outbox_settled,
    pending_kpi,
    posted_request,
    reject_via_modal,
    send,
    wait_until,
)
from tests.conftest import TODAY, World
from tests.fake_slack import FakeSlack


def _done_milestone(world: World) -> tuple[int, int]:
    """Apex reports its milestone done; returns (milestone id, approval id)."""
    with world.db.write() as s:
        ms = milestones.add(
            s,
            world.actor("UAPEX"),
            today=TODAY - timedelta(days=30),
            study="ONC-301",
            name="First patient in",
            planned=TODAY - timedelta(days=2),
        )
        change = milestones.update(s, world.actor("UAPEX"), today=TODAY, id=ms.id, status="done")
        assert change.approval_requested
        approval = approvals.for_subject(s, SubjectType.MILESTONE, ms.id)
        assert approval is not None
        return ms.id, approval.id


def _joint_sees(db: Database, world: World, ms_id: int) -> bool:
    """The sponsor–Apex joint channel (a multi-vendor one shows shared items only)."""
    joint = Audience(world.study_id, Scope.JOINT, world.apex_id, world.sponsor_id)
    with db.read() as s:
        listed = milestones.list_for(s, joint, today=TODAY)
    return ms_id in {m.id for m in listed}


def test_milestone_completion_approved(db: Database, world: World, fake_slack: FakeSlack) -> None:
    ms_id, aid = _done_milestone(world)
    assert not _joint_sees(db, world, ms_id)  # awaiting approval: not a fact yet
    with bot_for(db, fake_slack) as bot:
        loc = posted_request(bot, world, aid)
        msg = message(fake_slack, **loc)
        assert "First patient in" in json.dumps(msg["blocks"])
        assert send(bot, block_action("approval_approve", aid, user="UAPPROVER", msg=msg))[0] == 200
        wait_until(lambda: audit_actions(db, "approval.notify"))
    with db.read() as s:
        assert s.get_one(Milestone, ms_id).status == MilestoneStatus.APPROVED
    assert _joint_sees(db, world, ms_id)
    assert_chain_ok(db)


def test_milestone_completion_rejected(db: Database, world: World, fake_slack: FakeSlack) -> None:
    ms_id, aid = _done_milestone(world)
    with bot_for(db, fake_slack) as bot:
        loc = posted_request(bot, world, aid)
        msg = message(fake_slack, **loc)
        assert reject_via_modal(bot, fake_slack, aid, msg, "No CRF yet") == (200, "")
        wait_until(lambda: outbox_settled(db, aid))
    with db.read() as s:
        ms = s.get_one(Milestone, ms_id)
        assert (ms.status, ms.actual_date) == (MilestoneStatus.PLANNED, None)
    # The vendor hears it, with the reason, by DM and in its own channel.
    for channel in ("DAPEX", "CAPEX"):
        [notice] = fake_slack.posted(channel)
        assert "First patient in" in json.dumps(notice["blocks"])
        assert "> No CRF yet" in json.dumps(notice["blocks"])
    assert_chain_ok(db)


def test_history_lists_requests_and_decisions(db: Database, world: World) -> None:
    first, second = pending_kpi(world, 12), pending_kpi(world, 13)
    with db.write() as s:
        approvals.decide(s, world.actor("UAPPROVER"), first, approve=False, reason="Typo")
    with db.read() as s:
        rows = [r.as_dict() for r in approval_log.history(s, study_id=world.study_id)]
    assert [(r["id"], r["state"], r["reason"]) for r in rows] == [
        (first, "rejected", "Typo"),
        (second, "pending", None),
    ]
    assert rows[0]["decided_by"] == "T1:UAPPROVER" and rows[0]["org"] == "Apex CRO"
    assert rows[0]["summary"]["new"] == 12 and rows[0]["study"] == "ONC-301"


def test_posting_never_blocks_the_caller(db: Database, world: World, fake_slack: FakeSlack) -> None:
    fake_slack.fail("chat.postMessage", status=200, delay=1.0)  # a slow Slack
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        started = time.perf_counter()
        bot.runtime.approval_requested(aid)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.1, f"approval_requested blocked for {elapsed:.3f}s"

        def recorded() -> bool:
            with db.read() as s:
                return s.get_one(Approval, aid).message_ts is not None

        wait_until(recorded)
    with db.read() as s:
        assert s.get_one(Approval, aid).state == ApprovalState.PENDING
    assert_chain_ok(db)
