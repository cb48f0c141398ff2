"""Digest composition: a view model for one channel, built by a fixed number of queries.

Queries per digest (independent of how many milestones, actions or KPI values exist):
1. the last digest sent to this channel (the "since" of "completed since last digest"),
2. milestones due / slipped / completed (one query, sorted into sections here),
3. open action items with their owner's display name,
4. every KPI's points for the trend window, with its definition and the study's targets
   that apply to each organisation joined in (`services.kpis.latest_with_definitions`),
5. pending approvals with their total count (sponsor channels only),
6. the study's sites this audience sees, and — only when there are some — their current
   reports, the reports awaiting approval and the enrolment milestones (the forecast line),
7. open QTL breaches (sponsor channels only).
The channel link itself is loaded by the caller (one more query, with its study joined).

The audience rule is applied in those queries through `services.visibility`; nothing is
filtered in the templates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Executable,
    Over,
    ScalarSelect,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from crobot.services import forecast_changes, qtl
from crobot.services import kpis as kpi_service
from crobot.services.enrolment import study_forecast
from crobot.services.errors import UserError
from crobot.services.kpi_targets import AppliedTarget
from crobot.services.kpis import Point, Trend
from crobot.services.visibility import (
    Audience,
    Scope,
    action_filter,
    approval_filter,
    audience_for_channel,
    milestone_filter,
)
from crobot.storage.models import (
    ActionItem,
    ActionStatus,
    Approval,
    ApprovalState,
    AuditEvent,
    ChannelLink,
    DigestRun,
    DigestRunState,
    Direction,
    Milestone,
    MilestoneStatus,
    Organization,
    Person,
    UtcDateTime,
)

DUE_DAYS = 14
KPI_WEEKS = 8
LATER_ROWS = 3  # the next milestones after the due window
ROW_LIMIT = 500  # rows a digest reads at most; counts come from COUNT, never from the rows
APPROVAL_LIMIT = 20
OPEN = (MilestoneStatus.PLANNED, MilestoneStatus.AT_RISK)
COMPLETED = (MilestoneStatus.DONE, MilestoneStatus.APPROVED)


@dataclass(frozen=True)
class MilestoneRow:
    id: int
    name: str
    org_name: str | None
    planned: date
    forecast: date | None
    actual: date | None
    status: MilestoneStatus

    @property
    def due(self) -> date:
        return self.forecast or self.planned

    @property
    def slip_days(self) -> int:
        return (self.forecast - self.planned).days if self.forecast else 0


@dataclass(frozen=True)
class ActionRow:
    id: int
    title: str
    owner_user_id: str
    owner_name: str
    due: date
    priority: str
    overdue: bool


@dataclass
class OwnerGroup:
    owner_name: str
    items: list[ActionRow] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        return sum(1 for a in self.items if a.overdue)


@dataclass(frozen=True)
class KpiView:
    key: str
    label: str
    unit: str
    target: float | None  # the catalogue's default; each trend has the one that applies
    direction: Direction
    trends: list[Trend]
    points: list[Point]

    @property
    def period_count(self) -> int:
        return len({p.period_start for p in self.points})

    @property
    def targets(self) -> dict[str, AppliedTarget]:
        """The target that applies to each organisation shown, by its name (charts)."""
        return {t.org_name: t.target for t in self.trends}


@dataclass(frozen=True)
class ApprovalRow:
    id: int
    kind: str
    summary: dict[str, object]
    requested_by: str
    requested_at: datetime  # in the channel's zone


@dataclass(frozen=True)
class ForecastLine:
    """The study's enrolment forecast in one line (services/enrolment.py)."""

    enrolled: int
    target: int
    p10: date | None
    p50: date | None
    p90: date | None
    fallback: bool  # the pooled-Poisson fallback, said so in the line
    own_sites: bool  # computed from the sites this audience sees, not the whole study


