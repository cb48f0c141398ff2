"""Two approvers clicking Approve at the same moment: exactly one decision is recorded."""

from __future__ import annotations

from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState
from tests.approval_support import (
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
    second_approver,
    wait_until,
)
from tests.conftest import World
from tests.fake_slack import FakeSlack


def test_two_approvers_at_once(db: Database, world: World, fake_slack: FakeSlack) -> None:
    approver_2 = second_approver(world)
    with bot_for(db, fake_slack) as bot:
        for round_ in range(3):  # several rounds: the race is decided differently each time
            aid = pending_kpi(world, 10 + round_)
            msg = message(fake_slack, **posted_request(bot, world, aid))
            clicks = [
                block_action("approval_approve", aid, user=u, msg=msg)
                for u in ("UAPPROVER", approver_2)
            ]
            statuses = race(bot, clicks)
            assert statuses == [200, 200]
            notified = 2 * (round_ + 1)  # each decision: the submitter's DM, Apex's channel
            # The lambdas below run before the loop moves on, so late binding is harmless.
            wait_until(lambda: outbox_settled(db, aid))  # noqa: B023
            assert len(audit_actions(db, "approval.notify")) == notified
            with db.read() as s:
                approval = s.get_one(Approval, aid)
            assert approval.state == ApprovalState.APPROVED
            winner = approval.decided_by.split(":")[1] if approval.decided_by else ""
            loser = approver_2 if winner == "UAPPROVER" else "UAPPROVER"
            wait_until(lambda: len(ephemerals(fake_slack, loser)) >= 1)  # noqa: B023
            assert ephemerals(fake_slack, loser)[-1] == (
                f"This request was already approved by <@{winner}>."
            )
            approves = [
                e for e in audit_actions(db, "approval.approve") if e.subject_id == str(aid)
            ]
            assert len(approves) == 1 and approves[0].actor == f"T1:{winner}"
            fake_slack.reset()
    assert_chain_ok(db)
