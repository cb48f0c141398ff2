"""Approve / Reject end to end: signed block_actions and view_submission against fake Slack."""

from __future__ import annotations

import copy
import json
import re
import time

from crobot.services import approval_log, kpis
from crobot.services.kpi_catalog import current_period
from crobot.services.lookup import kpi_by_key
from crobot.services.visibility import Audience, Scope
from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState, KpiUpdate
from tests.approval_support import (
    assert_chain_ok,
    audit_actions,
    audit_count,
    block_action,
    bot_for,
    ephemerals,
    message,
    open_reject_modal,
    outbox_settled,
    pending_kpi,
    posted_request,
    reason_values,
    send,
    view_submission,
    wait_until,
)
from tests.conftest import TODAY, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import interaction_body, post, signed_headers


def _state(db: Database, approval_id: int) -> Approval:
    with db.read() as s:
        return s.get_one(Approval, approval_id)


def _kpi_state(db: Database, approval_id: int) -> ApprovalState:
    with db.read() as s:
        a = s.get_one(Approval, approval_id)
        return s.get_one(KpiUpdate, a.subject_id).approval_state


def _has_buttons(msg: dict[str, object]) -> bool:
    blocks = msg.get("blocks") or []
    assert isinstance(blocks, list)
    return any(b.get("block_id") == "approval_actions" for b in blocks)


def _text_of(msg: dict[str, object]) -> str:
    return json.dumps(msg.get("blocks"), ensure_ascii=False)


def _series(db: Database, world: World, aud: Audience) -> list[kpis.Point]:
    with db.read() as s:
        return kpis.series(s, aud, kpi_by_key(s, "enrollment"))


