"""KPI values: report (corrections supersede), series per organisation, trend, latest.

The current value rule, the one every view applies (status, `kpi show`, `kpi trend`,
digests, charts): for one organisation, KPI and period, the current value is the newest
one that was not rejected (`current_value_ids`). A rejected correction therefore leaves
the value it would have corrected current, and a rejected first value leaves the period
without one; a rejection is news for the submitter (the approval's notice), never a value.
A current value that still awaits approval is shown marked (`pending_mark`:
"12 (pending approval)").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, TypeVar, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints
from sqlalchemy import ColumnElement, Select, Subquery, and_, func, select
from sqlalchemy.orm import Session

from crobot.services import approvals, audit
from crobot.services.actor import Actor
from crobot.services.errors import Forbidden, UserError, msg, validate
from crobot.services.kpi_catalog import Period, current_period, key_word, parse_period
from crobot.services.kpi_targets import AppliedTarget, applied, join_targets
from crobot.services.kpi_values import Reading, check_value, parse_value
from crobot.services.lookup import (
    kpi_by_key,
    org_by_name,
    reportable_kpis,
    study_named_by,
    vendor_org_ids,
)
from crobot.services.permissions import may_report, needs_approval, require_org_write
from crobot.services.visibility import Audience, kpi_filter
from crobot.storage.models import (
    ApprovalState,
    Direction,
    KpiDefinition,
    KpiKind,
    KpiUpdate,
    Organization,
    Study,
    SubjectType,
)

FIELDS = (
    "study_id",
    "org_id",
    "kpi_id",
    "period_label",
    "value",
    "note",
    "approval_state",
    "supersedes_id",
)
T = TypeVar("T")
REPORT_HINT = 'Write it as `/cro kpi report STUDY KPI VALUE [period:2026-W47] [note:"..."]`.'


class KpiReport(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, arbitrary_types_allowed=True
    )
    study: str
    kpi: str
    # Raw text as typed (command word, form field, CSV cell): the one KPI value parser.
    value: Annotated[Reading, BeforeValidator(lambda raw: parse_value(raw, REPORT_HINT))]
    period: str | None = None
    note: Annotated[str, StringConstraints(max_length=500)] | None = None
    org: str | None = None


@dataclass(frozen=True)
class Reported:
    update: KpiUpdate
    previous: KpiUpdate | None
    approval_id: int | None  # the approval this value now awaits, if it needs one

    @property
    def approval_requested(self) -> bool:
        return self.approval_id is not None


class ReportLookups:
    """The studies, KPIs, organisations and periods a series of reports names, read once
    each, and the reporter's rights on each (study, organisation), decided once (a CSV
    import names the same few thousands of times). A name that failed fails the same way
    again without another query."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session, self.actor = session, actor
        self._found: dict[tuple[str, object], object] = {}

    def _get(self, kind: str, key: object, find: Callable[[], T]) -> T:
        found = self._found.get((kind, key))
        if found is None:
            try:
                found = find()
            except UserError as exc:
                found = exc
            self._found[(kind, key)] = found
        if isinstance(found, UserError):
            raise found.with_traceback(None)  # not one traceback grown by every row
        return cast(T, found)

    def study(self, code: str) -> Study:
        return self._get(
            "study", code.upper(), lambda: study_named_by(self.session, self.actor, code)
        )

    def kpi(self, raw: str) -> KpiDefinition:
        return self._get("kpi", raw, lambda: kpi_by_key(self.session, raw))

    def org(self, name: str) -> Organization:
        return self._get("org", name.lower(), lambda: org_by_name(self.session, name))

    def period(self, raw: str) -> Period:
        return self._get("period", raw, lambda: parse_period(raw))

    def waits(self, study: Study, org_id: int) -> bool:
        """Whether the reporter may report `org_id`'s values on `study` (else UserError),
        and whether those values wait for an approver."""

        def decide() -> bool:
            vendors = vendor_org_ids(self.session, study.id)
            if org_id not in vendors and org_id != study.sponsor_org_id:
                raise UserError("That organisation is not on this study.", REPORT_HINT, field="org")
            require_org_write(self.actor, study, vendors, org_id)
            return needs_approval(self.actor, study, org_id)

        return self._get("waits", (study.id, org_id), decide)


