"""Vendor scorecards: per vendor and quarter, the computed measures and the vendor's
reported KPIs against the targets that apply (`services.kpi_targets`), each with a status
and the change from the previous quarter.

A line's status is a word: `on target`, `off target`, `no data` (nothing to measure in
the quarter) or `no target`. Its change says `better`, `worse` or `unchanged` by the
measure's direction. A reported KPI's value is its latest approved value for a period
ending in the quarter. Who may see which vendor's scorecard is `visibility.scorecard_orgs`.

`build` reads one study's records for all the vendors asked for in a fixed number of
queries (services/scorecard_inputs.py); the rest is pure.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import scorecard_inputs
from crobot.services.computed_measures import (
    DEFAULT_REPORT_DAYS,
    DEFAULT_TARGETS,
    SPONSOR_SIDE,
    Measure,
    compute_all,
)
from crobot.services.csv_cells import SafeWriter
from crobot.services.errors import Forbidden, UserError, msg
from crobot.services.kpi_targets import AppliedTarget, TargetBook, targets_for_study
from crobot.services.lookup import org_by_name, vendor_org_ids
from crobot.services.quarters import Quarter
from crobot.services.scorecard_inputs import ApprovedValue, StudyRecords
from crobot.services.sites import period_end
from crobot.services.visibility import Audience, Scope, scorecard_orgs
from crobot.storage.models import KpiDefinition, Organization, Study

ON, OFF, NO_DATA, NO_TARGET = "on target", "off target", "no data", "no target"
BETTER, WORSE, SAME = "better", "worse", "unchanged"
HINT = "Write it as `/cro scorecard [ORG] [period:2026-Q4] [study:CODE]`."
CSV_HEADER = (
    "study",
    "org",
    "period",
    "key",
    "label",
    "computed",
    "side",
    "value",
    "unit",
    "target",
    "target_source",
    "status",
    "previous",
    "change",
    "trend",
    "explanation",
)


def status_of(value: float | None, target: float | None, direction: str) -> str:
    if value is None:
        return NO_DATA
    if target is None:
        return NO_TARGET
    met = value >= target if direction == "up" else value <= target
    return ON if met else OFF


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    unit: str
    direction: str  # "up" or "down": which way is better
    computed: bool
    value: float | None
    previous: float | None  # the previous quarter's value
    target: AppliedTarget
    explanation: str
    side: str = "vendor"  # "sponsor": the sponsor's own measure (approval turnaround)

    @property
    def status(self) -> str:
        return status_of(self.value, self.target.value, self.direction)

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return round(self.value - self.previous, 2)

    @property
    def trend(self) -> str | None:
        change = self.change
        if change is None:
            return None
        if change == 0:
            return SAME
        return BETTER if (change > 0) == (self.direction == "up") else WORSE

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "computed": self.computed,
            "side": self.side,
            "value": self.value,
            "target": self.target.value,
            "target_source": self.target.source,
            "status": self.status,
            "explanation": self.explanation,
            "previous": self.previous,
            "change": self.change,
            "trend": self.trend,
        }


@dataclass(frozen=True)
class Scorecard:
    study_code: str
    org_id: int
    org_name: str
    quarter: Quarter
    as_of: date
    lines: list[Line]

    def counts(self) -> dict[str, int]:
        out = {ON: 0, OFF: 0, NO_DATA: 0, NO_TARGET: 0}
        for line in self.lines:
            out[line.status] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "org": self.org_name,
            "study": self.study_code,
            "period": self.quarter.label,
            "previous_period": self.quarter.previous().label,
            "as_of": self.as_of.isoformat(),
            "measures": [line.as_json() for line in self.lines],
        }


def computed_line(m: Measure, previous: Measure, target: AppliedTarget) -> Line:
    return Line(
        m.key,
        m.label,
        m.unit,
        m.direction,
        True,
        m.value,
        previous.value,
        target,
        m.explanation,
        "sponsor" if m.key in SPONSOR_SIDE else "vendor",
    )


def _latest_in(values: Sequence[ApprovedValue], q: Quarter) -> tuple[ApprovedValue | None, int]:
    """The approved value of the latest period ending in `q`, and how many periods had one."""
    inside = [v for v in values if q.contains(_end(v))]
    return (max(inside, key=_end) if inside else None), len(inside)


def _end(v: ApprovedValue) -> date:
    return period_end(v.period)


def reported_lines(
    values: Sequence[ApprovedValue],
    kpis: dict[int, KpiDefinition],
    q: Quarter,
    book: TargetBook,
    org_id: int,
) -> list[Line]:
    """One line per KPI the vendor has an approved value of in `q` or the quarter before."""
    by_kpi: dict[int, list[ApprovedValue]] = {}
    for v in values:
        by_kpi.setdefault(v.kpi_id, []).append(v)
    lines = []
    prev_q = q.previous()
    for kpi_id, vals in by_kpi.items():
        kpi = kpis.get(kpi_id)
        now, n = _latest_in(vals, q)
        before, _ = _latest_in(vals, prev_q)
        if kpi is None:
            continue
        if now is not None:
            explanation = (
                f"latest approved value, for {now.period.label} "
                f"({n} approved period{'s' if n != 1 else ''} ending in {q.label})"
            )
        elif before is not None:
            explanation = (
                f"no approved value for a period ending in {q.label} (last: {before.period.label})"
            )
        else:
            continue  # neither quarter has one: not this scorecard's KPI
        lines.append(
            Line(
                kpi.key,
                kpi.label,
                kpi.unit,
                kpi.direction.value,
                False,
                now.value if now else None,
                before.value if before else None,
                book.get(kpi.key, org_id, kpi.target),
                explanation,
            )
        )
    return sorted(lines, key=lambda line: line.label.lower())


def scorecard(
    records: StudyRecords,
    study: Study,
    org: Organization,
    q: Quarter,
    today: date,
    book: TargetBook,
) -> Scorecard:
    """One vendor's scorecard from loaded records: pure."""
    record = records.of(org.id)
    days = study.kpi_report_days or DEFAULT_REPORT_DAYS
    now = compute_all(record, q, today, days)
    before = compute_all(record, q.previous(), today, days)
    lines = [
        computed_line(m, p, book.get(m.key, org.id, DEFAULT_TARGETS[m.key]))
        for m, p in zip(now, before, strict=True)
    ]
    lines += reported_lines(records.approved.get(org.id, []), records.kpis, q, book, org.id)
    return Scorecard(study.code, org.id, org.name, q, today, lines)


