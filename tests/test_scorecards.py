"""Scorecards read from the database: a record with known dates on ONC-301, written
through the services (the times a row carries — when a value was sent, when an action
was closed — set to the fixture's), and the scorecard checked by hand; each vendor's own
rows only; a fixed number of queries however many rows there are."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from crobot.services import actions, approvals, directory, kpis, milestones, scorecards
from crobot.services.actor import SYSTEM
from crobot.services.quarters import Quarter
from crobot.services.scorecards import OFF, ON, Scorecard
from crobot.storage.models import Approval, Study
from tests.conftest import APEX_PM, APPROVER, LAB_PM, TODAY, World
from tests.digest_helpers import count_queries

Q4 = Quarter(2026, 4)


def utc(y: int, m: int, d: int, h: int = 9, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=UTC)


def _record(world: World, *, extra_actions: int = 0) -> None:
    """Apex's quarter (owner in Asia/Kolkata) and one CentraLab milestone."""
    apex, lab, approver = world.actor(APEX_PM), world.actor(LAB_PM), world.actor(APPROVER)
    with world.db.write() as s:

        def milestone(who: str, name: str, planned: date, actual: date | None) -> None:
            actor = apex if who == APEX_PM else lab
            ms = milestones.add(
                s, actor, today=TODAY, allow_past=True, study="ONC-301", name=name, planned=planned
            )
            if actual is not None:
                done = milestones.update(
                    s, actor, today=TODAY, id=ms.id, status="done", actual=actual
                )
                assert done.approval_id is not None
                approvals.decide(s, approver, done.approval_id, approve=True, today=TODAY)

        milestone(APEX_PM, "FPI", date(2026, 10, 5), date(2026, 10, 3))  # 2 days early
        milestone(APEX_PM, "DB build", date(2026, 11, 2), date(2026, 11, 9))  # 7 days late
        milestone(APEX_PM, "Close-out", date(2026, 11, 20), None)  # open past its date
        milestone(APEX_PM, "Interim lock", date(2026, 12, 15), None)  # not yet due
        milestone(LAB_PM, "Kits shipped", date(2026, 10, 15), date(2026, 10, 15))

        def action(due: date, closed: datetime | None, title: str = "Task") -> None:
            item = actions.add(
                s,
                apex,
                today=TODAY,
                allow_past=True,
                study="ONC-301",
                title=title,
                owner_user_id=APEX_PM,
                due=due,
            )
            if closed is not None:
                actions.complete(s, apex, item.id)
                item.completed_at = closed

        action(date(2026, 10, 10), utc(2026, 10, 9, 12))  # the day before
        # 20:00 UTC on 6 Nov is 01:30 on 7 Nov in Kolkata, where its owner is: 1 day late.
        action(date(2026, 11, 6), utc(2026, 11, 6, 20))
        action(date(2026, 11, 20), None)  # open, 5 days overdue on 25 Nov
        action(date(2026, 12, 1), None)  # not yet due
        for i in range(extra_actions):  # due next year: more rows, nothing measured
            action(date(2027, 2, 1) + timedelta(days=i % 20), None, f"Later {i}")

        def value(period: str, v: float, sent: datetime, decision: bool | None) -> None:
            rep = kpis.report(
                s, apex, today=TODAY, study="ONC-301", kpi="enrollment", value=v, period=period
            )
            rep.update.submitted_at = sent
            assert rep.approval_id is not None
            if decision is not None:
                reason = None if decision else "Wrong week"
                approvals.decide(s, approver, rep.approval_id, approve=decision, reason=reason)

        value("2026-W41", 11, utc(2026, 10, 13), True)  # W41 ends 11 Oct: 2 days
        value("2026-W42", 99, utc(2026, 10, 19), False)  # ends 18 Oct; rejected
        value("2026-W42", 12, utc(2026, 10, 26), True)  # again 8 days after: late
        value("2026-W43", 14, utc(2026, 10, 27), True)  # ends 25 Oct: 2 days
        value("2026-W47", 30, utc(2026, 11, 24), None)  # ends 22 Nov: 2 days, pending


def _cards(world: World, q: Quarter = Q4) -> list[Scorecard]:
    with world.db.read() as s:
        study = s.scalars(select(Study)).one()
        return scorecards.build(
            s, study, [world.apex_id, world.lab_id], q, today=TODAY, default_tz="UTC"
        )


