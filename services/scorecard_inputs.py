"""What the scorecards of one study are computed from, for all its vendors and a span of
quarters at once: one query per kind of record (milestones, forecast changes, actions,
KPI submissions, approval decisions, KPI definitions), however many vendors and rows.

Rows are split per vendor here; `services.computed_measures` computes from them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from crobot.services import forecast_changes
from crobot.services.computed_measures import (
    ActionRow,
    ApprovalRow,
    KpiSubmission,
    MilestoneRow,
    SlipRow,
    VendorRecord,
)
from crobot.services.kpi_catalog import Period
from crobot.services.quarters import Quarter
from crobot.services.user_tz import with_user_zone
from crobot.storage.models import (
    ActionItem,
    Approval,
    ApprovalState,
    AuditEvent,
    KpiDefinition,
    KpiUpdate,
    Milestone,
    SubjectType,
)

# A period ending in the span may start this long before it (a month is the longest).
LONGEST_PERIOD = timedelta(days=31)


@dataclass(frozen=True)
class ApprovedValue:
    """An organisation's approved value of one KPI for one period (the newest approved)."""

    kpi_id: int
    period: Period
    value: float


@dataclass
class _Vendor:
    milestones: list[MilestoneRow] = field(default_factory=list)
    slips: list[SlipRow] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    submissions: list[KpiSubmission] = field(default_factory=list)
    approvals: list[ApprovalRow] = field(default_factory=list)
    approved: dict[tuple[int, date], tuple[int, ApprovedValue]] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyRecords:
    records: dict[int, VendorRecord]
    approved: dict[int, list[ApprovedValue]]
    kpis: dict[int, KpiDefinition]

    def of(self, org_id: int) -> VendorRecord:
        return self.records.get(org_id, VendorRecord())


def load(
    session: Session,
    study_id: int,
    org_ids: Collection[int],
    first: Quarter,
    last: Quarter,
    *,
    default_tz: str = "UTC",
) -> StudyRecords:
    """The records of `org_ids` on one study from quarter `first` to `last`."""
    orgs = list(org_ids)
    vendors: dict[int, _Vendor] = defaultdict(_Vendor)
    if orgs:
        _milestones(session, study_id, orgs, first, vendors)
        _slips(session, study_id, set(orgs), first, last, vendors)
        _actions(session, study_id, orgs, first, last, default_tz, vendors)
        _submissions(session, study_id, orgs, first, last, vendors)
        _approvals(session, study_id, orgs, first, last, vendors)
    used = {a.kpi_id for v in vendors.values() for _, a in v.approved.values()}
    kpis = (
        {k.id: k for k in session.scalars(select(KpiDefinition).where(KpiDefinition.id.in_(used)))}
        if used
        else {}
    )
    return StudyRecords(
        {
            org: VendorRecord(v.milestones, v.slips, v.actions, v.submissions, v.approvals)
            for org, v in vendors.items()
        },
        {org: [a for _, a in v.approved.values()] for org, v in vendors.items()},
        kpis,
    )


def _milestones(
    session: Session, study_id: int, orgs: list[int], first: Quarter, out: dict[int, _Vendor]
) -> None:
    # Planned in the span, or not done before it began (open milestones can slip).
    stmt = select(
        Milestone.org_id,
        Milestone.planned_date,
        Milestone.actual_date,
        Milestone.status,
        Milestone.created_at,
    ).where(
        Milestone.study_id == study_id,
        Milestone.org_id.in_(orgs),
        or_(
            Milestone.planned_date >= first.start,
            Milestone.actual_date.is_(None),
            Milestone.actual_date >= first.start,
        ),
    )
    for org, planned, actual, status, created in session.execute(stmt):
        if org is None:  # a study-level milestone is nobody's (the WHERE leaves none)
            continue
        out[org].milestones.append(
            MilestoneRow(planned, actual, status, created.astimezone(UTC).date())
        )