@dataclass(frozen=True)
class CheckedReport:
    """A report that passed every rule, not stored yet."""

    study: Study
    kpi: KpiDefinition
    org_id: int
    value: float
    period: Period
    note: str | None
    waits: bool  # for an approver (services/permissions.py `needs_approval`)


def check_report(
    session: Session,
    actor: Actor,
    data: dict[str, object],
    *,
    today: date,
    lookups: ReportLookups | None = None,
) -> CheckedReport:
    """Every rule a reported value must pass (input, visibility, rights, range, period)."""
    inp = validate(KpiReport, data, REPORT_HINT)
    look = lookups or ReportLookups(session, actor)
    study = look.study(inp.study)
    kpi = look.kpi(inp.kpi)
    if inp.org:
        org_id = look.org(inp.org).id
    elif actor.org_id is not None:
        org_id = actor.org_id
    else:
        org_id = study.sponsor_org_id
    waits = look.waits(study, org_id)
    require_open(kpi)
    require_reportable(session, actor, study, kpi)
    value = check_value(kpi, inp.value)
    period: Period = look.period(inp.period) if inp.period else current_period(today)
    if period.start > today:
        raise UserError(
            msg("The period {} has not started yet.", period.label),
            "Report values for the current or a past period.",
            field="period",
        )
    return CheckedReport(study, kpi, org_id, value, period, inp.note, waits)


def report(session: Session, actor: Actor, *, today: date, **data: object) -> Reported:
    c = check_report(session, actor, data, today=today)
    previous = latest_row(session, c.study.id, c.kpi.id, c.org_id, c.period.start)
    update = KpiUpdate(
        study_id=c.study.id,
        org_id=c.org_id,
        kpi_id=c.kpi.id,
        period_start=c.period.start,
        period_label=c.period.label,
        value=c.value,
        note=c.note,
        submitted_by=actor.label,
        approval_state=ApprovalState.PENDING if c.waits else ApprovalState.APPROVED,
        supersedes_id=previous.id if previous else None,
    )
    session.add(update)
    session.flush()
    audit.record(
        session,
        actor,
        "kpi.report" if previous is None else "kpi.correct",
        "kpi_update",
        update.id,
        study_id=c.study.id,
        before=audit.snapshot(previous, *FIELDS) if previous else None,
        after=audit.snapshot(update, *FIELDS),
    )
    approval_id = None
    if not c.waits:
        from crobot.services import qtl  # it reads KPI values: imported late

        qtl.check(session, update, today)  # approved at once: checked against the limits
    if c.waits:
        approval_id = approvals.request(
            session,
            actor,
            subject_type=SubjectType.KPI_UPDATE,
            subject_id=update.id,
            study_id=c.study.id,
            org_id=c.org_id,
            summary=approval_summary(c, previous.value if previous else None),
        ).id
    return Reported(update, previous, approval_id)


def require_open(kpi: KpiDefinition) -> None:
    """A retired KPI keeps its history but takes no new value (nor correction)."""
    if kpi.retired_at is not None:
        raise UserError(
            msg(
                "{} ({}) was retired on {}: its history stays, but it takes no new values.",
                kpi.label,
                key_word(kpi.key),
                kpi.retired_at.date().isoformat(),
            ),
            "`/cro kpi list` shows the KPIs in use.",
            field="kpi",
        )


KIND_WORDS = {
    KpiKind.CRO: "a CRO KPI",
    KpiKind.CMO: "a CMO KPI",
    KpiKind.LAB: "a lab KPI",
    KpiKind.SPONSOR: "the sponsor's rating of a vendor",
    KpiKind.ANY: "a KPI for everyone",
}


def require_reportable(session: Session, actor: Actor, study: Study, kpi: KpiDefinition) -> None:
    """A vendor reports the KPIs of its kind and those for everyone; the sponsor any."""
    if may_report(actor, study, kpi.kind):
        return
    keys = [key_word(d.key) for d in reportable_kpis(session, actor)]
    who = actor.person.org.name if actor.person else "You"
    raise Forbidden(
        msg(
            "{} does not report {} ({}): it is " + KIND_WORDS[kpi.kind] + ".",
            who,
            kpi.label,
            key_word(kpi.key),
        ),
        msg("It reports: " + ", ".join("{}" for _ in keys) + ".", *keys)
        if keys
        else msg("It reports no KPI of the catalogue."),
        field="kpi",
    )


