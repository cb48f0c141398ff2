"""Refused decisions leave a trace; clicks on a decided request leave none.

A click or a reject-form submission by anyone who may not decide (a sponsor member, a
vendor, someone crobot does not know, an approver of another sponsor's study) is refused
with a message, logged, and recorded in the audit trail as `approval.refused` (who, which
approval, why) in a transaction of its own — every attempt, repeated ones too. An
approver clicking a request that is already decided is told so; the copy they clicked is
rewritten at most once, and the audit trail does not grow.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest
from sqlalchemy import update

from crobot.services import directory
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState, Person, Role
from tests.approval_support import (
    assert_chain_ok,
    audit_actions,
    audit_count,
    awaiting,
    bot_for,
    click,
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
from tests.conftest import C_SPONSOR, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET


def not_approver(aid: int) -> str:
    """What anyone but an approver of the study is told: the answer to a missing id."""
    return f"There is no approval request #{aid} that you can decide."


def said_not_approver(aid: int) -> str:
    """The same, as the clicker's ephemeral message (with its hint)."""
    return f":warning: {not_approver(aid)} Only the study's approvers decide."


ALREADY = "This request was already approved by <@UAPPROVER>."


def _state(db: Database, aid: int) -> ApprovalState:
    with db.read() as s:
        return s.get_one(Approval, aid).state


def _refusals(db: Database) -> list[tuple[str, str | None, str, str]]:
    return [
        (e.actor, e.subject_id, (e.after or {})["decision"], (e.after or {})["via"])
        for e in audit_actions(db, "approval.refused")
    ]


def _refusal_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "refused" in r.getMessage()
    ]


def test_refused_clicks_are_logged_and_audited_each_time(
    db: Database, world: World, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    attempts = [
        ("USPONSOR", "approval_approve"),
        ("UAPEX", "approval_approve"),
        ("UAPEX", "approval_approve"),  # the same person again: a separate attempt
        ("USPONSOR", "approval_reject"),
        ("UNOBODY", "approval_approve"),  # not registered with crobot at all
    ]
    with bot_for(db, fake_slack) as bot:
        aid, msg = awaiting(bot, world, fake_slack)
        before = audit_count(db)
        for n, (user, action) in enumerate(attempts):
            click(bot, action, aid, msg, user=user, trigger_id=f"t{n}")
        wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == len(attempts))
    assert ephemerals(fake_slack, "UAPEX") == [said_not_approver(aid)] * 2
    assert ephemerals(fake_slack, "USPONSOR") == [said_not_approver(aid)] * 2
    assert _refusals(db) == [
        ("T1:USPONSOR", str(aid), "approve", "button"),
        ("T1:UAPEX", str(aid), "approve", "button"),
        ("T1:UAPEX", str(aid), "approve", "button"),
        ("T1:USPONSOR", str(aid), "reject", "button"),
        ("T1:UNOBODY", str(aid), "approve", "button"),
    ]
    refused = audit_actions(db, "approval.refused")
    assert [(e.after or {})["reason"] for e in refused[:4]] == [not_approver(aid)] * 4
    assert (refused[4].after or {})["reason"]  # what the unknown user was told
    assert {e.study_id for e in refused} == {world.study_id}
    # Only the refusals were written: no decision, no modal, no message touched.
    assert audit_count(db) == before + len(attempts)
    assert _state(db, aid) == ApprovalState.PENDING
    assert fake_slack.calls_to("views.open") == []
    assert fake_slack.calls_to("chat.update") == []
    logged = _refusal_logs(caplog)
    assert len(logged) == len(attempts)
    assert any("T1:UNOBODY" in line and f"#{aid}" in line for line in logged)
    assert "xoxb-" not in caplog.text and SIGNING_SECRET not in caplog.text
    assert_chain_ok(db)