def _slips(
    session: Session,
    study_id: int,
    orgs: set[int],
    first: Quarter,
    last: Quarter,
    out: dict[int, _Vendor],
) -> None:
    """Forecast dates moved later (services/forecast_changes.py: the digest counts the
    same slips), read from the audit trail's milestone changes."""
    since, until = first.utc_bounds()[0], last.utc_bounds()[1]
    stmt = select(
        AuditEvent.subject_id,
        AuditEvent.at,
        forecast_changes.WAS,
        forecast_changes.NEW,
        AuditEvent.after,
    ).where(
        AuditEvent.study_id == study_id,
        AuditEvent.at >= since,
        AuditEvent.at < until,
        forecast_changes.slipped(),
    )
    for subject, at, was, now, after in session.execute(stmt):
        org = (after or {}).get("org_id")
        if org in orgs:
            slip = SlipRow(int(subject or 0), at, date.fromisoformat(was), date.fromisoformat(now))
            out[org].slips.append(slip)


def _actions(
    session: Session,
    study_id: int,
    orgs: list[int],
    first: Quarter,
    last: Quarter,
    default_tz: str,
    out: dict[int, _Vendor],
) -> None:
    stmt = select(
        ActionItem.owner_org_id, ActionItem.due_date, ActionItem.status, ActionItem.completed_at
    ).where(
        ActionItem.study_id == study_id,
        ActionItem.owner_org_id.in_(orgs),
        ActionItem.due_date >= first.start,
        ActionItem.due_date <= last.end,
    )
    # Closed by the due date where the owner is: their local date of completion.
    owner = (ActionItem.owner_team_id, ActionItem.owner_user_id)
    stmt, zone = with_user_zone(stmt, *owner, default_tz)
    for org, due, status, completed, tz in session.execute(stmt.add_columns(zone)):
        closed = completed.astimezone(ZoneInfo(tz)).date() if completed is not None else None
        out[org].actions.append(ActionRow(due, status, closed))


def _submissions(
    session: Session,
    study_id: int,
    orgs: list[int],
    first: Quarter,
    last: Quarter,
    out: dict[int, _Vendor],
) -> None:
    """Every KPI submission for a period that may end in the span, with its review (the
    decided approval, if any); and per organisation, KPI and period the newest approved
    value."""
    reviewed = and_(
        Approval.subject_type == SubjectType.KPI_UPDATE,
        Approval.subject_id == KpiUpdate.id,
        Approval.state != ApprovalState.PENDING,
    )
    stmt = (
        select(
            KpiUpdate.id,
            KpiUpdate.org_id,
            KpiUpdate.kpi_id,
            KpiUpdate.period_start,
            KpiUpdate.period_label,
            KpiUpdate.value,
            KpiUpdate.submitted_at,
            KpiUpdate.approval_state,
            Approval.state,
        )
        .outerjoin(Approval, reviewed)
        .where(
            KpiUpdate.study_id == study_id,
            KpiUpdate.org_id.in_(orgs),
            KpiUpdate.period_start >= first.start - LONGEST_PERIOD,
            KpiUpdate.period_start <= last.end,
        )
    )
    for uid, org, kpi_id, start, label, value, submitted, state, decision in session.execute(stmt):
        period = Period(start, label)
        vendor = out[org]
        vendor.submissions.append(KpiSubmission(kpi_id, period, submitted, state, decision))
        if state == ApprovalState.APPROVED:
            key = (kpi_id, start)
            if key not in vendor.approved or vendor.approved[key][0] < uid:
                vendor.approved[key] = (uid, ApprovedValue(kpi_id, period, value))


def _approvals(
    session: Session,
    study_id: int,
    orgs: list[int],
    first: Quarter,
    last: Quarter,
    out: dict[int, _Vendor],
) -> None:
    since, until = first.utc_bounds()[0], last.utc_bounds()[1]
    cols = (Approval.org_id, Approval.requested_at, Approval.decided_at, Approval.state)
    stmt = select(*cols).where(
        Approval.study_id == study_id,
        Approval.org_id.in_(orgs),
        Approval.decided_at >= since,
        Approval.decided_at < until,
    )
    for org, requested, decided, state in session.execute(stmt):
        if decided is not None:  # the WHERE keeps decided ones only
            out[org].approvals.append(ApprovalRow(requested, decided, state))