def approval_summary(c: CheckedReport, old: float | None) -> dict[str, object]:
    """What an approver is shown of a value that waits: the KPI, the period, old -> new."""
    return {
        "kind": "kpi",
        "study": c.study.code,
        "kpi": c.kpi.key,
        "label": c.kpi.label,
        "unit": c.kpi.unit,
        "period": c.period.label,
        "old": old,
        "new": c.value,
        "note": c.note,
    }


NOT_REJECTED = KpiUpdate.approval_state != ApprovalState.REJECTED
PENDING_APPROVAL = "pending approval"


def current_value_ids(*where: ColumnElement[bool], per_kpi: bool = False) -> Subquery:
    """The id of the current value (the newest not rejected) per organisation and period
    (and KPI, `per_kpi`) among the rows matching `where`: the one home of that rule."""
    by = (KpiUpdate.kpi_id,) if per_kpi else ()
    return (
        select(func.max(KpiUpdate.id).label("id"))
        .where(NOT_REJECTED, *where)
        .group_by(*by, KpiUpdate.org_id, KpiUpdate.period_start)
        .subquery()
    )


def latest_row(
    session: Session, study_id: int, kpi_id: int, org_id: int, period_start: date
) -> KpiUpdate | None:
    """The current value of one organisation's KPI for one period (what a report corrects)."""
    return session.scalars(
        select(KpiUpdate)
        .where(
            NOT_REJECTED,
            KpiUpdate.study_id == study_id,
            KpiUpdate.kpi_id == kpi_id,
            KpiUpdate.org_id == org_id,
            KpiUpdate.period_start == period_start,
        )
        .order_by(KpiUpdate.id.desc())
        .limit(1)
    ).first()


@dataclass(frozen=True)
class Point:
    org_id: int
    org_name: str
    period_start: date
    period_label: str
    value: float
    approval_state: ApprovalState  # approved or pending: rejected values are never current
    note: str | None

    @property
    def pending(self) -> bool:
        return self.approval_state == ApprovalState.PENDING


def pending_mark(point: Point) -> str:
    """What follows a value that awaits approval, everywhere it is shown."""
    return f" ({PENDING_APPROVAL})" if point.pending else ""


def series(
    session: Session,
    audience: Audience,
    kpi: KpiDefinition,
    *,
    since: date | None = None,
    until: date | None = None,
) -> list[Point]:
    """The current value per organisation and period this audience may see, oldest period
    first.

    Current among the visible: in a joint channel a pending correction is invisible, so the
    approved value it would supersede is still what that audience sees.
    """
    conds = [kpi_filter(audience), KpiUpdate.kpi_id == kpi.id]
    if since is not None:
        conds.append(KpiUpdate.period_start >= since)
    if until is not None:
        conds.append(KpiUpdate.period_start <= until)
    newest = current_value_ids(*conds)
    stmt = (
        select(
            KpiUpdate.org_id,
            Organization.name,
            KpiUpdate.period_start,
            KpiUpdate.period_label,
            KpiUpdate.value,
            KpiUpdate.approval_state,
            KpiUpdate.note,
        )
        .join(newest, newest.c.id == KpiUpdate.id)
        .join(Organization, Organization.id == KpiUpdate.org_id)
        .order_by(KpiUpdate.period_start, Organization.name)
    )
    return [Point(*row) for row in session.execute(stmt)]


def since_weeks(today: date, weeks: int) -> date:
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks - 1)


@dataclass(frozen=True)
class Trend:
    org_name: str
    latest: Point
    previous: Point | None
    change: float | None
    arrow: str  # ▲ ▼ or →
    good: bool | None  # moved in the KPI's better direction
    on_target: bool | None
    target: AppliedTarget  # the one that applies to this organisation (services/kpi_targets)


TargetOf = Callable[[int], AppliedTarget]  # an organisation's id -> its applied target


def default_target(kpi: KpiDefinition) -> AppliedTarget:
    """The catalogue's target, for a KPI read outside any study's targets."""
    return applied(None, None, kpi.target)


