"""Domain services: each happy path, and each kind of bad input leaving the DB unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import actions, approvals, directory, home, kpis, milestones
from crobot.services.actor import SYSTEM, Actor
from crobot.services.errors import Forbidden, NotFound, NotRegistered, UserError
from crobot.services.visibility import Audience, Scope
from crobot.storage.models import (
    ActionStatus,
    Approval,
    ApprovalState,
    AuditEvent,
    KpiUpdate,
    Milestone,
    MilestoneStatus,
)
from tests.conftest import APEX_PM, APPROVER, LAB_PM, SPONSOR, STRANGER, TODAY, World
from tests.dbstate import assert_unchanged, snapshot


def rejected(world: World, exc: type[Exception], fn: Callable[[Session], Any]) -> str:
    """Run fn in a write transaction; it must raise `exc` and leave the database as it was."""
    before = snapshot(world.db)
    with pytest.raises(exc) as info, world.db.write() as s:
        fn(s)
    assert_unchanged(world.db, before)
    return str(info.value)


def sponsor_aud(world: World) -> Audience:
    return Audience(world.study_id, Scope.SPONSOR, None, world.sponsor_id)


# --- directory ---------------------------------------------------------------------------


def test_directory_rejects_bad_input(world: World) -> None:
    assert "already exists" in rejected(
        world, UserError, lambda s: directory.add_org(s, SYSTEM, name="Apex CRO", kind="cro")
    )
    assert "kind" in rejected(
        world, UserError, lambda s: directory.add_org(s, SYSTEM, name="New Co", kind="pharmacy")
    )
    assert "not a sponsor" in rejected(
        world,
        UserError,
        lambda s: directory.add_study(s, SYSTEM, code="X-1", title="t", sponsor="Apex CRO"),
    )
    assert "Did you mean" in rejected(
        world,
        NotFound,
        lambda s: directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor="Apex CR0"),
    )
    assert "sponsor organisation" in rejected(
        world,
        UserError,
        lambda s: directory.add_person(
            s,
            SYSTEM,
            team_id="T1",
            user_id="UNEW",
            display_name="N",
            org="Apex CRO",
            role="sponsor_approver",
        ),
    )
    assert "time zone" in rejected(
        world,
        UserError,
        lambda s: directory.link_channel(
            s,
            SYSTEM,
            team_id="T1",
            channel_id="CNEW",
            study="ONC-301",
            audience="sponsor",
            timezone="Mars/Olympus",
        ),
    )
    assert "audience" in rejected(
        world,
        UserError,
        lambda s: directory.link_channel(
            s, SYSTEM, team_id="T1", channel_id="CNEW", study="ONC-301", audience="everyone"
        ),
    )


def test_relinking_a_channel_updates_it_in_place(world: World) -> None:
    with world.db.write() as s:
        link = directory.link_channel(
            s,
            SYSTEM,
            team_id="T1",
            channel_id="CJOINT",
            study="ONC-301",
            audience="joint:Apex CRO",
            timezone="Asia/Kolkata",
        )
        assert link.audience_org_id == world.apex_id and link.timezone == "Asia/Kolkata"


# --- milestones ---------------------------------------------------------------------------


def test_milestone_lifecycle_vendor_completion_needs_approval(world: World) -> None:
    apex = world.actor(APEX_PM)
    with world.db.write() as s:
        ms = milestones.add(
            s,
            apex,
            today=TODAY,
            study="onc-301",
            name="Sites activated",
            planned=TODAY + timedelta(days=10),
        )
        assert ms.org_id == world.apex_id and ms.status == MilestoneStatus.PLANNED
        milestones.update(s, apex, today=TODAY, id=ms.id, forecast=TODAY + timedelta(days=20))
        change = milestones.update(s, apex, today=TODAY, id=ms.id, status="done")
        assert change.approval_requested
        assert s.get_one(Milestone, ms.id).status == MilestoneStatus.DONE
        assert ms.actual_date == TODAY
        approval = s.scalars(select(Approval)).one()
        assert approval.summary["from_status"] == "planned"
    with world.db.write() as s:
        decision = approvals.decide(
            s,
            world.actor(APPROVER),
            approval.id,
            approve=False,
            reason="No activation letter for site 7",
        )
        assert decision.changed
    with world.db.read() as s:
        got = milestones.list_for(s, sponsor_aud(world), today=TODAY)
        assert [(m.name, m.status, m.actual_date) for m in got] == [
            ("Sites activated", MilestoneStatus.PLANNED, None)
        ]


def test_only_an_approvers_own_sponsor_completion_is_approved_at_once(world: World) -> None:
    sponsor, approver = world.actor(SPONSOR), world.actor(APPROVER)
    yesterday = TODAY - timedelta(days=1)
    with world.db.write() as s:
        own = milestones.add(s, approver, today=TODAY, study="ONC-301", name="CSR", planned=TODAY)
        change = milestones.update(
            s, approver, today=TODAY, id=own.id, status="done", actual=yesterday
        )
        assert not change.approval_requested and own.status == MilestoneStatus.APPROVED
        assert s.scalars(select(Approval)).first() is None
        # A sponsor member completing a vendor's milestone: it waits for an approver.
        ms = milestones.add(
            s, sponsor, today=TODAY, study="ONC-301", name="FPI", planned=TODAY, org="Apex CRO"
        )
        change = milestones.update(
            s, sponsor, today=TODAY, id=ms.id, status="done", actual=yesterday
        )
        assert change.approval_requested and ms.status == MilestoneStatus.DONE


def test_milestone_bad_inputs_change_nothing(world: World) -> None:
    apex, lab = world.actor(APEX_PM), world.actor(LAB_PM)
    with world.db.write() as s:
        ms_id = milestones.add(
            s, apex, today=TODAY, study="ONC-301", name="LPI", planned=TODAY + timedelta(days=3)
        ).id
    past = TODAY - timedelta(days=1)
    future = TODAY + timedelta(days=1)
    cases: list[tuple[type[Exception], Callable[[Session], Any], str]] = [
        (
            NotFound,
            lambda s: milestones.add(
                s, apex, today=TODAY, study="ONC-999", name="x", planned=future
            ),
            "no study",
        ),
        (
            UserError,
            lambda s: milestones.add(
                s, apex, today=TODAY, study="ONC-301", name="", planned=future
            ),
            "name",
        ),
        (
            UserError,
            lambda s: milestones.add(
                s, apex, today=TODAY, study="ONC-301", name="x", planned="2026-02-30"
            ),
            "planned",
        ),
        (
            UserError,
            lambda s: milestones.add(s, apex, today=TODAY, study="ONC-301", name="x", planned=past),
            "in the past",
        ),
        (
            Forbidden,
            lambda s: milestones.add(
                s, apex, today=TODAY, study="ONC-301", name="x", planned=future, org="CentraLab"
            ),
            "own",
        ),
        (
            NotRegistered,
            lambda s: milestones.add(
                s, world.actor(STRANGER), today=TODAY, study="ONC-301", name="x", planned=future
            ),
            "crobot does not know you",
        ),
        (  # Apex's milestone: for CentraLab it might as well not exist
            NotFound,
            lambda s: milestones.update(s, lab, today=TODAY, id=ms_id, status="done"),
            f"There is no milestone #{ms_id} that you can change.",
        ),
        (
            NotFound,
            lambda s: milestones.update(s, apex, today=TODAY, id=9999, status="done"),
            "There is no milestone #9999 that you can change.",
        ),
        (
            UserError,
            lambda s: milestones.update(s, apex, today=TODAY, id=ms_id, forecast=past),
            "in the past",
        ),
        (
            UserError,
            lambda s: milestones.update(
                s, apex, today=TODAY, id=ms_id, status="done", actual=future
            ),
            "future",
        ),
        (
            UserError,
            lambda s: milestones.update(s, apex, today=TODAY, id=ms_id, status="approved"),
            "Approve",
        ),
        (UserError, lambda s: milestones.update(s, apex, today=TODAY, id=ms_id), "Nothing"),
    ]
    for exc, fn, words in cases:
        assert words in rejected(world, exc, fn)


# --- actions ------------------------------------------------------------------------------


def test_action_add_complete_and_list(world: World) -> None:
    apex, sponsor = world.actor(APEX_PM), world.actor(SPONSOR)
    with world.db.write() as s:
        a = actions.add(
            s,
            sponsor,
            today=TODAY,
            study="ONC-301",
            title="Fix query backlog",
            owner_user_id=APEX_PM,
            due=TODAY - timedelta(days=0),
            priority="high",
        )
        assert a.owner_org_id == world.apex_id
        b = actions.add(
            s,
            sponsor,
            today=TODAY,
            study="ONC-301",
            title="Ship kits",
            owner_user_id=LAB_PM,
            due=TODAY + timedelta(days=5),
        )
    with world.db.read() as s:
        mine = actions.list_for(s, sponsor_aud(world), today=TODAY, owner=("T1", APEX_PM))
        assert [x.id for x in mine] == [a.id]
    with world.db.write() as s:
        actions.complete(s, apex, a.id)
    assert f"There is no action #{b.id} that you can change." in rejected(
        world, NotFound, lambda s: actions.complete(s, apex, b.id)
    )
    assert "already done" in rejected(world, UserError, lambda s: actions.complete(s, apex, a.id))
    with world.db.read() as s:
        done = actions.list_for(s, sponsor_aud(world), today=TODAY, include_closed=True)
        assert {(x.id, x.status) for x in done} == {
            (a.id, ActionStatus.DONE),
            (b.id, ActionStatus.OPEN),
        }


def test_action_bad_inputs_change_nothing(world: World) -> None:
    apex = world.actor(APEX_PM)
    base: dict[str, Any] = {
        "study": "ONC-301",
        "title": "t",
        "owner_user_id": APEX_PM,
        "due": TODAY,
    }
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"due": TODAY - timedelta(days=1)}, UserError, "in the past"),
        ({"owner_user_id": "not-a-user"}, UserError, "owner_user_id"),
        ({"priority": "urgent"}, UserError, "priority"),
        ({"title": ""}, UserError, "title"),
        ({"owner_user_id": LAB_PM}, Forbidden, "own people"),
        ({"milestone_id": 4242}, NotFound, "There is no milestone #4242 that you can link"),
    ]
    for override, exc, words in cases:
        data: dict[str, Any] = {**base, **override}

        def add(s: Session, d: dict[str, Any] = data) -> object:
            return actions.add(s, apex, today=TODAY, **d)

        assert words in rejected(world, exc, add)


# --- KPIs ---------------------------------------------------------------------------------


def test_kpi_correction_supersedes_and_vendor_values_wait_for_approval(world: World) -> None:
    apex, approver = world.actor(APEX_PM), world.actor(APPROVER)
    with world.db.write() as s:
        reported = kpis.report(
            s, apex, today=TODAY, study="ONC-301", kpi="enrolment", value=10, period="2026-W47"
        )
        assert reported.approval_id is not None
        approvals.decide(s, approver, reported.approval_id, approve=True)
        first = reported.update
        assert first.approval_state == ApprovalState.APPROVED
        corr = kpis.report(
            s,
            apex,
            today=TODAY,
            study="ONC-301",
            kpi="enrollment",
            value=12,
            period="2026-W47",
            note="late site",
        )
        assert corr.approval_requested and corr.previous is not None
        assert corr.update.supersedes_id == first.id
        assert corr.update.approval_state == ApprovalState.PENDING
    with world.db.read() as s:
        rows = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id)).all()
        assert [(r.value, r.approval_state) for r in rows] == [
            (10, ApprovalState.APPROVED),
            (12, ApprovalState.PENDING),
        ]  # no UPDATE of value
        kpi = rows[0].kpi
        joint = Audience(world.study_id, Scope.JOINT, world.apex_id, world.sponsor_id)
        assert [p.value for p in kpis.series(s, joint, kpi)] == [10]  # unapproved hidden
        everyone = Audience(world.study_id, Scope.JOINT, None, world.sponsor_id)
        assert kpis.series(s, everyone, kpi) == []  # a multi-vendor channel: not Apex's
        assert [p.value for p in kpis.series(s, sponsor_aud(world), kpi)] == [12]
        actions_logged = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert actions_logged[-2:] == ["kpi.correct", "approval.request"]


@pytest.mark.parametrize(
    ("kpi", "value", "words"),
    [
        ("enrollment", -1, "below 0"),
        ("enrollment", 2.5, "whole number"),
        ("screen_failure_rate", 101, "above 100"),
        ("compliance_rate", float("nan"), "not a number"),
        ("enrolmant", 3, "Did you mean"),
    ],
)
def test_kpi_out_of_range_values_are_rejected(
    world: World, kpi: str, value: float, words: str
) -> None:
    apex = world.actor(APEX_PM)
    assert words in rejected(
        world,
        UserError,
        lambda s: kpis.report(s, apex, today=TODAY, study="ONC-301", kpi=kpi, value=value),
    )


def test_kpi_bad_period_and_foreign_org(world: World) -> None:
    apex = world.actor(APEX_PM)
    for period, words in [
        ("2026-W60", "not a week"),
        ("2027-W01", "not started"),
        ("last week", "period"),
    ]:

        def report(s: Session, p: str = period) -> object:
            return kpis.report(
                s, apex, today=TODAY, study="ONC-301", kpi="enrollment", value=3, period=p
            )

        assert words in rejected(world, UserError, report)
    assert "own" in rejected(
        world,
        Forbidden,
        lambda s: kpis.report(
            s, apex, today=TODAY, study="ONC-301", kpi="enrollment", value=3, org="CentraLab"
        ),
    )


# --- approvals ----------------------------------------------------------------------------


def test_approval_decisions_are_idempotent_and_restricted(world: World) -> None:
    apex = world.actor(APEX_PM)
    with world.db.write() as s:
        rep = kpis.report(s, apex, today=TODAY, study="ONC-301", kpi="query_aging", value=9)
        approval_id = s.scalars(select(Approval.id)).one()
    assert f"There is no approval request #{approval_id} that you can decide." in rejected(
        world,
        NotFound,
        lambda s: approvals.decide(s, world.actor(SPONSOR), approval_id, approve=True),
    )
    assert "needs a reason" in rejected(
        world,
        UserError,
        lambda s: approvals.decide(
            s, world.actor(APPROVER), approval_id, approve=False, reason="  "
        ),
    )
    with world.db.write() as s:
        first = approvals.decide(s, world.actor(APPROVER), approval_id, approve=True)
    before = snapshot(world.db)
    with world.db.write() as s:
        again = approvals.decide(
            s, world.actor(APPROVER), approval_id, approve=False, reason="changed my mind"
        )
    assert first.changed and not again.changed
    assert again.approval.state == ApprovalState.APPROVED
    assert_unchanged(world.db, before)
    with world.db.read() as s:
        assert s.get_one(KpiUpdate, rep.update.id).approval_state == ApprovalState.APPROVED


def test_an_unknown_actor_is_told_how_to_get_access_and_nothing_else(world: World) -> None:
    stranger = Actor(team_id="T9", user_id="UNOBODY")
    calls: list[Callable[[Session], object]] = [
        lambda s: kpis.report(s, stranger, today=TODAY, study="ONC-301", kpi="enrollment", value=1),
        lambda s: actions.add(
            s, stranger, today=TODAY, study="ONC-301", title="x", owner_user_id=APEX_PM, due=TODAY
        ),
        lambda s: actions.complete(s, stranger, 1),
        lambda s: milestones.update(s, stranger, today=TODAY, id=1, status="done"),
        lambda s: approvals.decide(s, stranger, 1, approve=True),
        lambda s: home.home_for(s, stranger, today=TODAY),
    ]
    for call in calls:
        assert "crobot person add UNOBODY --team T9" in rejected(world, NotRegistered, call)
