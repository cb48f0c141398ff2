"""The approval state machine for vendor submissions (KPI values, milestone completions,
site enrolment reports — whose approval recomputes the enrolment forecast).

pending --approve--> approved ; pending --reject(reason)--> rejected. A decision on a
decided approval changes nothing and reports who decided (idempotent: double clicks,
Slack retries, two approvers at once). The decision row is locked first, so only one of
two concurrent deciders can win.

The Slack work a change calls for (the Approve/Reject post, the decision shown in every
copy, the submitter's notice) is written to the outbox in the same transaction
(services/approval_log.py), so it is delivered exactly once even if the process dies
right after the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import approval_log, audit, reachable, signatures
from crobot.services.actor import Actor
from crobot.services.approval_log import Location
from crobot.services.errors import UserError
from crobot.services.permissions import require_second_approver
from crobot.storage import bulk
from crobot.storage.models import (
    Approval,
    ApprovalState,
    KpiUpdate,
    Milestone,
    MilestoneStatus,
    SignatureMode,
    SiteReport,
    Study,
    SubjectType,
    utcnow,
)

MAX_REASON = 1000
DECISION_FIELDS = ("state", "decided_by", "decided_at", "reason", *signatures.SIGNATURE_FIELDS)


def request(
    session: Session,
    actor: Actor,
    *,
    subject_type: SubjectType,
    subject_id: int,
    study_id: int,
    org_id: int,
    summary: dict[str, Any],
) -> Approval:
    approval = Approval(
        subject_type=subject_type,
        subject_id=subject_id,
        study_id=study_id,
        org_id=org_id,
        summary=summary,
        requested_by=actor.label,
    )
    session.add(approval)
    session.flush()
    audit.record(
        session,
        actor,
        "approval.request",
        "approval",
        approval.id,
        study_id=study_id,
        after={"subject": f"{subject_type.value}:{subject_id}", **summary},
    )
    approval_log.enqueue_requests(session, approval)
    return approval


@dataclass(frozen=True)
class Requested:
    """One submission of a batch that waits for an approver (`request_many`)."""

    subject_type: SubjectType
    subject_id: int
    study_id: int
    org_id: int
    summary: dict[str, Any]


def request_many(session: Session, actor: Actor, items: Sequence[Requested]) -> list[int]:
    """`request` for a batch (a CSV import's values): the approvals and their posts are
    inserted in bulk. Their ids, in order. No `approval.request` event per approval: the
    caller records the one event that names them all (`kpi.import`)."""
    if not items:
        return []
    now = utcnow()
    rows = [
        {
            "subject_type": i.subject_type,
            "subject_id": i.subject_id,
            "study_id": i.study_id,
            "org_id": i.org_id,
            "summary": i.summary,
            "requested_by": actor.label,
            "requested_at": now,
            "state": ApprovalState.PENDING,
        }
        for i in items
    ]
    ids = bulk.reserve_ids(session, Approval, len(rows))
    for row, approval_id in zip(rows, ids, strict=True):
        row["id"] = approval_id
    bulk.insert_rows(session, Approval, rows)
    approval_log.enqueue_requests_many(
        session, [(aid, i.study_id) for aid, i in zip(ids, items, strict=True)]
    )
    return ids


@dataclass(frozen=True)
class Decision:
    approval: Approval
    changed: bool  # False: it had already been decided, nothing was written


def decidable(
    session: Session, actor: Actor, approval_id: int, *, seen_at: Location | None = None
) -> Approval:
    """The approval, locked, if `actor` may decide it: the one pre-check of every click.

    Raises the same NotFound for an unknown id and for anyone but an approver of its
    study (`services.reachable`), and Forbidden, while it is pending, for its submitter
    when the study requires four eyes. The approval may already be decided (look at its
    `state`); then the copy of the request the decider used (`seen_at`, still showing
    buttons) is brought up to date. Call it in a write transaction.
    """
    approval = reachable.approval(session, actor, approval_id)
    study = session.get_one(Study, approval.study_id)
    if approval.state == ApprovalState.PENDING:
        require_second_approver(actor, study, approval.requested_by)
    elif seen_at is not None:
        approval_log.show_decision(session, approval, seen_at)
    return approval


def decide(
    session: Session,
    actor: Actor,
    approval_id: int,
    *,
    approve: bool,
    reason: str | None = None,
    seen_at: Location | None = None,
    pin: str | None = None,
    today: date | None = None,
) -> Decision:
    """Decide a pending approval; `seen_at` is the copy of the request the decider used;
    `today` is the date the enrolment forecast is recomputed as of (default: UTC's).

    In a Part 11 study the decision is a signature and needs the decider's signing `pin`
    (`signatures.PinRefused` otherwise: nothing is decided); elsewhere it is acknowledged.
    """
    approval = decidable(session, actor, approval_id, seen_at=seen_at)
    if approval.state != ApprovalState.PENDING:
        return Decision(approval, changed=False)
    reason = (reason or "").strip() or None
    if not approve and reason is None:
        raise UserError(
            "A rejection needs a reason.", "Say what is wrong so the vendor can fix it."
        )
    if reason is not None and len(reason) > MAX_REASON:
        raise UserError(f"The reason is too long ({len(reason)} characters; at most {MAX_REASON}).")
    part11 = signatures.mode(session, approval.study_id) == SignatureMode.PART11
    if part11:
        signatures.check_pin(session, actor, pin)
    before = audit.snapshot(approval, *DECISION_FIELDS)
    approval.state = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
    approval.decided_by = actor.label
    approval.decided_at = utcnow()
    approval.reason = reason
    method = signatures.SIGNED if part11 else signatures.ACKNOWLEDGED
    signatures.sign(session, approval, actor, method=method)
    _apply(session, approval, today or utcnow().date())
    session.flush()
    audit.record(
        session,
        actor,
        "approval.approve" if approve else "approval.reject",
        "approval",
        approval.id,
        study_id=approval.study_id,
        before=before,
        after={
            **audit.snapshot(approval, *DECISION_FIELDS),
            "meaning": signatures.meaning(approval.state, approval.reason),
        },
    )
    approval_log.enqueue_decision(session, approval, also=seen_at)
    return Decision(approval, changed=True)


def _apply(session: Session, approval: Approval, today: date) -> None:
    """Carry the decision onto its subject."""
    approved = approval.state == ApprovalState.APPROVED
    if approval.subject_type == SubjectType.KPI_UPDATE:
        update = session.get_one(KpiUpdate, approval.subject_id)
        update.approval_state = approval.state
        if approved:
            from crobot.services import qtl  # the limits read KPI values: imported late

            session.flush()
            qtl.check(session, update, today)
        return
    if approval.subject_type == SubjectType.SITE_REPORT:
        report = session.get_one(SiteReport, approval.subject_id)
        report.approval_state = approval.state
        if approved:
            from crobot.services import enrolment  # the forecast reads sites: imported late

            session.flush()
            enrolment.recompute(session, approval.study_id, today)
        return
    milestone = session.get_one(Milestone, approval.subject_id)
    if approved:
        milestone.status = MilestoneStatus.APPROVED
    else:
        # The completion is refused: back to where it was, actual date withdrawn.
        milestone.status = MilestoneStatus(approval.summary.get("from_status", "planned"))
        milestone.actual_date = None


def for_subject(session: Session, subject_type: SubjectType, subject_id: int) -> Approval | None:
    """The approval request of one submission (to notify the approvers after commit)."""
    return session.scalars(
        select(Approval).where(
            Approval.subject_type == subject_type, Approval.subject_id == subject_id
        )
    ).one_or_none()
