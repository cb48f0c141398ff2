"""The enrolment forecast of a study, from its sites, and what the forecast does.

`study_forecast` feeds the Poisson–gamma model (services/recruitment.py) with the sites an
audience sees: approved enrolment reports only (a report awaiting approval is not yet a
fact the sponsor relies on), each site's activation (a planned site counts from its
planned activation date), and the open enrolment milestones (those with a target count).

`recompute` runs when a site value is approved or imported: an open enrolment milestone
whose on-time probability falls below `AT_RISK_BELOW` is marked at risk with the reason;
one the forecast marked recovers above `CLEAR_ABOVE` (hysteresis: a probability wavering
around 50% does not flap). Each change is audited and announced once — in the study's
sponsor channels and the owning vendor's channel — through the outbox (target
`forecast:<milestone id>`, key `<audit seq>:<channel>`, digests/delivery.py). A status
the sponsor set by hand (`status_pinned`) is never overridden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.services import audit, recruitment
from crobot.services.actor import SYSTEM
from crobot.services.errors import UserError, msg
from crobot.services.lookup import sponsor_channels, vendor_channel, vendor_org_ids
from crobot.services.outbox_rows import enqueue
from crobot.services.sites import current_reports
from crobot.services.visibility import Audience, Scope, milestone_filter, site_filter
from crobot.storage.models import (
    ApprovalState,
    AuditEvent,
    Milestone,
    MilestoneStatus,
    Site,
    SiteReport,
    Study,
)

AT_RISK_BELOW = 0.50
CLEAR_ABOVE = 0.60
TARGET_PREFIX = "forecast:"
AT_RISK = "milestone.forecast_at_risk"
RECOVERED = "milestone.forecast_recovered"
OPEN = (MilestoneStatus.PLANNED, MilestoneStatus.AT_RISK)


@dataclass(frozen=True)
class StudyForecast:
    study: str
    forecast: recruitment.Forecast
    pending_reports: int  # reports awaiting approval, not counted
    whole_study: bool  # False: only the sites this audience sees
    # Month ends and the patients enrolled in all by then (approved reports).
    history: list[tuple[date, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The shape `crobot forecast --json` prints (ISO dates; null: beyond the horizon)."""
        f = self.forecast

        def iso(d: date | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "study": self.study,
            "target": f.target,
            "enrolled": f.enrolled,
            "model": f.model,
            "rate_per_site_month": round(f.fit.mean_rate, 4),
            "p10": iso(f.p10),
            "p50": iso(f.p50),
            "p90": iso(f.p90),
            "milestones": [
                {
                    "id": m.id,
                    "name": m.name,
                    "planned": m.planned.isoformat(),
                    "p_on_time": round(m.p_on_time, 3),
                    "extra_sites_needed": m.extra_sites_needed,
                }
                for m in f.milestones
            ],
        }


def model_sites(
    session: Session, study_id: int, as_of: date, audience: Audience | None = None
) -> tuple[list[recruitment.Site], int]:
    """(the model's sites as of a date, reports awaiting approval among them)."""
    found = _model(session, study_id, as_of, audience)
    return found.sites, found.pending


@dataclass(frozen=True)
class _Model:
    sites: list[recruitment.Site]
    pending: int
    reports: list[SiteReport]  # the approved current reports counted


def _model(session: Session, study_id: int, as_of: date, audience: Audience | None) -> _Model:
    where = [Site.study_id == study_id]
    if audience is not None:
        where.append(site_filter(audience))
    rows = list(session.scalars(select(Site).where(*where).order_by(Site.id)))
    if not rows:
        return _Model([], 0, [])
    reports = current_reports(session, (s.id for s in rows), approved_only=True, until=as_of)
    counts: dict[int, int] = {}
    for r in reports:
        counts[r.site_id] = counts.get(r.site_id, 0) + r.enrolled
    pending = session.scalar(
        select(func.count(SiteReport.id)).where(
            SiteReport.site_id.in_([s.id for s in rows]),
            SiteReport.approval_state == ApprovalState.PENDING,
            SiteReport.period_start <= as_of,
        )
    )
    out = []
    for s in rows:
        active = s.activated_on is not None and s.activated_on <= as_of
        out.append(
            recruitment.Site(
                code=s.code,
                enrolled=counts.get(s.id, 0),
                activated=s.activated_on if active else None,
                # A site activated after `as_of` was, as of then, planned for that day.
                planned=s.planned_activation
                if active
                else (s.activated_on or s.planned_activation),
                closed=s.closed_on,
            )
        )
    return _Model(out, int(pending or 0), reports)


