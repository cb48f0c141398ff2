"""Approval posts and notices go through the durable outbox: retried, resumed, exactly once.

The rows are written with the submission (or the decision); a kick after commit delivers
them, and what a kick leaves pending (Slack failing, a crash) the scheduler's sweep does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient

from crobot.bot.scheduling import DigestScheduler
from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.handlers.approvals import posts
from crobot.handlers.approvals.outbox import ApprovalOutbox
from crobot.services import approvals
from crobot.services.approval_log import outbox_target
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState, DigestRun, DigestRunState
from tests.approval_support import (
    NOW,
    assert_chain_ok,
    audit_actions,
    block_action,
    bot_for,
    message,
    outbox_rows,
    pending_kpi,
    posted_request,
    send,
    wait_until,
)
from tests.bot_server import bot_settings
from tests.conftest import C_APEX, C_SPONSOR, World
from tests.digest_helpers import Clock
from tests.fake_slack import FakeSlack


class SimulatedCrash(BaseException):
    """Stands in for the process dying (BaseException: nothing in delivery catches it)."""


def _client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.base_url)


def _delivery(runtime: Runtime, fake: FakeSlack) -> Delivery:
    return Delivery(runtime, delivery_client(_client(fake)), backoff=0.01, pacer=ChannelPacer(0.0))


def _approval(db: Database, aid: int) -> Approval:
    with db.read() as s:
        return s.get_one(Approval, aid)


def _requests(fake: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in fake.posted(C_SPONSOR) if not m.get("thread_ts")]


def test_request_is_written_with_the_submission(db: Database, world: World) -> None:
    aid = pending_kpi(world, 12)
    rows = outbox_rows(db, aid)
    assert [(r.period_key, r.state, r.claimed_by) for r in rows] == [
        (f"request:{C_SPONSOR}", DigestRunState.PENDING, None)
    ]


def test_failed_post_is_retried_and_lands_once(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    aid = pending_kpi(world, 12)
    fake_slack.fail("chat.postMessage", status=500)  # Slack refuses the first attempt
    with bot_for(db, fake_slack) as bot:
        loc = posted_request(bot, world, aid)
    assert [m["ts"] for m in _requests(fake_slack)] == [loc["ts"]]
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    # The retry looked for the first attempt in the channel's history before posting.
    assert len(fake_slack.calls_to("conversations.history")) == 1
    meta = message(fake_slack, **loc)["metadata"]
    assert meta["event_type"] == "crobot_approval"
    assert meta["event_payload"]["run_key"] == f"{outbox_target(aid)}|request:{C_SPONSOR}"
    [row] = outbox_rows(db, aid)
    assert (row.state, row.attempts, row.slack_ts) == (DigestRunState.SENT, 2, loc["ts"])
    assert len(audit_actions(db, "approval.message.post")) == 1
    assert_chain_ok(db)


def test_rate_limited_post_is_left_to_the_sweep(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    aid = pending_kpi(world, 12)
    fake_slack.fail("chat.postMessage", status=429, retry_after=120)  # too long to sleep
    with bot_for(db, fake_slack) as bot:
        bot.runtime.approval_requested(aid)
        wait_until(
            lambda: (
                outbox_rows(db, aid)[0].attempts == 1 and fake_slack.calls_to("chat.postMessage")
            )
        )
    assert _requests(fake_slack) == []
    assert outbox_rows(db, aid)[0].state == DigestRunState.PENDING
    # The scheduler's periodic sweep, once the kick's lease has run out, posts it once.
    clock = Clock(NOW + timedelta(minutes=3))
    sched = DigestScheduler(
        bot_settings(db.url, fake_slack.base_url), Runtime(db, now=clock), _client(fake_slack)
    )
    sched.sweep()
    sched.sweep()
    [posted] = _requests(fake_slack)
    assert _approval(db, aid).message_ts == posted["ts"]
    assert outbox_rows(db, aid)[0].state == DigestRunState.SENT
    assert_chain_ok(db)


def test_crash_between_slack_accepting_and_recording_does_not_post_twice(
    db: Database, world: World, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    aid = pending_kpi(world, 12)
    clock = Clock(datetime.now(UTC))
    runtime = Runtime(db, now=clock)
    dying = _delivery(runtime, fake_slack)

    def crash(*args: object, **kwargs: object) -> None:
        raise SimulatedCrash

    monkeypatch.setattr(dying, "_finish", crash)  # Slack has the post; crobot dies
    with pytest.raises(SimulatedCrash):
        dying.resume_pending(outbox_target(aid))
    [posted] = _requests(fake_slack)
    assert _approval(db, aid).message_ts is None
    assert [(r.state, r.attempts) for r in outbox_rows(db, aid)] == [(DigestRunState.PENDING, 1)]

    restarted = _delivery(runtime, fake_slack)
    assert [o.state for o in restarted.resume_pending()] == ["pending"]  # lease still held
    clock.advance(timedelta(minutes=30))  # a long outage: the lease ran out long ago
    outcomes = restarted.resume_pending()
    assert [(o.state, o.detail) for o in outcomes] == [("sent", "found in history")]
    assert [m["ts"] for m in _requests(fake_slack)] == [posted["ts"]]
    assert _approval(db, aid).message_ts == posted["ts"]
    assert len(audit_actions(db, "approval.message.post")) == 1
    # History was searched from when the row was made, not from the takeover.
    [history] = fake_slack.calls_to("conversations.history")
    assert float(history.params["oldest"]) <= outbox_rows(db, aid)[0].created_at.timestamp()

    # The recorded message is the one a decision rewrites.
    with bot_for(db, fake_slack) as bot:
        msg = message(fake_slack, C_SPONSOR, posted["ts"])
        assert send(bot, block_action("approval_approve", aid, user="UAPPROVER", msg=msg))[0] == 200
        wait_until(lambda: audit_actions(db, "approval.notify"))
    assert "Approved by <@UAPPROVER>" in str(message(fake_slack, C_SPONSOR, posted["ts"])["blocks"])
    assert len(_requests(fake_slack)) == 1
    assert_chain_ok(db)


def test_request_decided_before_it_was_posted_is_not_posted(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    """Nothing to ask any more; the submitter still hears the decision."""
    aid = pending_kpi(world, 12)
    with db.write() as s:
        approvals.decide(s, world.actor("UAPPROVER"), aid, approve=True)
    ApprovalOutbox(Runtime(db, now=lambda: NOW), _client(fake_slack)).deliver(aid)
    assert fake_slack.posted(C_SPONSOR) == []
    assert [(r.period_key, r.state) for r in outbox_rows(db, aid)] == [
        (f"request:{C_SPONSOR}", DigestRunState.SKIPPED),
        ("dm:T1:UAPEX", DigestRunState.SENT),
        (f"vendor:{C_APEX}", DigestRunState.SENT),
    ]
    assert [len(fake_slack.posted(c)) for c in ("DAPEX", C_APEX)] == [1, 1]


def test_request_landing_after_the_decision_is_rewritten(
    db: Database, world: World, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    aid = pending_kpi(world, 12)
    render = posts.payload

    def decided_meanwhile(*args: Any) -> dict[str, Any] | None:
        payload = render(*args)  # rendered while pending: with buttons
        if payload is not None and payload.get("channel") == C_SPONSOR and "ts" not in payload:
            with db.write() as s:
                approvals.decide(s, world.actor("UAPPROVER"), aid, approve=True)
        return payload

    monkeypatch.setattr(posts, "payload", decided_meanwhile)
    ApprovalOutbox(Runtime(db, now=lambda: NOW), _client(fake_slack)).deliver(aid)
    [posted] = _requests(fake_slack)
    shown = message(fake_slack, C_SPONSOR, posted["ts"])
    assert "approval_actions" not in str(shown["blocks"])
    assert "Approved by <@UAPPROVER>" in str(shown["blocks"])
    assert _approval(db, aid).state == ApprovalState.APPROVED
    assert len(audit_actions(db, "approval.notify")) == 2  # the DM and Apex's channel
    assert {r.state for r in outbox_rows(db, aid)} == {DigestRunState.SENT}
    assert_chain_ok(db)


def test_thread_notice_left_by_an_older_version_is_skipped(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    """The sponsor-thread notice is retired: a row of it still pending after an upgrade is
    skipped, and the submitter hears the decision the current way."""
    aid = pending_kpi(world, 12)
    with db.write() as s:
        approvals.decide(s, world.actor("UAPPROVER"), aid, approve=True)
        now = datetime.now(UTC)
        s.add(
            DigestRun(
                target=outbox_target(aid),
                period_key=f"notice:{C_SPONSOR}",
                state=DigestRunState.PENDING,
                attempts=0,
                claimed_by=None,
                claimed_at=now,
                created_at=now,
            )
        )
    ApprovalOutbox(Runtime(db, now=lambda: NOW), _client(fake_slack)).deliver(aid)
    assert fake_slack.posted(C_SPONSOR) == []
    states = {r.period_key: r.state for r in outbox_rows(db, aid)}
    assert states[f"notice:{C_SPONSOR}"] == DigestRunState.SKIPPED
    assert states["dm:T1:UAPEX"] == DigestRunState.SENT
