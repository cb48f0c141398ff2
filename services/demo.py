"""A sample study for `crobot demo`: a sponsor, a CRO and a central lab on DEMO-301, with
milestones, action items, 12 weeks of KPI history relative to today, and 14 sites (12
active, 2 planned) with weekly enrolment since their activation, so that
`crobot forecast DEMO-301` forecasts its 300 patients, and one quality tolerance limit
(protocol deviations) that last week's value breached: one open breach to evaluate.

The vendors' record over the last weeks gives their scorecards something to compute
(`crobot scorecard --study DEMO-301`): milestones and actions done on time, late or not
yet, forecasts moved later, two CRO values rejected and corrected, and KPI reports sent a
day or more after their week ended (some of the CRO's a week late). History is loaded
today, so the rows' own times are set to when it happened (`_happened`): the audit trail
still records the load, as it was.

Loading is idempotent: a second run finds DEMO-301 and changes nothing."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from crobot.services import (
    actions,
    approvals,
    directory,
    enrolment,
    kpi_targets,
    kpis,
    milestones,
    qtl,
    sites,
)
from crobot.services.actor import SYSTEM, Actor, resolve_actor
from crobot.services.kpi_catalog import iso_week_label, seed_definitions
from crobot.storage.models import (
    ActionItem,
    Approval,
    KpiUpdate,
    Organization,
    Study,
)

STUDY = "DEMO-301"
TEAM = "TDEMO"
SPONSOR, CRO, LAB = "Helix Pharma", "Apex CRO", "CentraLab"
PEOPLE = [
    ("UDEMOAPPR", "Dana Approver", SPONSOR, "sponsor_approver", "America/New_York"),
    ("UDEMOSPON", "Sam Sponsor", SPONSOR, "sponsor_member", "America/New_York"),
    ("UDEMOCRO", "Priya Rao", CRO, "vendor_member", "Asia/Kolkata"),
    ("UDEMOLAB", "Liam Byrne", LAB, "vendor_member", "Europe/Dublin"),
]
CHANNELS = [
    ("CDEMOSPONSOR", "sponsor", "America/New_York"),
    ("CDEMOCRO", f"vendor:{CRO}", "Asia/Kolkata"),
    ("CDEMOLAB", f"vendor:{LAB}", "Europe/Dublin"),
    ("CDEMOJOINT", "joint", "Europe/Berlin"),
]
WEEKS = 12
TARGET = 300
# (code, name, country, days since activation — negative: planned that many days ahead)
SITES = [
    ("DE01", "Charité Berlin", "DE", 112),
    ("FR01", "Institut Gustave Roussy", "FR", 105),
    ("ES01", "Hospital Vall d'Hebron", "ES", 98),
    ("IT01", "Istituto Nazionale Tumori", "IT", 91),
    ("PL01", "Narodowy Instytut Onkologii", "PL", 84),
    ("NL01", "Antoni van Leeuwenhoek", "NL", 77),
    ("BE01", "UZ Leuven", "BE", 70),
    ("US01", "MD Anderson", "US", 63),
    ("US02", "Dana-Farber", "US", 56),
    ("CA01", "Princess Margaret", "CA", 49),
    ("GB01", "The Royal Marsden", "GB", 42),
    ("CZ01", "Masaryk Memorial", "CZ", 35),
    ("JP01", "National Cancer Center Tokyo", "JP", -14),
    ("AU01", "Peter MacCallum", "AU", -28),
]


def is_loaded(session: Session) -> bool:
    return session.scalars(select(Study.id).where(Study.code == STUDY)).first() is not None


def load(session: Session, *, today: date, progress: Callable[[str], None] | None = None) -> bool:
    """Load the demo study; False when it was already there (nothing written)."""
    if is_loaded(session):
        return False
    say = progress or (lambda _msg: None)
    seed_definitions(session)
    say("organisations, study, people and channels")
    _directory(session)
    say(f"{len(SITES)} sites and their weekly enrolment")
    _sites(session, today)
    say("milestones")
    _milestones(session, today)
    say("action items")
    _actions(session, today)
    say("a quality tolerance limit and the study's KPI targets")
    _limits(session)
    _targets(session)
    say(f"{WEEKS} weeks of KPI history")
    _kpis(session, today)
    say("enrolment forecast")
    study_id = session.scalars(select(Study.id).where(Study.code == STUDY)).one()
    enrolment.recompute(session, study_id, today)
    return True


def _directory(session: Session) -> None:
    existing = set(session.scalars(select(Organization.name)))
    for name, kind in ((SPONSOR, "sponsor"), (CRO, "cro"), (LAB, "lab")):
        if name not in existing:
            directory.add_org(session, SYSTEM, name=name, kind=kind)
    directory.add_study(
        session,
        SYSTEM,
        code=STUDY,
        title="Phase 3 study of HX-17 in NSCLC (demo)",
        sponsor=SPONSOR,
        phase="3",
        enrolment_target=TARGET,
    )
    directory.add_study_vendor(
        session, SYSTEM, study=STUDY, vendor=CRO, scope="monitoring, data management"
    )
    directory.add_study_vendor(session, SYSTEM, study=STUDY, vendor=LAB, scope="central lab")
    for uid, name, org, role, tz in PEOPLE:
        if resolve_actor(session, TEAM, uid).person is None:
            directory.add_person(
                session,
                SYSTEM,
                team_id=TEAM,
                user_id=uid,
                display_name=name,
                org=org,
                role=role,
                timezone=tz,
            )
    for channel, audience, tz in CHANNELS:
        directory.link_channel(
            session,
            SYSTEM,
            team_id=TEAM,
            channel_id=channel,
            study=STUDY,
            audience=audience,
            timezone=tz,
        )


def _vendor(session: Session, uid: str) -> Actor:
    return resolve_actor(session, TEAM, uid)


APPROVER = "UDEMOAPPR"
ENTRANTS = {CRO: "UDEMOCRO", LAB: "UDEMOLAB", SPONSOR: APPROVER}


def _entrant(session: Session, org: str | None) -> Actor:
    """Who entered an organisation's history: its own PM; the approver for the sponsor."""
    return resolve_actor(session, TEAM, ENTRANTS[org or SPONSOR])