@dataclass(frozen=True)
class Changes:
    """What happened since the channel's last digest (counts over what it may see)."""

    actions_opened: int
    actions_closed: int
    approvals_requested: int
    approved: int
    rejected: int
    reforecast: int = 0  # milestone forecast dates changed
    slipped: int = 0  # of those, moved later (than the previous forecast, else the plan)
    escalated: int = 0  # overdue actions escalated to their organisation's lead

    def __bool__(self) -> bool:
        return any(
            (
                self.actions_opened,
                self.actions_closed,
                self.approvals_requested,
                self.approved,
                self.rejected,
                self.reforecast,
                self.escalated,
            )
        )


@dataclass
class DigestView:
    study_code: str
    study_title: str
    audience: Audience
    channel_id: str
    timezone: str
    generated_at: datetime  # in the channel's zone
    since: date
    due: list[MilestoneRow] = field(default_factory=list)
    slipped: list[MilestoneRow] = field(default_factory=list)
    completed: list[MilestoneRow] = field(default_factory=list)
    # How many there are of each (COUNT over the whole filtered set, not the rows read).
    due_total: int = 0
    slipped_total: int = 0
    completed_total: int = 0
    owners: list[OwnerGroup] = field(default_factory=list)
    open_actions: int = 0
    overdue_actions: int = 0
    kpis: list[KpiView] = field(default_factory=list)
    approvals: list[ApprovalRow] = field(default_factory=list)
    pending_approvals: int = 0
    forecast: ForecastLine | None = None
    changes: Changes | None = None
    charts: bool = True  # the channel's `/cro digest charts on|off`
    later: list[MilestoneRow] = field(default_factory=list)  # the next ones after 14 days
    breaches: list[qtl.OpenBreach] = field(default_factory=list)  # open: sponsor only

    @property
    def today(self) -> date:
        return self.generated_at.date()


def compose(
    session: Session, link: ChannelLink, now: datetime, *, audience: Audience | None = None
) -> DigestView:
    """The digest for one channel as of `now` (aware). `audience` may only narrow the link's."""
    zone = ZoneInfo(link.timezone)
    local_now = now.astimezone(zone)
    today = local_now.date()
    aud = audience or audience_for_channel(link)
    week_ago = today - timedelta(days=7)
    default = datetime.combine(week_ago, datetime.min.time(), zone)
    last, changes = _since_last(session, link.id, now, aud, default)
    since = last.astimezone(zone).date() if last else week_ago
    view = DigestView(
        study_code=link.study.code,
        study_title=link.study.title,
        audience=aud,
        channel_id=link.channel_id,
        timezone=link.timezone,
        generated_at=local_now,
        since=since,
        charts=link.charts_enabled,
    )
    _milestones(session, view, aud, today, since)
    _actions(session, view, aud, today)
    view.changes = changes
    _kpis(session, view, aud, today)
    if aud.scope == Scope.SPONSOR:
        _approvals(session, view, aud, zone)
        view.breaches = qtl.open_breaches(session, aud)
    _forecast(session, view, link, aud, today)
    return view


def _forecast(
    session: Session, view: DigestView, link: ChannelLink, aud: Audience, today: date
) -> None:
    """The enrolment forecast line, when the study has a target and sites with data."""
    if link.study.enrolment_target is None:
        return
    try:
        sf = study_forecast(session, link.study, as_of=today, audience=aud)
    except UserError:
        return  # no site with enrolment data this audience sees: no line
    f = sf.forecast
    view.forecast = ForecastLine(
        f.enrolled, f.target, f.p10, f.p50, f.p90, f.is_fallback, not sf.whole_study
    )