def test_approver_of_another_sponsors_study_is_refused_and_audited(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with db.write() as s:
        directory.add_org(s, SYSTEM, name="Nova Bio", kind="sponsor")
        directory.add_study(s, SYSTEM, code="NOV-1", title="Other", sponsor="Nova Bio", phase="2")
        directory.add_person(
            s,
            SYSTEM,
            team_id="T1",
            user_id="UNOVA",
            display_name="Nora Nova",
            org="Nova Bio",
            role="sponsor_approver",
        )
    with bot_for(db, fake_slack) as bot:
        aid, msg = awaiting(bot, world, fake_slack)
        click(bot, "approval_approve", aid, msg, user="UNOVA")
        wait_until(lambda: ephemerals(fake_slack, "UNOVA"))
    assert ephemerals(fake_slack, "UNOVA") == [said_not_approver(aid)]
    assert _refusals(db) == [("T1:UNOVA", str(aid), "approve", "button")]
    assert (audit_actions(db, "approval.refused")[0].after or {})["reason"] == not_approver(aid)
    assert _state(db, aid) == ApprovalState.PENDING
    assert_chain_ok(db)


def test_refused_reject_form_is_audited_and_decides_nothing(
    db: Database, world: World, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """The approver opened the reason form, then lost the approver role before submitting."""
    caplog.set_level(logging.WARNING)
    with bot_for(db, fake_slack) as bot:
        aid, msg = awaiting(bot, world, fake_slack)
        meta = open_reject_modal(bot, fake_slack, aid, msg)
        with db.write() as s:
            s.execute(
                update(Person)
                .where(Person.slack_user_id == "UAPPROVER")
                .values(role=Role.SPONSOR_MEMBER)
            )
        before = audit_count(db)
        for n in range(2):
            payload = view_submission(
                "approval_reject_modal",
                reason_values("Wrong week"),
                user="UAPPROVER",
                private_metadata=meta,
            )
            payload["trigger_id"] = f"submit-{n}"  # a second submission, not a replay
            status, body = send(bot, payload)
            assert status == 200
            assert json.loads(body) == {
                "response_action": "errors",
                "errors": {"reason": not_approver(aid)},
            }
    assert _refusals(db) == [("T1:UAPPROVER", str(aid), "reject", "form")] * 2
    assert audit_count(db) == before + 2
    assert _state(db, aid) == ApprovalState.PENDING
    assert fake_slack.calls_to("chat.update") == []
    assert len(_refusal_logs(caplog)) == 2
    assert_chain_ok(db)


def test_clicks_on_a_decided_request_update_its_message_once(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid, stale = awaiting(bot, world, fake_slack)  # a copy showing the buttons
        click(bot, "approval_approve", aid, stale)
        wait_until(lambda: outbox_settled(db, aid))
        before = audit_count(db)
        for n in range(5):
            click(bot, "approval_approve", aid, stale, trigger_id=f"again-{n}")
        wait_until(lambda: len(ephemerals(fake_slack, "UAPPROVER")) == 5)
        wait_until(lambda: outbox_settled(db, aid))
    assert ephemerals(fake_slack, "UAPPROVER") == [ALREADY] * 5
    updates = audit_actions(db, "approval.message.update")
    assert [((e.after or {})["channel"], (e.after or {})["ts"]) for e in updates] == [
        (C_SPONSOR, stale["ts"])
    ]
    assert len(fake_slack.calls_to("chat.update")) == 1
    # An approver's click on a decided request is no refusal, and it changes nothing.
    assert audit_count(db) == before
    assert audit_actions(db, "approval.refused") == []
    assert len(audit_actions(db, "approval.approve")) == 1
    assert_chain_ok(db)


def test_copy_whose_update_failed_is_rewritten_on_the_next_click_only(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = posted_request(bot, world, aid)
        stale = copy.deepcopy(message(fake_slack, **loc))
        fake_slack.fail("chat.update", status=200, error="message_not_found")
        click(bot, "approval_approve", aid, stale)
        wait_until(lambda: outbox_settled(db, aid))
        assert audit_actions(db, "approval.message.update") == []  # it was not shown
        for n in range(3):
            click(bot, "approval_approve", aid, stale, trigger_id=f"again-{n}")
            wait_until(lambda: len(ephemerals(fake_slack, "UAPPROVER")) == n + 1)  # noqa: B023
            wait_until(lambda: outbox_settled(db, aid))
    [shown] = audit_actions(db, "approval.message.update")
    assert ((shown.after or {})["channel"], (shown.after or {})["ts"]) == (C_SPONSOR, loc["ts"])
    assert "Approved by <@UAPPROVER>" in json.dumps(message(fake_slack, **loc)["blocks"])
    assert len(fake_slack.calls_to("chat.update")) == 2  # the failed one, then one rewrite
    assert_chain_ok(db)


def test_click_on_a_request_that_does_not_exist_is_logged_only(
    db: Database, world: World, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with bot_for(db, fake_slack) as bot:
        _, msg = awaiting(bot, world, fake_slack)
        before = audit_count(db)
        click(bot, "approval_approve", 999, msg, user="UAPEX")
        wait_until(lambda: ephemerals(fake_slack, "UAPEX"))
    assert audit_count(db) == before  # no subject to attach a trace to
    [logged] = _refusal_logs(caplog)
    assert "#999" in logged and "T1:UAPEX" in logged