def monthly_enrolled(reports: list[SiteReport], as_of: date) -> list[tuple[date, int]]:
    """Patients enrolled in all by the end of each month, from the first reported month
    through `as_of`'s (the last: everything reported so far), at most PATH_MONTHS."""
    if not reports:
        return []
    by_month: dict[tuple[int, int], int] = {}
    for r in reports:
        key = (r.period_start.year, r.period_start.month)
        by_month[key] = by_month.get(key, 0) + r.enrolled
    first = min(by_month)
    start = date(first[0], first[1], 1) - timedelta(days=1)
    ends = recruitment.month_ends(start, as_of, limit=10 * recruitment.PATH_MONTHS)
    total, out = 0, []
    for end in ends:
        total += by_month.get((end.year, end.month), 0)
        out.append((end, total))
    return out[-recruitment.PATH_MONTHS :]


def milestone_targets(
    session: Session, study_id: int, audience: Audience | None = None, *, lock: bool = False
) -> list[Milestone]:
    """Open enrolment milestones (with a target count), by planned date; `lock`: locked
    and read afresh, so that two recomputations at once flag (and announce) a milestone
    once — the second sees the first's status."""
    stmt = select(Milestone).where(
        Milestone.study_id == study_id,
        Milestone.target_count.is_not(None),
        Milestone.status.in_(OPEN),
    )
    if audience is not None:
        stmt = stmt.where(milestone_filter(audience))
    stmt = stmt.order_by(Milestone.planned_date, Milestone.id)
    if lock:
        stmt = stmt.with_for_update(of=Milestone).execution_options(populate_existing=True)
    return list(session.scalars(stmt))


def _targets(milestones: list[Milestone]) -> list[recruitment.MilestoneTarget]:
    return [
        recruitment.MilestoneTarget(m.id, m.name, m.target_count or 0, m.planned_date)
        for m in milestones
    ]


def study_forecast(
    session: Session,
    study: Study,
    *,
    as_of: date,
    target: int | None = None,
    audience: Audience | None = None,
) -> StudyForecast:
    """The forecast of reaching `target` (default: the study's enrolment target) from the
    sites `audience` sees (None: all of them)."""
    goal = target if target is not None else study.enrolment_target
    if goal is None:
        raise UserError(
            msg("{} has no enrolment target.", study.code),
            msg(
                "Set one with `crobot study update {} --enrolment-target N`, or give a target.",
                study.code,
            ),
            field="target",
        )
    if goal <= 0:
        raise UserError("The target must be a positive number of patients.", field="target")
    found = _model(session, study.id, as_of, audience)
    sites, pending = found.sites, found.pending
    if not any(s.months_active(as_of) > 0 for s in sites):
        raise UserError(
            msg("{} has no active site with enrolment data as of {}.", study.code, as_of),
            "Add sites with their activation dates (`/cro site add`, `crobot site import`).",
        )
    ms = milestone_targets(session, study.id, audience)
    result = recruitment.forecast(sites, target=goal, as_of=as_of, milestones=_targets(ms))
    whole = audience is None or audience.scope == Scope.SPONSOR
    history = monthly_enrolled(found.reports, as_of)
    return StudyForecast(study.code, result, pending, whole, history)


# --- what the forecast does -----------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    milestone_id: int
    action: str  # AT_RISK | RECOVERED
    reason: str


def _weeks(days: int) -> str:
    if abs(days) < 14:
        return f"{abs(days)} day(s)"
    return f"{math.ceil(abs(days) / 7)} weeks"