def _milestones(
    session: Session, view: DigestView, aud: Audience, today: date, since: date
) -> None:
    due_by = today + timedelta(days=DUE_DAYS)
    effective = func.coalesce(Milestone.forecast_date, Milestone.planned_date)
    is_open = Milestone.status.in_(OPEN)
    later = Milestone.forecast_date > Milestone.planned_date
    # The three lists, as SQL conditions: their window totals are the counts shown.
    slipped = and_(is_open, or_(later, effective < today))
    due = and_(
        is_open,
        effective >= today,
        effective <= due_by,
        or_(Milestone.forecast_date.is_(None), Milestone.forecast_date <= Milestone.planned_date),
    )
    completed = and_(Milestone.status.in_(COMPLETED), Milestone.actual_date >= since)
    row_cols = (
        Milestone.id,
        Milestone.name,
        Organization.name.label("org_name"),
        Milestone.planned_date,
        Milestone.forecast_date,
        Milestone.actual_date,
        Milestone.status,
    )
    window = (
        select(
            *row_cols,
            _window_count(due).label("n_due"),
            _window_count(slipped).label("n_slipped"),
            _window_count(completed).label("n_completed"),
            literal(False).label("later"),
            effective.label("effective"),
        )
        .outerjoin(Organization, Organization.id == Milestone.org_id)
        .where(milestone_filter(aud), or_(due, slipped, completed))
        .order_by(effective, Milestone.id)
        .limit(ROW_LIMIT)
        .subquery()
    )
    # The next few open ones after the window, in the same statement (the digest's query
    # count stays what it was): "what is coming after that".
    coming = (
        select(
            *row_cols,
            literal(0).label("n_due"),
            literal(0).label("n_slipped"),
            literal(0).label("n_completed"),
            literal(True).label("later"),
            effective.label("effective"),
        )
        .outerjoin(Organization, Organization.id == Milestone.org_id)
        .where(milestone_filter(aud), Milestone.status.in_(OPEN), effective > due_by)
        .order_by(effective, Milestone.id)
        .limit(LATER_ROWS)
        .subquery()
    )
    both = union_all(select(*window.c), select(*coming.c)).subquery()
    stmt = select(*both.c).order_by(both.c.later, both.c.effective, both.c.id)
    for *row, n_due, n_slipped, n_completed, is_later, _ in _rows(session, stmt):
        m = MilestoneRow(*row)
        if is_later:
            view.later.append(m)
            continue
        view.due_total, view.slipped_total = int(n_due or 0), int(n_slipped or 0)
        view.completed_total = int(n_completed or 0)
        if m.status in COMPLETED:
            view.completed.append(m)
        elif (m.forecast and m.forecast > m.planned) or m.due < today:
            view.slipped.append(m)
        else:
            view.due.append(m)


def _since_last(
    session: Session, link_id: int, now: datetime, aud: Audience, default: datetime
) -> tuple[datetime | None, Changes]:
    """When the channel's previous digest went out (before `now`: a thread reply composed
    as of its parent's time does not count the parent), and what happened since then (or
    since `default`): actions opened, closed and escalated, milestone forecasts changed
    and slipped (from their audit events), approvals asked for and decided. One
    statement."""
    # The previous digest's time, looked up once: a one-row derived table the counts below
    # refer to (inlined in each of them, the lookup ran once per count).
    prev = (
        select(func.max(DigestRun.sent_at).label("sent_at"))
        .where(
            DigestRun.target == f"link:{link_id}",
            DigestRun.state == DigestRunState.SENT,
            DigestRun.sent_at < now,
        )
        .subquery("prev")
    )
    last = prev.c.sent_at
    start = func.coalesce(last, literal(default, UtcDateTime()))

    def actions(cond: ColumnElement[bool]) -> ScalarSelect[int]:
        return select(func.count()).where(action_filter(aud), cond).scalar_subquery()

    def approvals(cond: ColumnElement[bool]) -> ScalarSelect[int]:
        return select(func.count()).where(approval_filter(aud), cond).scalar_subquery()

    def reforecasts(cond: ColumnElement[bool]) -> ScalarSelect[int]:
        return (
            select(func.count())
            .select_from(AuditEvent)
            .join(Milestone, AuditEvent.subject_id == cast(Milestone.id, String))
            .where(
                milestone_filter(aud),
                AuditEvent.study_id == Milestone.study_id,
                AuditEvent.at >= start,
                cond,
            )
            .scalar_subquery()
        )

    decided = and_(Approval.decided_at.is_not(None), Approval.decided_at >= start)
    sent, *counts = (
        session.connection()
        .execute(
            select(
                last,
                actions(ActionItem.created_at >= start),
                actions(ActionItem.completed_at >= start),
                approvals(Approval.requested_at >= start),
                approvals(and_(decided, Approval.state == ApprovalState.APPROVED)),
                approvals(and_(decided, Approval.state == ApprovalState.REJECTED)),
                reforecasts(forecast_changes.changed()),
                reforecasts(forecast_changes.slipped()),
                actions(ActionItem.escalated_at >= start),
            ).select_from(prev)
        )
        .one()
    )
    return sent, Changes(*(int(n or 0) for n in counts))


