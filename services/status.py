"""A study's state at a glance for one audience: the `/cro status` and demo view model."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from crobot.services import actions, kpis, milestones, qtl
from crobot.services.kpis import Trend
from crobot.services.visibility import Audience, action_filter, approval_filter
from crobot.storage.models import (
    ActionItem,
    ActionStatus,
    Approval,
    ApprovalState,
    Base,
    KpiDefinition,
    Milestone,
    Study,
)


@dataclass
class StudyStatus:
    study: Study
    audience: Audience
    today: date
    next_milestones: list[Milestone] = field(default_factory=list)
    late_milestones: list[Milestone] = field(default_factory=list)
    open_actions: int = 0
    overdue_actions: list[ActionItem] = field(default_factory=list)  # the first SHOWN
    overdue_count: int = 0
    kpis: list[tuple[KpiDefinition, list[Trend]]] = field(default_factory=list)
    pending_approvals: list[Approval] = field(default_factory=list)  # the first SHOWN
    pending_count: int = 0
    open_breaches: list[qtl.OpenBreach] = field(default_factory=list)


# A status answer lists this many overdue actions and pending approvals and counts the rest:
# loading hundreds of ORM rows to show a handful cost most of `/cro status` (RESULTS.md §3).
SHOWN = 25


def study_status(
    session: Session, study: Study, audience: Audience, *, today: date, kpi_weeks: int = 8
) -> StudyStatus:
    st = StudyStatus(study, audience, today)
    upcoming = milestones.list_for(session, audience, today=today, open_only=True, limit=50)
    st.late_milestones = [m for m in upcoming if milestones.is_late(m, today)]
    horizon = today + timedelta(days=30)
    st.next_milestones = [
        m
        for m in upcoming
        if not milestones.is_late(m, today) and (m.forecast_date or m.planned_date) <= horizon
    ][:5]
    # Count in SQL and load only the overdue rows: loading every open action as an ORM
    # object to count them cost ~15 ms per study at 2,000 actions (benchmarks/RESULTS.md).
    open_now = and_(action_filter(audience), ActionItem.status == ActionStatus.OPEN)
    st.open_actions = _count(session, ActionItem, open_now)
    st.overdue_count = _count(session, ActionItem, open_now, ActionItem.due_date < today)
    st.overdue_actions = actions.list_for(session, audience, today=today, overdue=True, limit=SHOWN)
    # Definitions and the study's targets (each organisation's) come with the points.
    since = kpis.since_weeks(today, kpi_weeks)
    # A trend compares the latest value with the one before: fetch just those two (loading
    # eight weeks of every organisation's KPIs was half of `/cro status`'s CPU).
    points = kpis.latest_with_definitions(
        session,
        audience,
        since=since,
        study_code=study.code,
        last_periods=2,
        definitions=kpis.definitions_by_id(session),
    )
    for kp in points:
        st.kpis.append((kp.definition, kpis.trend_of(kp.definition, kp.points, kp.target_of)))
    pending = and_(approval_filter(audience), Approval.state == ApprovalState.PENDING)
    st.pending_count = _count(session, Approval, pending)
    st.pending_approvals = list(
        session.scalars(
            select(Approval).where(pending).order_by(Approval.requested_at).limit(SHOWN)
        )
    )
    st.open_breaches = qtl.open_breaches(session, audience)
    return st


def _count(session: Session, model: type[Base], *conds: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*conds)) or 0)
