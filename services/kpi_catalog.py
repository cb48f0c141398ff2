"""The KPI definitions crobot ships, and the periods values are reported for.

The sponsor owns the catalogue from there on (`crobot kpi define | update | retire`,
services/kpi_admin.py); seeding only adds shipped definitions that are missing, so it never
undoes what the sponsor changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services.errors import Msg, UserError, msg
from crobot.storage.models import Aggregation, Direction, KpiDefinition, KpiKind


@dataclass(frozen=True)
class KpiSpec:
    key: str
    label: str
    unit: str
    direction: Direction
    aggregation: Aggregation
    target: float | None
    # The plausible range of one period's value, and whether it counts things (whole).
    min_value: float | None
    max_value: float | None
    integer: bool
    description: str
    kind: KpiKind = KpiKind.ANY  # who reports it (services/permissions.py reportable_kinds)


UP, DOWN = Direction.UP, Direction.DOWN
SUM, LATEST, AVG = Aggregation.SUM, Aggregation.LATEST, Aggregation.AVERAGE
CRO, CMO, LAB, ANY = KpiKind.CRO, KpiKind.CMO, KpiKind.LAB, KpiKind.ANY
# Ratings of the vendor by the sponsor: a vendor must never score itself.
SPONSOR_ONLY = KpiKind.SPONSOR

SHIPPED: tuple[KpiSpec, ...] = (
    KpiSpec(
        "enrollment",
        "Enrolment",
        "patients",
        UP,
        SUM,
        20,
        0,
        100_000,
        True,
        "Patients enrolled in the period (count).",
        # Patients enrolled at the sites a CRO manages.
        CRO,
    ),
    KpiSpec(
        "screen_failure_rate",
        "Screen-failure rate",
        "%",
        DOWN,
        LATEST,
        25,
        0,
        100,
        False,
        "Share of screened patients who failed screening.",
        CRO,
    ),
    KpiSpec(
        "site_activation",
        "Site activation",
        "sites",
        UP,
        LATEST,
        None,
        0,
        10_000,
        True,
        "Sites activated to date.",
        CRO,
    ),
    KpiSpec(
        "query_aging",
        "Query aging",
        "days",
        DOWN,
        LATEST,
        14,
        0,
        3650,
        False,
        "Average age of open data queries.",
        # CROs answer site data queries and labs lab-data ones: a kind names one, so any.
        ANY,
    ),
    KpiSpec(
        "protocol_deviations",
        "Protocol deviations",
        "count",
        DOWN,
        SUM,
        2,
        0,
        100_000,
        True,
        "Protocol deviations recorded in the period.",
        ANY,
    ),
    KpiSpec(
        "compliance_rate",
        "Compliance rate",
        "%",
        UP,
        LATEST,
        95,
        0,
        100,
        False,
        "Share of visits/processes compliant with protocol and SOPs.",
        ANY,
    ),
    KpiSpec(
        "cost_of_quality",
        "Cost of quality",
        "kUSD",
        DOWN,
        SUM,
        None,
        0,
        1_000_000,
        False,
        "Cost of rework, deviations and audits in the period.",
        ANY,
    ),
    KpiSpec(
        "supplier_performance",
        "Supplier performance",
        "score",
        UP,
        LATEST,
        4,
        0,
        5,
        False,
        "Sponsor's scorecard rating of the vendor (0-5).",
        # The sponsor's rating of a vendor (reported with `org:VENDOR`): a vendor that typed
        # its own score would be grading itself. The computed scorecard measures complement it.
        SPONSOR_ONLY,
    ),
    KpiSpec(
        "data_entry_timeliness",
        "Data-entry timeliness",
        "days",
        DOWN,
        LATEST,
        5,
        0,
        3650,
        False,
        "Median days from visit to eCRF entry.",
        CRO,
    ),
    KpiSpec(
        "customer_satisfaction",
        "Customer satisfaction",
        "score",
        UP,
        LATEST,
        4,
        0,
        5,
        False,
        "Sponsor satisfaction survey score (0-5).",
        # The sponsor's survey of a vendor, as supplier performance.
        SPONSOR_ONLY,
    ),
    # What sponsors ask of CMOs, labs and CROs beyond the trial's own numbers.
    KpiSpec(
        "otif_delivery",
        "On-time-in-full delivery",
        "%",
        UP,
        LATEST,
        95,
        0,
        100,
        False,
        "Share of deliveries (drug product, kits, supplies) that arrived on time and complete.",
        CMO,
    ),
    KpiSpec(
        "right_first_time",
        "Right-first-time batches",
        "%",
        UP,
        LATEST,
        98,
        0,
        100,
        False,
        "Share of batches made and released without a deviation, rework or reprocessing.",
        CMO,
    ),
    KpiSpec(
        "batch_release_days",
        "Batch release cycle time",
        "days",
        DOWN,
        LATEST,
        30,
        0,
        3650,
        False,
        "Median days from the end of manufacture to QP release of the period's batches.",
        CMO,
    ),
    KpiSpec(
        "open_capas",
        "Open CAPAs",
        "count",
        DOWN,
        LATEST,
        5,
        0,
        100_000,
        True,
        "Corrective and preventive actions still open at the end of the period.",
        ANY,
    ),
    KpiSpec(
        "staff_turnover",
        "CRO staff turnover",
        "%",
        DOWN,
        LATEST,
        15,
        0,
        100,
        False,
        "Share of the study team (CRAs, project staff) who left in the last 12 months.",
        CRO,
    ),
    KpiSpec(
        "training_compliance",
        "Protocol-training compliance",
        "%",
        UP,
        LATEST,
        100,
        0,
        100,
        False,
        "Share of the study team trained on the current protocol version and amendments.",
        ANY,
    ),
    KpiSpec(
        "data_security_compliance",
        "Data-security compliance",
        "%",
        UP,
        LATEST,
        98,
        0,
        100,
        False,
        "Share of data-security and privacy controls (access reviews, GDPR) found in place.",
        ANY,
    ),
    KpiSpec(
        "resource_utilisation",
        "Resource utilisation",
        "%",
        UP,
        LATEST,
        85,
        0,
        # Planned hours can be overrun: above 100 % is a real, if worrying, value.
        150,
        False,
        "Hours worked on the study as a share of the hours planned for the period.",
        CRO,
    ),
    KpiSpec(
        "sample_turnaround",
        "Sample result turnaround",
        "hours",
        DOWN,
        LATEST,
        48,
        0,
        2160,
        False,
        "Median hours from a sample's receipt at the lab to its result reported.",
        LAB,
    ),
)

ALIASES = {
    "enrolment": "enrollment",
    "sfr": "screen_failure_rate",
    "deviations": "protocol_deviations",
    "coq": "cost_of_quality",
    "otif": "otif_delivery",
    "rft": "right_first_time",
    "capas": "open_capas",
}


def seed_definitions(session: Session) -> int:
    """Insert shipped definitions that are missing; existing ones (and their targets) stay."""
    existing = set(session.scalars(select(KpiDefinition.key)))
    added = 0
    for spec in SHIPPED:
        if spec.key in existing:
            continue
        session.add(KpiDefinition(**spec.__dict__))
        added += 1
    session.flush()
    return added


def normalise_key(raw: str) -> str:
    key = raw.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


_STORED_KEY = re.compile(r"^[a-z][a-z0-9_]*$", re.ASCII)


def key_word(key: str) -> Msg:
    """A stored KPI key in a message, as crobot's own wording (`query_aging`, not escaped
    look-alikes): every key is checked on its way in (services/kpi_admin.py `check_key`).
    Anything else is quoted as the value it is."""
    return msg(f"`{key}`") if _STORED_KEY.match(key) else msg("`{}`", key)


_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE | re.ASCII)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)


@dataclass(frozen=True)
class Period:
    start: date
    label: str


def iso_week_label(d: date) -> str:
    year, week, _ = d.isocalendar()
    return f"{year}-W{week:02d}"


def current_period(today: date) -> Period:
    monday = today - timedelta(days=today.weekday())
    return Period(monday, iso_week_label(today))


FIELD = "period"  # the service input a period error is about


def parse_period(raw: str) -> Period:
    """`2026-W47` (ISO week), `2026-11` (month) or `2026-11-23` (a day)."""
    text = raw.strip()
    hint = "Write the period as an ISO week (2026-W47), a month (2026-11) or a date (2026-11-23)."
    if m := _WEEK.match(text):
        year, week = int(m.group(1)), int(m.group(2))
        try:
            start = date.fromisocalendar(year, week, 1)
        except ValueError as exc:
            raise UserError(
                msg("`{}` is not a week of {}.", text, year), hint, field=FIELD
            ) from exc
        return Period(start, f"{year}-W{week:02d}")
    if _DAY.match(text):
        try:
            return Period(date.fromisoformat(text), text)
        except ValueError as exc:
            raise UserError(msg("`{}` is not a real date.", text), hint, field=FIELD) from exc
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise UserError(msg("`{}` is not a month.", text), hint, field=FIELD)
        return Period(date(year, month, 1), text)
    raise UserError(msg("I don't understand the period `{}`.", text), hint, field=FIELD)
