"""KPI values: report (corrections supersede), series per organisation, trend, latest."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from crobot.services import approvals, audit
from crobot.services.actor import Actor
from crobot.services.errors import UserError, msg, validate
from crobot.services.kpi_catalog import Period, current_period, parse_period
from crobot.services.kpi_values import parse_value
from crobot.services.lookup import kpi_by_key, org_by_name, study_named_by, vendor_org_ids
from crobot.services.permissions import is_sponsor, require_org_write
from crobot.services.visibility import Audience, kpi_filter
from crobot.storage.models import (
    ApprovalState,
    Direction,
    KpiDefinition,
    KpiUpdate,
    Organization,
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
REPORT_HINT = 'Write it as `/cro kpi report STUDY KPI VALUE [period:2026-W47] [note:"..."]`.'


class KpiReport(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    study: str
    kpi: str
    # Raw text as typed (command word, form field, CSV cell): the one KPI value parser.
    value: Annotated[float, BeforeValidator(lambda raw: parse_value(raw, REPORT_HINT))]
    period: str | None = None
    note: Annotated[str, StringConstraints(max_length=500)] | None = None
    org: str | None = None


def check_value(kpi: KpiDefinition, value: float) -> None:
    label = msg("{} ({})", kpi.label, kpi.unit)
    if not math.isfinite(value):
        raise UserError(msg("{} is not a number I can store for {}.", value, label), field="value")
    if kpi.min_value is not None and value < kpi.min_value:
        raise UserError(
            msg(f"{{}} cannot be below {kpi.min_value:g}; you gave {value:g}.", label),
            field="value",
        )
    if kpi.max_value is not None and value > kpi.max_value:
        raise UserError(
            msg(f"{{}} cannot be above {kpi.max_value:g}; you gave {value:g}.", label),
            field="value",
        )
    if kpi.integer and value != int(value):
        raise UserError(msg(f"{{}} is a whole number; you gave {value:g}.", label), field="value")


@dataclass(frozen=True)
class Reported:
    update: KpiUpdate
    previous: KpiUpdate | None
    approval_id: int | None  # the approval this value now awaits, if it needs one

    @property
    def approval_requested(self) -> bool:
        return self.approval_id is not None


def report(session: Session, actor: Actor, *, today: date, **data: object) -> Reported:
    inp = validate(KpiReport, data, REPORT_HINT)
    study = study_named_by(session, actor, inp.study)
    kpi = kpi_by_key(session, inp.kpi)
    vendors = vendor_org_ids(session, study.id)
    if inp.org:
        org_id = org_by_name(session, inp.org).id
    elif actor.org_id is not None:
        org_id = actor.org_id
    else:
        org_id = study.sponsor_org_id
    if org_id not in vendors and org_id != study.sponsor_org_id:
        raise UserError("That organisation is not on this study.", REPORT_HINT, field="org")
    require_org_write(actor, study, vendors, org_id)
    check_value(kpi, inp.value)
    period: Period = parse_period(inp.period) if inp.period else current_period(today)
    if period.start > today:
        raise UserError(
            msg("The period {} has not started yet.", period.label),
            "Report values for the current or a past period.",
            field="period",
        )
    previous = latest_row(session, study.id, kpi.id, org_id, period.start)
    needs_approval = not is_sponsor(actor, study)
    update = KpiUpdate(
        study_id=study.id,
        org_id=org_id,
        kpi_id=kpi.id,
        period_start=period.start,
        period_label=period.label,
        value=inp.value,
        note=inp.note,
        submitted_by=actor.label,
        approval_state=ApprovalState.PENDING if needs_approval else ApprovalState.APPROVED,
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
        study_id=study.id,
        before=audit.snapshot(previous, *FIELDS) if previous else None,
        after=audit.snapshot(update, *FIELDS),
    )
    approval_id = None
    if needs_approval:
        approval_id = approvals.request(
            session,
            actor,
            subject_type=SubjectType.KPI_UPDATE,
            subject_id=update.id,
            study_id=study.id,
            org_id=org_id,
            summary={
                "kind": "kpi",
                "study": study.code,
                "kpi": kpi.key,
                "label": kpi.label,
                "unit": kpi.unit,
                "period": period.label,
                "old": previous.value if previous else None,
                "new": inp.value,
                "note": inp.note,
            },
        ).id
    return Reported(update, previous, approval_id)


def latest_row(
    session: Session, study_id: int, kpi_id: int, org_id: int, period_start: date
) -> KpiUpdate | None:
    return session.scalars(
        select(KpiUpdate)
        .where(
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
    approval_state: ApprovalState
    note: str | None


def series(
    session: Session,
    audience: Audience,
    kpi: KpiDefinition,
    *,
    since: date | None = None,
    until: date | None = None,
) -> list[Point]:
    """The current (newest, visible) value per organisation and period, oldest period first.

    "Newest visible" matters: in a joint channel a pending correction is invisible, so the
    approved value it would supersede is still what that audience sees.
    """
    conds = [kpi_filter(audience), KpiUpdate.kpi_id == kpi.id]
    if since is not None:
        conds.append(KpiUpdate.period_start >= since)
    if until is not None:
        conds.append(KpiUpdate.period_start <= until)
    newest = (
        select(func.max(KpiUpdate.id).label("id"))
        .where(*conds)
        .group_by(KpiUpdate.org_id, KpiUpdate.period_start)
        .subquery()
    )
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


def trend_of(kpi: KpiDefinition, points: list[Point]) -> list[Trend]:
    """Latest vs previous period per organisation, with the KPI's better direction."""
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
        on_target = None
        if kpi.target is not None:
            on_target = (
                latest.value >= kpi.target
                if kpi.direction == Direction.UP
                else latest.value <= kpi.target
            )
        out.append(Trend(org, latest, prev, change, arrow, good, on_target))
    return out


def latest_per_kpi(session: Session, audience: Audience, *, since: date) -> dict[int, list[Point]]:
    """Every KPI's points since a date for one audience, in one query (digests, status)."""
    newest = (
        select(func.max(KpiUpdate.id).label("id"))
        .where(kpi_filter(audience), KpiUpdate.period_start >= since)
        .group_by(KpiUpdate.kpi_id, KpiUpdate.org_id, KpiUpdate.period_start)
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
        .order_by(KpiUpdate.kpi_id, KpiUpdate.period_start, Organization.name)
    )
    out: dict[int, list[Point]] = {}
    for row in session.execute(stmt):
        out.setdefault(row.kpi_id, []).append(Point(*row[1:]))
    return out
