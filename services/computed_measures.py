"""Measures computed from crobot's own records, per vendor and quarter: pure functions of
the rows `services.scorecard_inputs` loads, so each can be checked by hand.

Every measure is read-only, labelled computed, and says what it was computed from
("7 of 9 milestones due in 2026-Q4 done on time"). A measure with nothing to compute
from has no value (None) and says so ("no milestones due in 2026-Q4"): never 0 %.

- milestones_on_time: of the vendor's milestones planned in the quarter (not cancelled)
  that are done or past their planned date, the share done on or before it;
- milestone_days_late: of those done, the mean days late of the ones done late (0 when
  none was);
- forecast_slips: forecast dates moved later in the quarter (from the audit trail), set
  against the vendor's milestones open in the quarter;
- actions_on_time: of the vendor's actions due in the quarter (not cancelled) that are
  closed or past due, the share closed by the due date (the owner's local date);
- action_days_overdue: the median days overdue of the ones closed late or still open;
- kpi_reports_on_time: of the vendor's KPI reports for periods ending in the quarter, the
  share submitted (and not rejected) within the study's `kpi_report_days` of the end;
- kpi_rejected_share: of those submissions the sponsor reviewed, the share rejected;
- approval_turnaround_hours: the sponsor's own measure — the median hours from request to
  decision of the approvals of the vendor's submissions decided in the quarter.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from crobot.services.computed_keys import COMPUTED_MEASURES
from crobot.services.kpi_catalog import Period
from crobot.services.quarters import Quarter
from crobot.services.sites import period_end
from crobot.storage.models import ActionStatus, ApprovalState, MilestoneStatus

# What a computed measure is held to unless a study (or a study and vendor) says otherwise.
DEFAULT_TARGETS: dict[str, float | None] = {
    "milestones_on_time": 90.0,
    "milestone_days_late": 7.0,  # a week, on average, for the ones that are late
    "forecast_slips": 2.0,
    "actions_on_time": 90.0,
    "action_days_overdue": 5.0,  # a working week
    "kpi_reports_on_time": 90.0,
    "kpi_rejected_share": 10.0,
    "approval_turnaround_hours": 48.0,
}
SPONSOR_SIDE = frozenset({"approval_turnaround_hours"})  # what the sponsor, not the vendor, does
DEFAULT_REPORT_DAYS = 5


@dataclass(frozen=True)
class Measure:
    key: str
    value: float | None
    explanation: str

    @property
    def label(self) -> str:
        return COMPUTED_MEASURES[self.key][0]

    @property
    def unit(self) -> str:
        return COMPUTED_MEASURES[self.key][1]

    @property
    def direction(self) -> str:
        return COMPUTED_MEASURES[self.key][2]


# --- the rows measures are computed from (one vendor's; see services/scorecard_inputs.py) ---


@dataclass(frozen=True)
class MilestoneRow:
    planned: date
    actual: date | None
    status: MilestoneStatus
    created: date  # UTC date it was added


@dataclass(frozen=True)
class SlipRow:
    milestone_id: int
    at: datetime  # when the forecast changed (UTC)
    was: date  # the forecast before (the planned date when there was none)
    now: date  # the forecast after


@dataclass(frozen=True)
class ActionRow:
    due: date
    status: ActionStatus
    closed_on: date | None  # completion, as the owner's local date


@dataclass(frozen=True)
class KpiSubmission:
    kpi_id: int
    period: Period
    submitted: datetime
    state: ApprovalState
    reviewed: ApprovalState | None  # the decision of its approval, if one was decided

    @property
    def period_end(self) -> date:
        return period_end(self.period)


@dataclass(frozen=True)
class ApprovalRow:
    requested: datetime
    decided: datetime
    state: ApprovalState


def _round(value: float) -> float:
    return round(value, 1)


def _days(value: float, unit: str = "day") -> str:
    """A mean or median in an explanation: 4.5 days, 1 day (not 1.0 days)."""
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}" if text == "1" else f"{text} {unit}s"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _not_yet(n: int, what: str) -> str:
    return f"; {n} not yet {what}" if n else ""


# --- milestones -------------------------------------------------------------------------


@dataclass(frozen=True)
class _DueMilestones:
    done: list[MilestoneRow]
    missed: list[MilestoneRow]  # still open past the planned date
    not_yet: int


def _due_milestones(rows: Sequence[MilestoneRow], q: Quarter, today: date) -> _DueMilestones:
    planned = [r for r in rows if q.contains(r.planned) and r.status != MilestoneStatus.CANCELLED]
    done = [r for r in planned if r.actual is not None]
    open_ = [r for r in planned if r.actual is None]
    missed = [r for r in open_ if r.planned < today]
    return _DueMilestones(done, missed, len(open_) - len(missed))


def milestones_on_time(rows: Sequence[MilestoneRow], q: Quarter, today: date) -> Measure:
    due = _due_milestones(rows, q, today)
    counted = len(due.done) + len(due.missed)
    wait = _not_yet(due.not_yet, "due")
    if not counted:
        return Measure("milestones_on_time", None, f"no milestones due in {q.label}{wait}")
    on_time = sum(1 for r in due.done if r.actual is not None and r.actual <= r.planned)
    late = len(due.done) - on_time
    parts = [f"{late} done late"] if late else []
    parts += [f"{len(due.missed)} still open past the planned date"] if due.missed else []
    detail = f" ({', '.join(parts)})" if parts else ""
    return Measure(
        "milestones_on_time",
        _round(100 * on_time / counted),
        f"{on_time} of {_plural(counted, 'milestone')} due in {q.label} done on time{detail}{wait}",
    )


def milestone_days_late(rows: Sequence[MilestoneRow], q: Quarter, today: date) -> Measure:
    done = _due_milestones(rows, q, today).done
    if not done:
        return Measure("milestone_days_late", None, f"no milestones due in {q.label} done yet")
    late = [(r.actual - r.planned).days for r in done if r.actual and r.actual > r.planned]
    if not late:
        return Measure(
            "milestone_days_late",
            0.0,
            f"none of the {_plural(len(done), 'milestone')} due in {q.label} and done was late",
        )
    mean = statistics.fmean(late)
    return Measure(
        "milestone_days_late",
        _round(mean),
        f"mean {_days(mean)} late over the {_plural(len(late), 'milestone')} done late "
        f"({len(late)} of {len(done)} done)",
    )


def _open_in(rows: Sequence[MilestoneRow], q: Quarter) -> int:
    """Milestones that could slip in the quarter: added by its end, not done before it."""
    return sum(
        1
        for r in rows
        if r.created <= q.end
        and r.status != MilestoneStatus.CANCELLED
        and (r.actual is None or r.actual >= q.start)
    )


def forecast_slips(rows: Sequence[MilestoneRow], slips: Sequence[SlipRow], q: Quarter) -> Measure:
    moved = [s for s in slips if q.holds(s.at) and s.now > s.was]
    tracked = _open_in(rows, q)
    if not moved and not tracked:
        return Measure("forecast_slips", None, f"no milestones open in {q.label}")
    on = len({s.milestone_id for s in moved})
    # A milestone cancelled after it slipped is no longer counted as open, yet it slipped.
    tracked = max(tracked, on)
    if not moved:
        return Measure(
            "forecast_slips",
            0.0,
            f"no forecast date moved later in {q.label} ({_plural(tracked, 'milestone')} open)",
        )
    return Measure(
        "forecast_slips",
        float(len(moved)),
        f"{_plural(len(moved), 'forecast date')} moved later in {q.label}, on "
        f"{on} of {_plural(tracked, 'milestone')} open then",
    )


# --- actions ------------------------------------------------------------------------------


def _late_days(rows: Sequence[ActionRow], q: Quarter, today: date) -> tuple[int, list[int], int]:
    """(actions counted, days overdue of each late one, not yet due)."""
    due = [r for r in rows if q.contains(r.due) and r.status != ActionStatus.CANCELLED]
    counted, late, not_yet = 0, [], 0
    for r in due:
        if r.closed_on is not None:
            counted += 1
            if r.closed_on > r.due:
                late.append((r.closed_on - r.due).days)
        elif r.due < today:
            counted += 1
            late.append((today - r.due).days)
        else:
            not_yet += 1
    return counted, late, not_yet


def actions_on_time(rows: Sequence[ActionRow], q: Quarter, today: date) -> Measure:
    counted, late, not_yet = _late_days(rows, q, today)
    wait = _not_yet(not_yet, "due")
    if not counted:
        return Measure("actions_on_time", None, f"no actions due in {q.label}{wait}")
    on_time = counted - len(late)
    return Measure(
        "actions_on_time",
        _round(100 * on_time / counted),
        f"{on_time} of {_plural(counted, 'action')} due in {q.label} closed by the due date{wait}",
    )


def action_days_overdue(rows: Sequence[ActionRow], q: Quarter, today: date) -> Measure:
    counted, late, _ = _late_days(rows, q, today)
    if not counted:
        return Measure("action_days_overdue", None, f"no actions due in {q.label}")
    if not late:
        return Measure(
            "action_days_overdue",
            0.0,
            f"none of the {_plural(counted, 'action')} due in {q.label} was overdue",
        )
    median = float(statistics.median(late))
    return Measure(
        "action_days_overdue",
        _round(median),
        f"median {_days(median)} overdue over the {_plural(len(late), 'action')} closed late "
        f"or still open ({len(late)} of {counted} due)",
    )


# --- KPI reports ----------------------------------------------------------------------------


def kpi_reports_on_time(subs: Sequence[KpiSubmission], q: Quarter, days: int) -> Measure:
    """A report is one KPI for one period; on time when a submission of it that was not
    rejected came by `days` days after the period ended (UTC date)."""
    reports: dict[tuple[int, date], bool] = {}
    for s in subs:
        if not q.contains(s.period_end):
            continue
        key = (s.kpi_id, s.period.start)
        deadline_met = (s.submitted.astimezone(UTC).date() - s.period_end).days <= days
        good = deadline_met and s.state != ApprovalState.REJECTED
        reports[key] = reports.get(key, False) or good
    if not reports:
        none = f"no KPI reports for periods ending in {q.label}"
        return Measure("kpi_reports_on_time", None, none)
    on_time = sum(reports.values())
    return Measure(
        "kpi_reports_on_time",
        _round(100 * on_time / len(reports)),
        f"{on_time} of {_plural(len(reports), 'KPI report')} for periods ending in {q.label} "
        f"submitted within {_plural(days, 'day')} of the period end",
    )


def kpi_rejected_share(subs: Sequence[KpiSubmission], q: Quarter) -> Measure:
    reviewed = [s for s in subs if q.contains(s.period_end) and s.reviewed is not None]
    if not reviewed:
        none = f"no KPI submissions reviewed for periods ending in {q.label}"
        return Measure("kpi_rejected_share", None, none)
    rejected = sum(1 for s in reviewed if s.reviewed == ApprovalState.REJECTED)
    return Measure(
        "kpi_rejected_share",
        _round(100 * rejected / len(reviewed)),
        f"{rejected} of {_plural(len(reviewed), 'KPI submission')} reviewed for periods ending "
        f"in {q.label} rejected",
    )


# --- the sponsor's side ------------------------------------------------------------------------


def approval_turnaround_hours(rows: Sequence[ApprovalRow], q: Quarter) -> Measure:
    decided = [r for r in rows if q.holds(r.decided)]
    if not decided:
        return Measure(
            "approval_turnaround_hours",
            None,
            f"no decisions on this vendor's submissions in {q.label} (the sponsor's measure)",
        )
    hours = [(r.decided - r.requested).total_seconds() / 3600 for r in decided]
    median = float(statistics.median(hours))
    return Measure(
        "approval_turnaround_hours",
        _round(median),
        f"median {_days(median, 'hour')} from request to decision over "
        f"{_plural(len(decided), 'decision')} in {q.label} (the sponsor's measure)",
    )


@dataclass(frozen=True)
class VendorRecord:
    """Everything the computed measures of one vendor are computed from."""

    milestones: Sequence[MilestoneRow] = ()
    slips: Sequence[SlipRow] = ()
    actions: Sequence[ActionRow] = ()
    submissions: Sequence[KpiSubmission] = ()
    approvals: Sequence[ApprovalRow] = ()


def compute_all(
    record: VendorRecord, q: Quarter, today: date, report_days: int = DEFAULT_REPORT_DAYS
) -> list[Measure]:
    """Every computed measure of one vendor for one quarter, in `COMPUTED_MEASURES` order."""
    return [
        milestones_on_time(record.milestones, q, today),
        milestone_days_late(record.milestones, q, today),
        forecast_slips(record.milestones, record.slips, q),
        actions_on_time(record.actions, q, today),
        action_days_overdue(record.actions, q, today),
        kpi_reports_on_time(record.submissions, q, report_days),
        kpi_rejected_share(record.submissions, q),
        approval_turnaround_hours(record.approvals, q),
    ]