def build(
    session: Session,
    study: Study,
    org_ids: Collection[int],
    q: Quarter,
    *,
    today: date,
    default_tz: str = "UTC",
) -> list[Scorecard]:
    """The scorecards of these vendors of one study for quarter `q`, by vendor name."""
    if not org_ids:
        return []
    orgs = list(
        session.scalars(
            select(Organization)
            .where(Organization.id.in_(list(org_ids)))
            .order_by(Organization.name)
        )
    )
    records = scorecard_inputs.load(
        session, study.id, [o.id for o in orgs], q.previous(), q, default_tz=default_tz
    )
    book = targets_for_study(session, study.id)
    return [scorecard(records, study, org, q, today, book) for org in orgs]


def orgs_for(session: Session, study: Study, aud: Audience, org_name: str | None) -> list[int]:
    """The vendors whose scorecards this audience asked for and may see.

    A vendor (or anyone in a vendor's channel) that names any organisation but that
    vendor is refused with the same words whether that organisation exists, is on the
    study or not: nothing about another vendor is told."""
    vendors = vendor_org_ids(session, study.id)
    allowed = scorecard_orgs(aud, vendors)
    if not allowed:
        raise Forbidden(
            "Scorecards are shown to the sponsor's staff, and to each vendor for itself.",
            "Ask in a sponsor channel, your own vendor channel or a direct message with crobot.",
        )
    if not org_name:
        return sorted(allowed)
    if aud.scope != Scope.SPONSOR:
        own = session.get_one(Organization, aud.org_id)
        if org_name.strip().lower() != own.name.lower():
            raise Forbidden(
                msg("Only {}'s scorecard can be shown to you here.", own.name),
                "Leave out the organisation: `/cro scorecard`.",
                field="org",
            )
        return [own.id]
    org = org_by_name(session, org_name.strip())
    if org.id not in allowed:
        raise UserError(msg("{} is not a vendor on {}.", org.name, study.code), field="org")
    return [org.id]


def to_json(cards: Sequence[Scorecard]) -> list[dict[str, Any]]:
    return [c.as_json() for c in cards]


def _cell(value: float | None) -> float | str:
    """A number stays a number (a negative change is not text a spreadsheet could run)."""
    return "" if value is None else value


def to_csv(cards: Sequence[Scorecard]) -> str:
    """One row per line of each scorecard; text cells neutralised against formulas."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(CSV_HEADER)
    for c in cards:
        for line in c.lines:
            writer.writerow(
                [
                    c.study_code,
                    c.org_name,
                    c.quarter.label,
                    line.key,
                    line.label,
                    "yes" if line.computed else "no",
                    line.side,
                    _cell(line.value),
                    line.unit,
                    _cell(line.target.value),
                    line.target.source,
                    line.status,
                    _cell(line.previous),
                    _cell(line.change),
                    line.trend or "",
                    line.explanation,
                ]
            )
    return out.getvalue()