# Hours the demo approver took to decide (the sponsor's approval turnaround, scorecards).
DECISION_HOURS = (3, 9, 18, 26, 41, 55)


def _accept(session: Session, approval_id: int | None, today: date | None = None) -> None:
    """The history was accepted by the demo approver, as it would have been in Slack: some
    hours after it was asked for (the decision itself is made, and signed, now)."""
    if approval_id is not None:
        asked = session.get_one(Approval, approval_id)
        hours = DECISION_HOURS[approval_id % len(DECISION_HOURS)]
        asked.requested_at = datetime.now(UTC) - timedelta(hours=hours)
        approver = resolve_actor(session, TEAM, APPROVER)
        approvals.decide(session, approver, approval_id, approve=True, today=today)


def _milestones(session: Session, t: date) -> None:
    d = timedelta
    # Planned in the past: (name, org, planned, actual — None: still open). The vendors'
    # recent ones give their scorecards a record: on time, late, and one not done.
    past: list[tuple[str, str | None, int, int | None]] = [
        ("Protocol finalised", None, -120, -118),
        ("First site activated", CRO, -90, -85),
        ("First patient in", None, -70, -72),
        ("Lab kit distribution complete", LAB, -60, -61),
        ("Monitoring plan v2 in force", CRO, -25, -27),
        ("Database build UAT complete", CRO, -15, -15),
        ("Site FR01 close-out visit", CRO, -8, None),
        ("Reference ranges loaded", LAB, -22, -20),
        ("Sample kit resupply, wave 2", LAB, -12, -13),
        ("Biobank transfer", LAB, -3, -3),
    ]
    for name, org, planned, actual in past:
        ms = milestones.add(
            session,
            SYSTEM,
            today=t,
            allow_past=True,
            study=STUDY,
            name=name,
            planned=t + d(planned),
            org=org,
            shared=org is None,
        )
        if actual is None:
            continue
        change = milestones.update(
            session, _entrant(session, org), today=t, id=ms.id, status="done", actual=t + d(actual)
        )
        _accept(session, change.approval_id)
    # The enrolment milestones (a patient count) are left to the forecast to flag.
    upcoming: list[tuple[str, str | None, int, int | None, str | None, int | None]] = [
        ("50% enrolment", CRO, 90, None, None, TARGET // 2),
        ("Central lab validation report", LAB, 10, None, None, None),
        ("Interim database lock", CRO, 120, 134, "at_risk", None),
        ("Last patient in", None, 150, None, None, TARGET),
    ]
    ids: dict[str, int] = {}
    for name, org, planned, forecast, status, count in upcoming:
        ms = milestones.add(
            session,
            SYSTEM,
            today=t,
            study=STUDY,
            name=name,
            planned=t + d(planned),
            org=org,
            shared=org is None,
            count=count,
        )
        ids[name] = ms.id
        if forecast is not None or status is not None:
            milestones.update(
                session,
                SYSTEM,
                today=t,
                id=ms.id,
                forecast=t + d(forecast) if forecast else None,
                status=status,
            )
    # Forecasts moved later by the vendors themselves: forecast slips.
    for name, org, forecast in (
        ("50% enrolment", CRO, 100),
        ("Central lab validation report", LAB, 14),
    ):
        milestones.update(
            session, _entrant(session, org), today=t, id=ids[name], forecast=t + d(forecast)
        )
    # A vendor completion waiting for the sponsor's approval.
    late = milestones.add(
        session,
        SYSTEM,
        today=t,
        allow_past=True,
        study=STUDY,
        name="Site initiation visits complete",
        planned=t - d(5),
        org=CRO,
    )
    milestones.update(
        session, _vendor(session, "UDEMOCRO"), today=t, id=late.id, status="done", actual=t - d(1)
    )


def _sites(session: Session, t: date) -> None:
    """Sites activated over the last 16 weeks, each recruiting at its own rate (drawn from
    Gamma(2, 0.8): 2.5 patients a month on average), reported weekly by the CRO and
    accepted by the demo approver; this week is still open, so not yet reported."""
    rng = np.random.default_rng(301)
    cro = _vendor(session, "UDEMOCRO")
    monday = t - timedelta(days=t.weekday())
    for code, name, country, days in SITES:
        opened = t - timedelta(days=days) if days > 0 else None
        site = sites.add(
            session,
            SYSTEM,
            today=t,
            study=STUDY,
            code=code,
            name=name,
            country=country,
            org=CRO,
            planned=(t - timedelta(days=days + 7)) if days > 0 else t + timedelta(days=-days),
            activated=opened,
        )
        if opened is None:
            continue
        per_week = float(rng.gamma(2.0, 1 / 0.8)) * 7 / (365.25 / 12)
        week = opened - timedelta(days=opened.weekday())
        while week < monday:
            rep = sites.report(
                session,
                cro,
                today=t,
                study=STUDY,
                site=site.code,
                enrolled=int(rng.poisson(per_week)),
                period=iso_week_label(week),
            )
            _accept(session, rep.approval_id, t)
            week += timedelta(weeks=1)


def _actions(session: Session, t: date) -> None:
    d = timedelta
    # (title, owner, due, priority, closed — days from today; None: open). The closed ones
    # give the vendors' scorecards a record: by the due date, and late.
    items: list[tuple[str, str, int, str, int | None]] = [
        ("Resolve open queries at site 104", "UDEMOCRO", -3, "high", None),
        ("Send updated enrolment forecast", "UDEMOCRO", 4, "normal", None),
        ("Re-ship temperature-excursion kits to site 212", "UDEMOLAB", -1, "high", None),
        ("Approve revised monitoring plan", "UDEMOSPON", 6, "normal", None),
        ("Confirm lab normal ranges for site 305", "UDEMOLAB", 9, "low", None),
        ("Schedule DSMB data cut", "UDEMOAPPR", 14, "normal", None),
        ("Submit DE01 monitoring visit report", "UDEMOCRO", -20, "normal", -21),
        ("Send FR01 follow-up letters", "UDEMOCRO", -15, "normal", -12),
        ("Update CRA contact list", "UDEMOCRO", -9, "low", -9),
        ("Send sample stability data", "UDEMOLAB", -18, "normal", -19),
        ("Calibrate Dublin centrifuges", "UDEMOLAB", -11, "normal", -10),
        ("Issue lab manual v2", "UDEMOLAB", -6, "low", -7),
    ]
    for title, owner, due, prio, closed in items:
        item = actions.add(
            session,
            SYSTEM,
            today=t,
            allow_past=True,
            study=STUDY,
            title=title,
            owner_user_id=owner,
            owner_team_id=TEAM,
            due=t + d(due),
            priority=prio,
        )
        if closed is not None:
            actions.complete(session, _vendor(session, owner), item.id)
            zone = next(p[4] for p in PEOPLE if p[0] == owner)
            _happened(item, "completed_at", t + d(closed), zone, t)


def _limits(session: Session) -> None:
    """One QTL: protocol deviations above 6 a week (warning above 4)."""
    qtl.set_limit(
        session,
        resolve_actor(session, TEAM, "UDEMOAPPR"),
        study=STUDY,
        kpi="protocol_deviations",
        bound="max",
        limit=6,
        warn=4,
        rationale="Protocol section 9.2: more than 6 deviations a week signals a systemic issue",
    )


SPONSOR_RATINGS = ("supplier_performance", "customer_satisfaction")


def _targets(session: Session) -> None:
    """A phase 3 study's own targets: a study-wide one and one organisation's."""
    approver = resolve_actor(session, TEAM, APPROVER)
    kpi_targets.set_target(
        session, approver, study=STUDY, kpi="screen_failure_rate", value=30
    )  # an oncology population screens out more than the catalogue's 25 %
    kpi_targets.set_target(
        session, approver, study=STUDY, kpi="compliance_rate", value=97, org=LAB
    )  # the lab's contract asks more than the default 95 %


# Days after its week ended that an organisation's report came in: the CRO's every fourth
# a week late (its scorecard's KPI reports on time), the lab's and the sponsor's on time.
REPORT_DELAY: dict[str, Callable[[int], int]] = {
    CRO: lambda week: 8 if week % 4 == 2 else 1,
    LAB: lambda week: 2,
    SPONSOR: lambda week: 1,
}
# Two weeks whose CRO screen-failure rate was first sent with a typo, rejected, then sent
# right (its scorecard's rejected share).
TYPO_KPI, TYPO_WEEKS = (CRO, "screen_failure_rate"), (WEEKS - 9, WEEKS - 3)


def _rejected_typo(session: Session, t: date, key: str, value: float, start: date) -> None:
    wrong = min(100.0, round(value + 40, 1))
    rep = kpis.report(
        session,
        _vendor(session, "UDEMOCRO"),
        today=t,
        study=STUDY,
        kpi=key,
        value=wrong,
        period=iso_week_label(start),
    )
    _happened(rep.update, "submitted_at", start + timedelta(days=7), "UTC", t)
    if rep.approval_id is not None:
        approvals.decide(
            session,
            resolve_actor(session, TEAM, APPROVER),
            rep.approval_id,
            approve=False,
            reason=f"{wrong}% cannot be right: last week was about {round(value)}%.",
        )


def _happened(row: KpiUpdate | ActionItem, attr: str, day: date, zone: str, t: date) -> None:
    """Give a history row the time it happened (10:00 local that day) instead of the load's;
    a day not yet past keeps the load's time."""
    if day < t:
        setattr(row, attr, datetime.combine(day, time(10), ZoneInfo(zone)).astimezone(UTC))
    session = object_session(row)
    if session is not None:
        session.flush()


def _kpis(session: Session, t: date) -> None:
    rng = random.Random(301)
    series: dict[tuple[str, str], Callable[[int], float]] = {
        (CRO, "enrollment"): lambda w: float(8 + w + rng.randint(-2, 3)),
        (CRO, "screen_failure_rate"): lambda w: round(31 - w * 0.6 + rng.uniform(-2, 2), 1),
        (CRO, "site_activation"): lambda w: float(min(40, 12 + 2 * w)),
        (CRO, "query_aging"): lambda w: round(19 - w * 0.5 + rng.uniform(-1.5, 1.5), 1),
        # Last week's deviations beyond the study's QTL (6): the demo's open breach.
        (CRO, "protocol_deviations"): lambda w: float(
            rng.randint(0, 4) + (7 if w == WEEKS - 2 else 0)
        ),
        (CRO, "data_entry_timeliness"): lambda w: round(7 - w * 0.2 + rng.uniform(-1, 1), 1),
        (LAB, "compliance_rate"): lambda w: round(min(100.0, 92 + w * 0.4 + rng.uniform(-1, 1)), 1),
        (LAB, "supplier_performance"): lambda w: round(min(5.0, 3.4 + w * 0.08), 2),
        (LAB, "cost_of_quality"): lambda w: round(max(0.0, 14 - w + rng.uniform(-2, 2)), 1),
        (SPONSOR, "customer_satisfaction"): lambda w: round(min(5.0, 3.6 + w * 0.05), 2),
    }
    monday = t - timedelta(days=t.weekday())
    for week in range(WEEKS):
        start = monday - timedelta(weeks=WEEKS - 1 - week)
        end = start + timedelta(days=6)
        for (org, key), fn in series.items():
            # A rating of a vendor (kind `sponsor`) is the sponsor's to enter, never its own.
            rated = key in SPONSOR_RATINGS and org != SPONSOR
            value = fn(week)
            if (org, key) == TYPO_KPI and week in TYPO_WEEKS:
                _rejected_typo(session, t, key, value, start)
            rep = kpis.report(
                session,
                _entrant(session, SPONSOR if rated else org),
                today=t,
                study=STUDY,
                kpi=key,
                value=value,
                period=iso_week_label(start),
                org=org if rated else None,
            )
            delay = 3 if week in TYPO_WEEKS else REPORT_DELAY[org](week)
            _happened(rep.update, "submitted_at", end + timedelta(days=delay), "UTC", t)
            _accept(session, rep.approval_id)
    # This week's CRO enrolment, reported by the CRO itself: pending sponsor approval.
    kpis.report(
        session,
        _vendor(session, "UDEMOCRO"),
        today=t,
        study=STUDY,
        kpi="enrollment",
        value=23,
        period=iso_week_label(monday),
        note="2 sites back from holiday",
    )