def test_a_scorecard_from_the_record_by_hand(world: World) -> None:
    _record(world)
    apex, lab = _cards(world)  # by vendor name
    assert (apex.org_name, lab.org_name) == ("Apex CRO", "CentraLab")
    a = {line.key: line for line in apex.lines}
    # Milestones planned in Q4: FPI, DB build, Close-out, Interim lock. Counted: FPI, DB
    # build (done) and Close-out (20 Nov, open, past): 3; on time: FPI: 1 of 3 = 33.3 %.
    assert a["milestones_on_time"].value == 33.3
    assert a["milestones_on_time"].explanation.startswith("1 of 3 milestones due in 2026-Q4")
    # Done late: DB build, 2 -> 9 Nov: 7 days; the target is at most 7: on target.
    assert (a["milestone_days_late"].value, a["milestone_days_late"].status) == (7.0, ON)
    # Actions due in Q4 counted: 10 Oct (on time), 6 Nov (closed 7 Nov where its owner
    # is), 20 Nov (open): 1 of 3 = 33.3 %; overdue 1 and 5 days: median 3.
    assert a["actions_on_time"].value == 33.3
    assert a["action_days_overdue"].value == 3.0
    # Reports: W41 yes, W42 (first sent value rejected, the next 8 days after) no, W43
    # yes, W47 yes (pending, but sent in time): 3 of 4 = 75 %.
    assert a["kpi_reports_on_time"].value == 75.0
    # Reviewed: W41, W42 twice, W43 (W47 still waits): 1 rejected of 4 = 25 %: above
    # the 10 % target.
    assert (a["kpi_rejected_share"].value, a["kpi_rejected_share"].status) == (25.0, OFF)
    # Reported enrolment: the latest approved value in Q4 is W43's 14 (W47's waits);
    # below the shipped target of 20.
    enrol = a["enrollment"]
    assert (enrol.value, enrol.status, enrol.computed) == (14.0, OFF, False)
    assert "2026-W43" in enrol.explanation
    # CentraLab: its one milestone, on the day; nothing of Apex's.
    b = {line.key: line for line in lab.lines}
    assert b["milestones_on_time"].value == 100.0
    assert b["actions_on_time"].value is None and b["kpi_reports_on_time"].value is None
    assert "enrollment" not in b
    assert b["actions_on_time"].explanation == "no actions due in 2026-Q4"


def test_the_study_says_how_late_a_report_may_be(world: World) -> None:
    _record(world)
    with world.db.write() as s:
        directory.update_study(s, SYSTEM, code="ONC-301", kpi_report_days=10)
    apex, _ = _cards(world)
    reports = next(line for line in apex.lines if line.key == "kpi_reports_on_time")
    # With 10 days W42's second value (8 days after) is on time too: 4 of 4.
    assert reports.value == 100.0
    assert "within 10 days of the period end" in reports.explanation


def test_slips_and_turnaround_are_read_from_what_happened_this_quarter(world: World) -> None:
    """Forecast changes are recorded when they are made, and decisions when they are
    taken: measured in the current quarter (the real clock's)."""
    apex, approver = world.actor(APEX_PM), world.actor(APPROVER)
    today = datetime.now(UTC).date()
    with world.db.write() as s:
        ms = milestones.add(
            s, apex, today=today, study="ONC-301", name="LPI", planned=today + timedelta(days=30)
        )
        for days in (40, 35, 50):  # later, earlier, later: two slips
            milestones.update(s, apex, today=today, id=ms.id, forecast=today + timedelta(days=days))
        for hours in (10, 30, 2):  # asked that long before the decision: median 10 h
            rep = kpis.report(s, apex, today=today, study="ONC-301", kpi="query_aging", value=3)
            assert rep.approval_id is not None
            asked = s.get_one(Approval, rep.approval_id)
            asked.requested_at = datetime.now(UTC) - timedelta(hours=hours)
            approvals.decide(s, approver, rep.approval_id, approve=True)
    with world.db.read() as s:
        study = s.scalars(select(Study)).one()
        (card,) = scorecards.build(s, study, [world.apex_id], Quarter.of(today), today=today)
    lines = {line.key: line for line in card.lines}
    assert lines["forecast_slips"].value == 2.0
    assert lines["forecast_slips"].explanation.startswith("2 forecast dates moved later")
    assert lines["approval_turnaround_hours"].value == 10.0
    assert lines["approval_turnaround_hours"].side == "sponsor"


def test_a_fixed_number_of_queries_however_many_rows(world: World) -> None:
    _record(world)
    with count_queries(world.db) as few:
        _cards(world)
    _record(world, extra_actions=60)
    with count_queries(world.db) as many:
        cards = _cards(world)
    assert len(many) == len(few) <= 10, many
    assert len(cards) == 2