def _window_count(condition: ColumnElement[bool]) -> Over[int]:
    """How many rows of the whole filtered set meet `condition` (not just the rows read)."""
    return func.sum(case((condition, 1), else_=0)).over()


def _actions(session: Session, view: DigestView, aud: Audience, today: date) -> None:
    overdue = ActionItem.due_date < today
    stmt = (
        select(
            ActionItem.id,
            ActionItem.title,
            ActionItem.owner_team_id,
            ActionItem.owner_user_id,
            Person.display_name,
            ActionItem.due_date,
            ActionItem.priority,
            func.count().over(),
            _window_count(overdue),
        )
        .outerjoin(
            Person,
            and_(
                Person.slack_user_id == ActionItem.owner_user_id,
                Person.team_id == ActionItem.owner_team_id,
            ),
        )
        .where(action_filter(aud), ActionItem.status == ActionStatus.OPEN)
        .order_by(ActionItem.due_date, ActionItem.id)
        .limit(ROW_LIMIT)
    )
    # One group per person: the same user id in two workspaces is two people.
    groups: dict[tuple[str | None, str], OwnerGroup] = {}
    for aid, title, team, owner, name, due, prio, total, late in _rows(session, stmt):
        view.open_actions, view.overdue_actions = int(total), int(late or 0)
        label = name or owner
        row = ActionRow(aid, title, owner, label, due, prio.value, due < today)
        groups.setdefault((team, owner), OwnerGroup(label)).items.append(row)
    # Owners with overdue work first, then by name: the reader's first question.
    view.owners = sorted(groups.values(), key=lambda g: (-g.overdue, g.owner_name.lower()))


def _kpis(session: Session, view: DigestView, aud: Audience, today: date) -> None:
    since = kpi_service.since_weeks(today, KPI_WEEKS)
    # The definitions and targets come with the points: one statement (the budget is 8).
    code = view.study_code
    for kp in kpi_service.latest_with_definitions(session, aud, since=since, study_code=code):
        d = kp.definition
        trends = kpi_service.trend_of(d, kp.points, kp.target_of)
        view.kpis.append(KpiView(d.key, d.label, d.unit, d.target, d.direction, trends, kp.points))


def _approvals(session: Session, view: DigestView, aud: Audience, zone: ZoneInfo) -> None:
    stmt = (
        select(
            Approval.id,
            Approval.subject_type,
            Approval.summary,
            Approval.requested_by,
            Approval.requested_at,
            func.count().over().label("total"),
        )
        .where(approval_filter(aud), Approval.state == ApprovalState.PENDING)
        .order_by(Approval.requested_at, Approval.id)
        .limit(APPROVAL_LIMIT)
    )
    for aid, kind, summary, by, at, total in _rows(session, stmt):
        view.pending_approvals = int(total)
        view.approvals.append(
            ApprovalRow(aid, kind.value, dict(summary or {}), by, at.astimezone(zone))
        )


def _rows(session: Session, stmt: Executable) -> Iterator[Any]:
    """A column select run on the session's connection: the rows as the database gives
    them, without the ORM's result processing (no entities here; issue 18's profile)."""
    return iter(session.connection().execute(stmt))
