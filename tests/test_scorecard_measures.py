"""Computed measures and scorecard lines, checked by hand on a fixture of known dates.

One vendor's record around 2026-Q4 (1 Oct – 31 Dec 2026), as of Wednesday 25 Nov 2026.
Every expected value below is worked out in the comments from the fixture's dates, not
from the code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from crobot.services.computed_keys import COMPUTED_MEASURES
from crobot.services.computed_measures import (
    DEFAULT_TARGETS,
    ActionRow,
    ApprovalRow,
    KpiSubmission,
    MilestoneRow,
    SlipRow,
    VendorRecord,
    action_days_overdue,
    actions_on_time,
    approval_turnaround_hours,
    compute_all,
    forecast_slips,
    kpi_rejected_share,
    kpi_reports_on_time,
    milestone_days_late,
    milestones_on_time,
)
from crobot.services.errors import UserError
from crobot.services.kpi_catalog import Period
from crobot.services.kpi_targets import TargetBook
from crobot.services.quarters import Quarter
from crobot.services.scorecard_inputs import ApprovedValue, StudyRecords
from crobot.services.scorecards import NO_DATA, NO_TARGET, OFF, ON, scorecard, status_of
from crobot.storage.models import (
    ActionStatus,
    ApprovalState,
    Direction,
    KpiDefinition,
    MilestoneStatus,
    Organization,
    Study,
)

Q4, Q3 = Quarter(2026, 4), Quarter(2026, 3)
TODAY = date(2026, 11, 25)
D = date
DONE, OPEN, CANCELLED = MilestoneStatus.APPROVED, MilestoneStatus.PLANNED, MilestoneStatus.CANCELLED
SEP1 = D(2026, 9, 1)


def utc(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=UTC)


# name: planned, actual, status, created
MILESTONES = {
    "A": MilestoneRow(D(2026, 10, 5), D(2026, 10, 3), DONE, SEP1),  # 2 days early: on time
    "B": MilestoneRow(D(2026, 10, 20), D(2026, 10, 20), DONE, SEP1),  # on the day: on time
    "C": MilestoneRow(D(2026, 11, 2), D(2026, 11, 9), DONE, SEP1),  # 7 days late
    "D": MilestoneRow(D(2026, 11, 10), D(2026, 11, 12), MilestoneStatus.DONE, SEP1),  # 2 late
    "E": MilestoneRow(D(2026, 11, 20), None, MilestoneStatus.AT_RISK, SEP1),  # open, past
    "F": MilestoneRow(D(2026, 12, 15), None, OPEN, D(2026, 11, 1)),  # not yet due
    "G": MilestoneRow(D(2026, 11, 1), None, CANCELLED, SEP1),  # cancelled: never counted
    "H": MilestoneRow(D(2026, 9, 28), D(2026, 10, 1), DONE, SEP1),  # Q3's, 3 days late
    "I": MilestoneRow(D(2026, 12, 20), D(2026, 11, 20), DONE, SEP1),  # done a month early
}
ROWS = list(MILESTONES.values())


def test_milestones_on_time_by_hand() -> None:
    # Planned in Q4, not cancelled: A B C D E F I. Done: A B C D I; E is open past its
    # date (20 Nov < 25 Nov); F (15 Dec) is not yet due. Counted: 5 done + E = 6.
    # On time (actual <= planned): A, B, I = 3. 3 / 6 = 50 %.
    m = milestones_on_time(ROWS, Q4, TODAY)
    assert m.value == 50.0
    assert m.explanation == (
        "3 of 6 milestones due in 2026-Q4 done on time "
        "(2 done late, 1 still open past the planned date); 1 not yet due"
    )
    # Q3: only H (28 Sep), done 1 Oct: 0 of 1 on time.
    q3 = milestones_on_time(ROWS, Q3, TODAY)
    assert (q3.value, q3.explanation) == (
        0.0,
        "0 of 1 milestone due in 2026-Q3 done on time (1 done late)",
    )


def test_milestone_days_late_by_hand() -> None:
    # Done in Q4: A B C D I; late: C by 7 days (2 -> 9 Nov), D by 2 (10 -> 12 Nov).
    # Mean (7 + 2) / 2 = 4.5.
    m = milestone_days_late(ROWS, Q4, TODAY)
    assert m.value == 4.5
    assert m.explanation == "mean 4.5 days late over the 2 milestones done late (2 of 5 done)"
    # Q3: H, 3 days late (28 Sep -> 1 Oct).
    assert milestone_days_late(ROWS, Q3, TODAY).value == 3.0
    on_time_only = [MILESTONES["A"], MILESTONES["B"]]
    zero = milestone_days_late(on_time_only, Q4, TODAY)
    assert (zero.value, zero.explanation) == (
        0.0,
        "none of the 2 milestones due in 2026-Q4 and done was late",
    )


def test_forecast_slips_by_hand() -> None:
    plus2 = timezone(timedelta(hours=2))
    slips = [
        SlipRow(5, utc(2026, 10, 15, 10), D(2026, 11, 20), D(2026, 11, 27)),  # E later: slip
        SlipRow(5, utc(2026, 11, 21, 8), D(2026, 11, 27), D(2026, 12, 5)),  # E again: slip
        SlipRow(6, utc(2026, 11, 5, 9), D(2026, 12, 15), D(2026, 12, 10)),  # F earlier: none
        # 1 Oct 01:30 in UTC+2 is 30 Sep 23:30 UTC: Q3's, by its UTC date.
        SlipRow(3, datetime(2026, 10, 1, 1, 30, tzinfo=plus2), D(2026, 11, 2), D(2026, 11, 5)),
    ]
    # Open in Q4: added by 31 Dec, not cancelled, not done before 1 Oct: A B C D E F H I
    # (H was done on 1 Oct itself) = 8. Slips in Q4: the two of E.
    m = forecast_slips(ROWS, slips, Q4)
    assert m.value == 2.0
    assert (
        m.explanation == "2 forecast dates moved later in 2026-Q4, on 1 of 8 milestones open then"
    )
    # Open in Q3: added by 30 Sep (not F), not cancelled: A B C D E H I = 7; one slip (C's).
    q3 = forecast_slips(ROWS, slips, Q3)
    assert (q3.value, q3.explanation) == (
        1.0,
        "1 forecast date moved later in 2026-Q3, on 1 of 7 milestones open then",
    )
    calm = forecast_slips(ROWS, [], Q4)
    assert (calm.value, calm.explanation) == (
        0.0,
        "no forecast date moved later in 2026-Q4 (8 milestones open)",
    )


ACTIONS = [
    ActionRow(D(2026, 10, 10), ActionStatus.DONE, D(2026, 10, 9)),  # a1 on time
    ActionRow(D(2026, 10, 20), ActionStatus.DONE, D(2026, 10, 20)),  # a2 on the day
    ActionRow(D(2026, 11, 3), ActionStatus.DONE, D(2026, 11, 6)),  # a3 3 days late
    ActionRow(D(2026, 11, 15), ActionStatus.OPEN, None),  # a4 open, 10 days overdue
    ActionRow(D(2026, 11, 24), ActionStatus.OPEN, None),  # a5 open, 1 day overdue
    ActionRow(D(2026, 11, 25), ActionStatus.OPEN, None),  # a6 due today: not yet late
    ActionRow(D(2026, 12, 1), ActionStatus.DONE, D(2026, 11, 20)),  # a7 closed early
    ActionRow(D(2026, 11, 5), ActionStatus.CANCELLED, None),  # a8 cancelled: not counted
    ActionRow(D(2026, 9, 30), ActionStatus.DONE, D(2026, 10, 2)),  # a9 Q3's, 2 days late
]


def test_actions_by_hand() -> None:
    # Due in Q4, not cancelled: a1-a7. Counted (closed, or open past due): a1 a2 a3 a4 a5
    # a7 = 6 (a6 is due today). By the due date: a1 a2 a7 = 3 -> 50 %.
    m = actions_on_time(ACTIONS, Q4, TODAY)
    assert m.value == 50.0
    assert m.explanation == ("3 of 6 actions due in 2026-Q4 closed by the due date; 1 not yet due")
    # Late: a3 3 days, a4 10 (15 -> 25 Nov), a5 1: median of 1, 3, 10 = 3.
    late = action_days_overdue(ACTIONS, Q4, TODAY)
    assert late.value == 3.0
    assert late.explanation == (
        "median 3 days overdue over the 3 actions closed late or still open (3 of 6 due)"
    )
    # Q3: a9 alone, closed 2 days late: 0 %, median 2.
    assert actions_on_time(ACTIONS, Q3, TODAY).value == 0.0
    assert action_days_overdue(ACTIONS, Q3, TODAY).value == 2.0


def week(label: str) -> Period:
    year, w = label.split("-W")
    return Period(date.fromisocalendar(int(year), int(w), 1), label)


A, R = ApprovalState.APPROVED, ApprovalState.REJECTED
SUBMISSIONS = [
    # KPI 1, weekly. W40 (28 Sep - 4 Oct) ends 4 Oct: a Q4 period. Sent 6 Oct: 2 days.
    KpiSubmission(1, week("2026-W40"), utc(2026, 10, 6, 9), A, A),
    # W41 ends 11 Oct: sent 13 Oct but rejected; sent again 20 Oct (9 days): late.
    KpiSubmission(1, week("2026-W41"), utc(2026, 10, 13, 9), R, R),
    KpiSubmission(1, week("2026-W41"), utc(2026, 10, 20, 9), A, A),
    # W42 ends 18 Oct: sent 23 Oct, 5 days: on time (the last day counts).
    KpiSubmission(1, week("2026-W42"), utc(2026, 10, 23, 23), A, A),
    # W43 ends 25 Oct: sent 31 Oct, 6 days: late.
    KpiSubmission(1, week("2026-W43"), utc(2026, 10, 31, 9), A, A),
    # W44 ends 1 Nov: sent 2 Nov, still pending (not reviewed): on time.
    KpiSubmission(1, week("2026-W44"), utc(2026, 11, 2, 9), ApprovalState.PENDING, None),
    # KPI 2, monthly. October ends 31 Oct: sent 3 Nov, rejected; again 5 Nov (5 days).
    KpiSubmission(2, Period(D(2026, 10, 1), "2026-10"), utc(2026, 11, 3, 9), R, R),
    KpiSubmission(2, Period(D(2026, 10, 1), "2026-10"), utc(2026, 11, 5, 9), A, A),
    # Q3 periods: September (sent 2 Oct, by the sponsor: never reviewed) and W39 (ends
    # 27 Sep, sent 5 Oct: 8 days, late).
    KpiSubmission(2, Period(D(2026, 9, 1), "2026-09"), utc(2026, 10, 2, 9), A, None),
    KpiSubmission(1, week("2026-W39"), utc(2026, 10, 5, 9), A, A),
]


def test_kpi_reports_on_time_by_hand() -> None:
    # Q4 reports: (1, W40) yes, (1, W41) no, (1, W42) yes, (1, W43) no, (1, W44) yes,
    # (2, Oct) yes = 4 of 6 = 66.7 %.
    m = kpi_reports_on_time(SUBMISSIONS, Q4, 5)
    assert m.value == 66.7
    assert m.explanation == (
        "4 of 6 KPI reports for periods ending in 2026-Q4 submitted within 5 days of the period end"
    )
    # Q3: September yes, W39 no: 50 %. With 10 days allowed W39 (8 days) is on time too.
    assert kpi_reports_on_time(SUBMISSIONS, Q3, 5).value == 50.0
    assert kpi_reports_on_time(SUBMISSIONS, Q3, 10).value == 100.0


def test_kpi_rejected_share_by_hand() -> None:
    # Reviewed in Q4: W40, W41 x2, W42, W43, Oct x2 = 7 (W44 is pending); rejected 2.
    # 2 / 7 = 28.57 -> 28.6 %.
    m = kpi_rejected_share(SUBMISSIONS, Q4)
    assert m.value == 28.6
    assert m.explanation == (
        "2 of 7 KPI submissions reviewed for periods ending in 2026-Q4 rejected"
    )
    # Q3: W39 reviewed and approved; September was never reviewed: 0 of 1.
    assert kpi_rejected_share(SUBMISSIONS, Q3).value == 0.0


APPROVALS = [
    ApprovalRow(utc(2026, 10, 1, 9), utc(2026, 10, 1, 15), A),  # 6 h
    ApprovalRow(utc(2026, 10, 10, 9), utc(2026, 10, 12, 9), R),  # 48 h
    ApprovalRow(utc(2026, 11, 1, 0), utc(2026, 11, 1, 10, 30), A),  # 10.5 h
    # Decided 1 Jan 00:30 at UTC+1 = 31 Dec 23:30 UTC: Q4's. 12:00 -> 23:30 next day: 35.5 h.
    ApprovalRow(
        utc(2026, 12, 30, 12), datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), A
    ),
    ApprovalRow(utc(2026, 9, 29, 10), utc(2026, 9, 30, 22), A),  # Q3: 36 h
]


def test_approval_turnaround_by_hand() -> None:
    # Q4: 6, 48, 10.5, 35.5 -> sorted 6, 10.5, 35.5, 48: median (10.5 + 35.5) / 2 = 23.
    m = approval_turnaround_hours(APPROVALS, Q4)
    assert m.value == 23.0
    assert m.explanation == (
        "median 23 hours from request to decision over 4 decisions in 2026-Q4 "
        "(the sponsor's measure)"
    )
    assert approval_turnaround_hours(APPROVALS, Q3).value == 36.0


def test_nothing_to_measure_is_no_data_not_zero() -> None:
    empty = compute_all(VendorRecord(), Q4, TODAY)
    assert [m.key for m in empty] == list(COMPUTED_MEASURES)
    assert all(m.value is None for m in empty)
    said = {m.key: m.explanation for m in empty}
    assert said["milestones_on_time"] == "no milestones due in 2026-Q4"
    assert said["actions_on_time"] == "no actions due in 2026-Q4"
    assert said["forecast_slips"] == "no milestones open in 2026-Q4"
    assert said["kpi_reports_on_time"] == "no KPI reports for periods ending in 2026-Q4"
    assert said["approval_turnaround_hours"].startswith("no decisions")
    # Only a milestone not yet due: still no data, and it says why.
    waiting = milestones_on_time([MILESTONES["F"]], Q4, TODAY)
    assert (waiting.value, waiting.explanation) == (
        None,
        "no milestones due in 2026-Q4; 1 not yet due",
    )


def test_status_words() -> None:
    assert status_of(None, 90, "up") == NO_DATA
    assert status_of(50, None, "up") == NO_TARGET
    assert status_of(90, 90, "up") == ON and status_of(89.9, 90, "up") == OFF
    assert status_of(7, 7, "down") == ON and status_of(7.1, 7, "down") == OFF


def test_a_scorecard_by_hand() -> None:
    org = Organization(id=7, name="Apex CRO")
    study = Study(code="ONC-301", kpi_report_days=5)
    enrolment = KpiDefinition(
        id=1,
        key="enrollment",
        label="Enrolment",
        unit="patients",
        direction=Direction.UP,
        target=20.0,
    )
    deviations = KpiDefinition(
        id=2,
        key="protocol_deviations",
        label="Protocol deviations",
        unit="count",
        direction=Direction.DOWN,
        target=2.0,
    )
    approved = [
        # Enrolment: W43 and W47 in Q4 (the latest is W47: 18), W38 in Q3 (12).
        ApprovedValue(1, week("2026-W43"), 25.0),
        ApprovedValue(1, week("2026-W47"), 18.0),
        ApprovedValue(1, week("2026-W38"), 12.0),
        # Deviations: Q3 only (W39: 1), so no Q4 value.
        ApprovedValue(2, week("2026-W39"), 1.0),
    ]
    record = VendorRecord(ROWS, [], ACTIONS, SUBMISSIONS, APPROVALS)
    records = StudyRecords({7: record}, {7: approved}, {1: enrolment, 2: deviations})
    card = scorecard(records, study, org, Q4, TODAY, TargetBook(1, {}))
    lines = {line.key: line for line in card.lines}
    assert list(lines)[:8] == list(COMPUTED_MEASURES)
    # Milestones on time: 50 % now, 0 % in Q3 (see above): +50, better; target 90: off.
    on_time = lines["milestones_on_time"]
    assert (on_time.value, on_time.previous, on_time.change, on_time.trend) == (
        50.0,
        0.0,
        50.0,
        "better",
    )
    assert on_time.status == OFF and on_time.target.value == DEFAULT_TARGETS["milestones_on_time"]
    assert on_time.computed and on_time.target.source == "default"
    # Days late: 4.5 now, 3 in Q3: +1.5, and for a lower-is-better measure that is worse;
    # still within the 7-day target.
    late = lines["milestone_days_late"]
    assert (late.change, late.trend, late.status) == (1.5, "worse", ON)
    # Turnaround 23 h (Q3 36 h): -13, better; the sponsor's line.
    turnaround = lines["approval_turnaround_hours"]
    assert (turnaround.change, turnaround.trend, turnaround.side) == (-13.0, "better", "sponsor")
    # Reported: enrolment 18 (W47) against 20: off target; 18 - 12 = +6 better.
    enrol = lines["enrollment"]
    assert not enrol.computed
    assert (enrol.value, enrol.previous, enrol.status, enrol.trend) == (18.0, 12.0, OFF, "better")
    assert (
        enrol.explanation
        == "latest approved value, for 2026-W47 (2 approved periods ending in 2026-Q4)"
    )
    dev = lines["protocol_deviations"]
    assert (dev.value, dev.previous, dev.status, dev.change) == (None, 1.0, NO_DATA, None)
    assert dev.explanation == "no approved value for a period ending in 2026-Q4 (last: 2026-W39)"
    as_json = card.as_json()
    assert (as_json["org"], as_json["period"]) == ("Apex CRO", "2026-Q4")
    assert {"key", "value", "target", "status", "explanation"} <= set(as_json["measures"][0])


@pytest.mark.parametrize("raw", ["2026-Q4", "2026Q4", "2026-q4", " 2026q4 "])
def test_quarters_parse(raw: str) -> None:
    q = Quarter.parse(raw)
    assert (q.label, q.start, q.end) == ("2026-Q4", D(2026, 10, 1), D(2026, 12, 31))
    assert q.previous().label == "2026-Q3" and q.next().label == "2027-Q1"
    assert Quarter(2027, 1).previous() == Q4 and Quarter.of(D(2026, 12, 31)) == Q4


@pytest.mark.parametrize("raw", ["2026-Q5", "Q4", "2026-4", "26-Q4", "1999-Q1"])
def test_quarters_refuse(raw: str) -> None:
    with pytest.raises(UserError, match="2026-Q4"):
        Quarter.parse(raw)