def test_request_is_posted_once_with_what_changed(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        bot.runtime.approval_requested(aid)  # a repeated notification must not double-post
        msg = message(fake_slack, loc["channel"], loc["ts"])
        text = _text_of(msg)
        assert "ONC-301" in text and "Apex CRO" in text and "<@UAPEX>" in text
        assert "→ *12*" in text and current_period(TODAY).label in text
        assert _has_buttons(msg)
        values = {
            e["action_id"]: e["value"]
            for b in msg["blocks"]
            if b.get("block_id") == "approval_actions"
            for e in b["elements"]
        }
        assert values == {"approval_approve": str(aid), "approval_reject": str(aid)}
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert [e.after for e in audit_actions(db, "approval.message.post")] == [
        {"channel": "CSPONSOR", "ts": loc["ts"], "primary": True}
    ]
    assert_chain_ok(db)


def test_approve_updates_message_notifies_submitter_and_shows_in_joint(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    joint = Audience(world.study_id, Scope.JOINT, world.apex_id, world.sponsor_id)
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        assert _series(db, world, joint) == []  # pending values are not facts yet
        loc = posted_request(bot, world, aid)
        msg = message(fake_slack, loc["channel"], loc["ts"])
        status, body = send(bot, block_action("approval_approve", aid, user="UAPPROVER", msg=msg))
        assert status == 200
        wait_until(lambda: outbox_settled(db, aid))
        updated = message(fake_slack, loc["channel"], loc["ts"])
        assert not _has_buttons(updated)
        # Decider is in New York: November is EST.
        assert re.search(r"Approved by <@UAPPROVER> at \d\d:\d\d EST", _text_of(updated))
        # The submitter is told by DM and in Apex's channel (tests/test_approval_notices.py);
        # the sponsor channel only sees its copy rewritten.
        assert [m["ts"] for m in fake_slack.posted("CSPONSOR")] == [loc["ts"]]
        [dm] = fake_slack.posted("DAPEX")
        assert "Approved by Ann Approver (Helix Pharma)" in _text_of(dm)
    a = _state(db, aid)
    assert a.state == ApprovalState.APPROVED and a.decided_by == "T1:UAPPROVER"
    assert _kpi_state(db, aid) == ApprovalState.APPROVED
    assert [p.value for p in _series(db, world, joint)] == [12]
    assert len(audit_actions(db, "approval.approve")) == 1
    assert len(audit_actions(db, "approval.message.update")) == 1
    assert len(audit_actions(db, "approval.notify")) == 2
    assert fake_slack.calls_to("chat.postEphemeral") == []
    assert_chain_ok(db)


def test_reject_with_reason(db: Database, world: World, fake_slack: FakeSlack) -> None:
    joint = Audience(world.study_id, Scope.JOINT, world.apex_id, world.sponsor_id)
    apex = Audience(world.study_id, Scope.VENDOR, world.apex_id, world.sponsor_id)
    lab = Audience(world.study_id, Scope.VENDOR, world.lab_id, world.sponsor_id)
    sponsor = Audience(world.study_id, Scope.SPONSOR, None, world.sponsor_id)
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        meta = open_reject_modal(bot, fake_slack, aid, message(fake_slack, **loc))
        assert _state(db, aid).state == ApprovalState.PENDING  # opening the modal decides nothing
        payload = view_submission(
            "approval_reject_modal",
            reason_values("Does not match EDC export"),
            user="UAPPROVER",
            private_metadata=meta,
        )
        status, body = send(bot, payload)
        assert status == 200 and "errors" not in body
        wait_until(lambda: audit_actions(db, "approval.notify"))
        updated = message(fake_slack, **loc)
        assert not _has_buttons(updated)
        assert "Rejected by <@UAPPROVER>" in _text_of(updated)
        assert "Does not match EDC export" in _text_of(updated)
    a = _state(db, aid)
    assert a.state == ApprovalState.REJECTED and a.reason == "Does not match EDC export"
    assert _kpi_state(db, aid) == ApprovalState.REJECTED
    # Rejected: never a current value, for any audience (the submitter learns of it from
    # the notice, with the reason).
    for aud in (joint, lab, apex, sponsor):
        assert _series(db, world, aud) == []
    with db.read() as s:
        reasons = approval_log.rejection_reasons(s, a.subject_type, [a.subject_id])
    assert reasons == {a.subject_id: "Does not match EDC export"}
    reject = audit_actions(db, "approval.reject")
    assert len(reject) == 1
    assert (reject[0].after or {})["reason"] == "Does not match EDC export"
    assert_chain_ok(db)


def test_reject_without_reason_is_an_inline_error(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        meta = open_reject_modal(bot, fake_slack, aid, message(fake_slack, **loc))
        before = audit_count(db)
        payload = view_submission(
            "approval_reject_modal", reason_values("   "), user="UAPPROVER", private_metadata=meta
        )
        status, body = send(bot, payload)
        assert status == 200
        answer = json.loads(body)
        assert answer["response_action"] == "errors"
        assert "reason" in answer["errors"]["reason"].lower()
        assert audit_count(db) == before
        assert _has_buttons(message(fake_slack, **loc))
    assert _state(db, aid).state == ApprovalState.PENDING
    assert _kpi_state(db, aid) == ApprovalState.PENDING
    assert fake_slack.calls_to("chat.update") == []
    assert_chain_ok(db)


def test_non_approver_click_changes_nothing(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        msg = message(fake_slack, **loc)
        before = audit_count(db)
        for user, action in [
            ("USPONSOR", "approval_approve"),
            ("UAPEX", "approval_approve"),
            ("USPONSOR", "approval_reject"),
        ]:
            assert send(bot, block_action(action, aid, user=user, msg=msg))[0] == 200
        wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) >= 3)
    # A vendor and a sponsor member learn nothing about the request: not even that it exists.
    expected = (
        f":warning: There is no approval request #{aid} that you can decide. "
        "Only the study's approvers decide."
    )
    assert ephemerals(fake_slack, "USPONSOR") == [expected, expected]
    assert ephemerals(fake_slack, "UAPEX") == [expected]
    assert fake_slack.calls_to("views.open") == []
    assert fake_slack.calls_to("chat.update") == []
    assert _state(db, aid).state == ApprovalState.PENDING
    # Nothing but the trace of each refusal (tests/test_approval_refusals.py).
    assert audit_count(db) == before + 3 == before + len(audit_actions(db, "approval.refused"))
    assert_chain_ok(db)


def test_double_click_and_slack_retry_record_one_decision(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        msg = message(fake_slack, **loc)
        # A double click is two interactions (each with its own trigger_id and action_ts);
        # Slack re-sending the second is the same body signed again at a later second.
        first, second = (
            block_action("approval_approve", aid, user="UAPPROVER", msg=msg, trigger_id=t)
            for t in ("trig-a", "trig-b")
        )
        assert send(bot, first)[0] == 200
        assert send(bot, second)[0] == 200
        body = interaction_body(second)
        resent = signed_headers(body, timestamp=int(time.time()) + 1)
        assert post(bot.events_url, body, resent)[0] == 200
        # The very same signed request again is a replay: refused before any listener.
        assert post(bot.events_url, body, resent)[0] == 401
        wait_until(lambda: len(ephemerals(fake_slack, "UAPPROVER")) == 2)
        wait_until(lambda: outbox_settled(db, aid))
    assert (
        ephemerals(fake_slack, "UAPPROVER")
        == ["This request was already approved by <@UAPPROVER>."] * 2
    )
    assert len(audit_actions(db, "approval.approve")) == 1
    assert len(audit_actions(db, "approval.notify")) == 2  # the DM and Apex's channel, once
    assert _state(db, aid).state == ApprovalState.APPROVED
    assert_chain_ok(db)


def test_click_on_stale_message(db: Database, world: World, fake_slack: FakeSlack) -> None:
    from crobot.services import approvals

    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        stale = copy.deepcopy(message(fake_slack, **loc))  # still shows the buttons
        with db.write() as s:  # decided elsewhere (e.g. App Home) while this copy was open
            approvals.decide(s, world.actor("UAPPROVER"), aid, approve=False, reason="Wrong week")
        bot.runtime.approval_decided(aid)
        wait_until(lambda: outbox_settled(db, aid))
        decided_before = len(audit_actions(db, "approval.reject"))
        status, _ = send(bot, block_action("approval_approve", aid, user="UAPPROVER", msg=stale))
        assert status == 200
        # The copy already shows the decision: the clicker is told why, nothing is rewritten.
        wait_until(lambda: ephemerals(fake_slack, "UAPPROVER"))
        wait_until(lambda: outbox_settled(db, aid))
        assert len(audit_actions(db, "approval.message.update")) == 1
        assert ephemerals(fake_slack, "UAPPROVER") == [
            "This request was already rejected by <@UAPPROVER>."
        ]
        refreshed = message(fake_slack, **loc)
        assert not _has_buttons(refreshed)
        assert "Wrong week" in _text_of(refreshed)
    a = _state(db, aid)
    assert a.state == ApprovalState.REJECTED and a.reason == "Wrong week"
    assert len(audit_actions(db, "approval.reject")) == decided_before == 1
    assert audit_actions(db, "approval.approve") == []
    assert len(audit_actions(db, "approval.notify")) == 2  # the submitter was not told twice
    assert_chain_ok(db)


def test_decision_outside_slack_is_still_shown_and_announced_once(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    """A decision's Slack work is written with it: the next click on the stale copy (or the
    scheduler's sweep) delivers it, even though nobody kicked the outbox."""
    from crobot.services import approvals

    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        stale = message(fake_slack, **loc)
        with db.write() as s:
            approvals.decide(s, world.actor("UAPPROVER"), aid, approve=False, reason="Wrong week")
        assert (
            send(bot, block_action("approval_approve", aid, user="UAPPROVER", msg=stale))[0] == 200
        )
        wait_until(lambda: outbox_settled(db, aid))
        assert "Wrong week" in _text_of(message(fake_slack, **loc))
    assert len(audit_actions(db, "approval.message.update")) == 1
    assert len(audit_actions(db, "approval.notify")) == 2
    [dm] = fake_slack.posted("DAPEX")
    assert "Rejected by Ann Approver (Helix Pharma)" in str(dm["text"])
    assert "Wrong week" in _text_of(dm)
    assert_chain_ok(db)


def test_only_an_approvers_own_sponsor_value_is_approved_at_once_and_audited(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with db.write() as s:
        on_behalf = kpis.report(
            s,
            world.actor("USPONSOR"),
            today=TODAY,
            study="ONC-301",
            kpi="enrollment",
            value=7,
            org="Apex CRO",
        )
        own = kpis.report(
            s, world.actor("UAPPROVER"), today=TODAY, study="ONC-301", kpi="enrollment", value=2
        )
    # A sponsor member entering Apex's value: it waits, requested by the member.
    assert on_behalf.approval_requested
    assert on_behalf.update.approval_state == ApprovalState.PENDING
    assert [e.actor for e in audit_actions(db, "approval.request")] == ["T1:USPONSOR"]
    # An approver's own sponsor value: approved at once, and audited.
    assert not own.approval_requested
    assert own.update.approval_state == ApprovalState.APPROVED
    assert [e.actor for e in audit_actions(db, "kpi.report")] == ["T1:USPONSOR", "T1:UAPPROVER"]
    assert_chain_ok(db)