def risk_reason(sites: list[recruitment.Site], m: Milestone, p: float, as_of: date) -> str:
    """ "P50 for 300 patients is 2027-09-14, 6 weeks after the planned LPI (2027-08-01)"."""
    count = m.target_count or 0
    p50 = recruitment.forecast(sites, target=count, as_of=as_of).p50
    odds = f"on-time probability {p:.0%}"
    if p50 is None:
        return f"{count} patients are not reached within the forecast horizon ({odds})"
    gap = (p50 - m.planned_date).days
    when = "after" if gap > 0 else "before"
    text = (
        f"P50 for {count} patients is {p50.isoformat()}, {_weeks(gap)} {when} the planned "
        f"{m.name} ({m.planned_date.isoformat()}); {odds}"
    )
    return text[:300]


def recompute(session: Session, study_id: int, today: date) -> list[Flag]:
    """Recompute the study's forecast and flag (or clear) its enrolment milestones."""
    study = session.get(Study, study_id)
    if study is None:
        return []
    ms = [m for m in milestone_targets(session, study_id, lock=True) if not m.status_pinned]
    if not ms:
        return []
    sites, _ = model_sites(session, study_id, today)
    if not any(s.months_active(today) > 0 for s in sites):
        return []
    goal = max([study.enrolment_target or 0, *(m.target_count or 0 for m in ms)])
    result = recruitment.forecast(sites, target=goal, as_of=today, milestones=_targets(ms))
    by_id = {m.id: m for m in ms}
    flags = []
    for outlook in result.milestones:
        m = by_id[outlook.id]
        if m.status == MilestoneStatus.PLANNED and outlook.p_on_time < AT_RISK_BELOW:
            reason = risk_reason(sites, m, outlook.p_on_time, today)
            flags.append(_flag(session, study, m, MilestoneStatus.AT_RISK, reason))
        elif (
            m.status == MilestoneStatus.AT_RISK
            and m.risk_reason is not None
            and outlook.p_on_time > CLEAR_ABOVE
        ):
            reason = f"on-time probability back to {outlook.p_on_time:.0%}"
            flags.append(_flag(session, study, m, MilestoneStatus.PLANNED, reason))
    return flags


def _flag(
    session: Session,
    study: Study,
    m: Milestone,
    status: MilestoneStatus,
    reason: str,
) -> Flag:
    fields = ("status", "risk_reason")
    before = audit.snapshot(m, *fields)
    m.status = status
    m.risk_reason = reason if status == MilestoneStatus.AT_RISK else None
    session.flush()
    event = audit.record(
        session,
        SYSTEM,
        AT_RISK if status == MilestoneStatus.AT_RISK else RECOVERED,
        "milestone",
        m.id,
        study_id=study.id,
        before=before,
        after={**audit.snapshot(m, *fields), "reason": reason, "milestone": m.name},
    )
    audit.seal(session)  # the event's seq names its announcements
    for channel in announce_channels(session, study, m):
        enqueue(session, f"{TARGET_PREFIX}{m.id}", f"{event.seq}:{channel}")
    return Flag(m.id, event.action, reason)


def announce_channels(session: Session, study: Study, m: Milestone) -> list[str]:
    """The study's sponsor channels and, for a vendor's milestone, that vendor's channel."""
    channels = sponsor_channels(session, study.id)
    if m.org_id is not None and m.org_id in vendor_org_ids(session, study.id):
        link = vendor_channel(session, study.id, m.org_id)
        if link is not None and link.channel_id not in channels:
            channels.append(link.channel_id)
    return channels


@dataclass(frozen=True)
class Notice:
    channel: str
    study: str
    milestone: str
    at_risk: bool
    reason: str
    org_id: int | None


def notice(session: Session, target: str, key: str) -> Notice | None:
    """What one forecast outbox row announces, frozen in its audit event."""
    seq, _, channel = key.partition(":")
    event = session.scalars(select(AuditEvent).where(AuditEvent.seq == int(seq))).first()
    m = session.get(Milestone, int(target.removeprefix(TARGET_PREFIX)))
    if event is None or m is None or not channel:
        return None
    after = event.after or {}
    return Notice(
        channel=channel,
        study=m.study.code,
        milestone=str(after.get("milestone", m.name)),
        at_risk=event.action == AT_RISK,
        reason=str(after.get("reason", "")),
        org_id=m.org_id,
    )