def trend_of(
    kpi: KpiDefinition, points: list[Point], targets: TargetOf | None = None
) -> list[Trend]:
    """Latest vs previous period per organisation, with the KPI's better direction, against
    the target that applies to that organisation (`targets`; else the catalogue's)."""
    by_org: dict[str, list[Point]] = {}
    for p in points:
        by_org.setdefault(p.org_name, []).append(p)
    out = []
    for org, pts in sorted(by_org.items()):
        latest = pts[-1]
        prev = pts[-2] if len(pts) > 1 else None
        change = latest.value - prev.value if prev else None
        arrow = "→" if not change else ("▲" if change > 0 else "▼")
        good = None if not change else ((change > 0) == (kpi.direction == Direction.UP))
        target = targets(latest.org_id) if targets is not None else default_target(kpi)
        on_target = target.met_by(latest.value, kpi.direction)
        out.append(Trend(org, latest, prev, change, arrow, good, on_target, target))
    return out


def _latest_stmt(
    audience: Audience, since: date, last_periods: int | None = None
) -> Select[int, int, str, date, str, float, ApprovalState, str | None]:
    newest = current_value_ids(kpi_filter(audience), KpiUpdate.period_start >= since, per_kpi=True)
    if last_periods is not None:
        # Only each organisation's newest `last_periods` current values of each KPI.
        rank = func.row_number().over(
            partition_by=(KpiUpdate.kpi_id, KpiUpdate.org_id),
            order_by=KpiUpdate.period_start.desc(),
        )
        newest = (
            select(KpiUpdate.id, rank.label("rank"))
            .join(newest, newest.c.id == KpiUpdate.id)
            .subquery()
        )
    stmt = (
        select(
            KpiUpdate.kpi_id,
            KpiUpdate.org_id,
            Organization.name,
            KpiUpdate.period_start,
            KpiUpdate.period_label,
            KpiUpdate.value,
            KpiUpdate.approval_state,
            KpiUpdate.note,
        )
        .join(newest, and_(newest.c.id == KpiUpdate.id))
        .join(Organization, Organization.id == KpiUpdate.org_id)
    )
    if last_periods is not None:
        stmt = stmt.where(newest.c.rank <= last_periods)
    return stmt


@dataclass(frozen=True)
class KpiPoints:
    """One KPI's definition, its current points, and the target each organisation has."""

    definition: KpiDefinition
    points: list[Point]
    targets: dict[int, AppliedTarget]  # by organisation id

    def target_of(self, org_id: int) -> AppliedTarget:
        return self.targets.get(org_id) or default_target(self.definition)


def definitions_by_id(session: Session) -> dict[int, KpiDefinition]:
    """The whole catalogue (a few dozen rows), for `latest_with_definitions`' callers that
    read it once for several queries."""
    return {d.id: d for d in session.scalars(select(KpiDefinition))}


def latest_with_definitions(
    session: Session,
    audience: Audience,
    *,
    since: date,
    study_code: str | None = None,
    last_periods: int | None = None,
    definitions: Mapping[int, KpiDefinition] | None = None,
) -> list[KpiPoints]:
    """Every KPI's current points since a date for one audience, with its definition and
    the target that applies to each organisation (services/kpi_targets.py), by label: one
    query, the study's targets joined in (status, digests: the digest's budget is 8).
    `last_periods`: only each organisation's newest that many points (a trend needs 2).
    `definitions` (`definitions_by_id`): the catalogue already read, so that the query
    does not build the definition again on each of its rows (~3.5 µs a row)."""
    base = _latest_stmt(audience, since, last_periods)
    if definitions is None:
        base = base.add_columns(KpiDefinition)
    stmt = join_targets(
        base.join(KpiDefinition, KpiDefinition.id == KpiUpdate.kpi_id),
        study_id=KpiUpdate.study_id,
        kpi_key=KpiDefinition.key,
        org_id=KpiUpdate.org_id,
    ).order_by(KpiDefinition.label, KpiUpdate.kpi_id, KpiUpdate.period_start, Organization.name)
    out: dict[int, KpiPoints] = {}
    for row in session.execute(stmt):
        if definitions is None:
            *fields, definition, org_target, study_target = row
        else:
            *fields, org_target, study_target = row
            # A KPI defined after the catalogue was read (another transaction, between
            # the two statements) is looked up on its own.
            definition = definitions.get(fields[0]) or session.get_one(KpiDefinition, fields[0])
        kp = out.get(fields[0])
        if kp is None:
            kp = out[fields[0]] = KpiPoints(definition, [], {})
        point = Point(*fields[1:])
        kp.points.append(point)
        if point.org_id not in kp.targets:  # the same for each of its periods
            kp.targets[point.org_id] = applied(
                org_target,
                study_target,
                definition.target,
                study_code=study_code,
                org_name=point.org_name,
            )
    return list(out.values())
