"""The visibility rule, as a property: no vendor audience ever receives another vendor's row,
joint audiences never receive unapproved data, and owners always see their own rows; an id
is reachable (by every by-id path) exactly when the person, (workspace, user), may see and
change it, and otherwise answered like a missing one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import directory, reachable
from crobot.services.actor import SYSTEM, Actor, resolve_actor
from crobot.services.errors import NotRegistered, UserError
from crobot.services.visibility import (
    Audience,
    Scope,
    action_filter,
    audience_for_person,
    kpi_filter,
    milestone_filter,
    narrowest,
)
from crobot.storage.models import (
    ActionItem,
    ApprovalState,
    KpiDefinition,
    KpiUpdate,
    Milestone,
    MilestoneStatus,
)
from tests.conftest import APEX_PM, APPROVER, LAB_PM, SPONSOR, STRANGER, World

Row = tuple[str, int | None, bool, str]  # kind, org slot (None = study level), shared, state

row_strategy = st.tuples(
    st.sampled_from(["milestone", "action", "kpi"]),
    st.one_of(st.none(), st.integers(0, 3)),  # 0 = sponsor, 1..3 = vendors
    st.booleans(),
    st.sampled_from(["planned", "at_risk", "done", "approved", "pending", "rejected"]),
)


def _third_vendor(world: World) -> int:
    with world.db.write() as s:
        org = directory.add_org(s, SYSTEM, name="Dublin CMO", kind="cmo")
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor="Dublin CMO")
        return org.id


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(row_strategy, min_size=1, max_size=25), vendor_slot=st.integers(1, 3))
def test_no_audience_sees_what_it_must_not(world: World, rows: list[Row], vendor_slot: int) -> None:
    if not hasattr(world, "cmo_id"):
        world.cmo_id = _third_vendor(world)  # type: ignore[attr-defined]
    orgs = [world.sponsor_id, world.apex_id, world.lab_id, world.cmo_id]  # type: ignore[attr-defined]
    vendor = orgs[vendor_slot]
    d = date(2026, 11, 2)
    with world.db.read() as s:  # rolled back at the end: nothing persists between examples
        kpi_id = s.scalars(select(KpiDefinition.id).where(KpiDefinition.key == "enrollment")).one()
        for i, (kind, slot, shared, state) in enumerate(rows):
            org = None if slot is None else orgs[slot]
            if kind == "milestone":
                status = state if state in {m.value for m in MilestoneStatus} else "planned"
                s.add(
                    Milestone(
                        study_id=world.study_id,
                        org_id=org,
                        name=f"m{i}",
                        planned_date=d,
                        status=MilestoneStatus(status),
                        shared=shared,
                        created_by="t",
                    )
                )
            elif kind == "action":
                s.add(
                    ActionItem(
                        study_id=world.study_id,
                        title=f"a{i}",
                        owner_user_id="U1",
                        owner_org_id=org,
                        due_date=d,
                        shared=shared,
                        created_by="t",
                    )
                )
            else:
                appr = state if state in {a.value for a in ApprovalState} else "approved"
                s.add(
                    KpiUpdate(
                        study_id=world.study_id,
                        org_id=org or world.sponsor_id,
                        kpi_id=kpi_id,
                        period_start=d + timedelta(weeks=i),
                        period_label=f"p{i}",
                        value=i,
                        submitted_by="t",
                        approval_state=ApprovalState(appr),
                    )
                )
        s.flush()

        def seen(aud: Audience) -> tuple[list[Milestone], list[ActionItem], list[KpiUpdate]]:
            return (
                list(s.scalars(select(Milestone).where(milestone_filter(aud)))),
                list(s.scalars(select(ActionItem).where(action_filter(aud)))),
                list(s.scalars(select(KpiUpdate).where(kpi_filter(aud)))),
            )

        sponsor = Audience(world.study_id, Scope.SPONSOR, None, world.sponsor_id)
        all_m, all_a, all_k = seen(sponsor)
        assert (len(all_m), len(all_a), len(all_k)) == tuple(
            sum(1 for r in rows if r[0] == k) for k in ("milestone", "action", "kpi")
        )

        v_m, v_a, v_k = seen(Audience(world.study_id, Scope.VENDOR, vendor, world.sponsor_id))
        # The sponsor's own (and study-level) rows are private unless shared.
        assert all(m.org_id == vendor or m.shared for m in v_m)
        assert all(a.owner_org_id == vendor or a.shared for a in v_a)
        assert all(k.org_id == vendor for k in v_k)
        # Completeness: a vendor sees every row of its own, whatever its state.
        assert {m.id for m in all_m if m.org_id == vendor} <= {m.id for m in v_m}
        assert {k.id for k in all_k if k.org_id == vendor} == {k.id for k in v_k}

        for joint_org in (None, vendor):
            j_m, j_a, j_k = seen(Audience(world.study_id, Scope.JOINT, joint_org, world.sponsor_id))
            assert all(k.approval_state == ApprovalState.APPROVED for k in j_k)
            assert all(m.status != MilestoneStatus.DONE for m in j_m)
            # joint:X shows X's rows and shared ones; a multi-vendor joint channel only
            # shared ones. KPI values: X's (joint:X) and the sponsor's study-level values.
            mine = {joint_org} if joint_org is not None else set()
            assert all(m.shared or m.org_id in mine for m in j_m)
            assert all(a.shared or a.owner_org_id in mine for a in j_a)
            assert all(k.org_id in mine | {world.sponsor_id} for k in j_k)
            # Completeness: every approved shared row, and every approved row of X, is shown.
            assert {
                m.id
                for m in all_m
                if m.status != MilestoneStatus.DONE and (m.shared or m.org_id in mine)
            } == {m.id for m in j_m}
            assert {
                k.id
                for k in all_k
                if k.approval_state == ApprovalState.APPROVED
                and k.org_id in mine | {world.sponsor_id}
            } == {k.id for k in j_k}

        p_m, p_a, p_k = seen(Audience(world.study_id, Scope.PUBLIC, None, world.sponsor_id))
        assert all(m.shared and m.status != MilestoneStatus.DONE for m in p_m)
        assert all(a.shared for a in p_a) and p_k == []
        s.rollback()


def test_person_and_channel_combine_to_the_narrower_view(world: World) -> None:
    with world.db.read() as s:
        from crobot.services.lookup import channel_link, study_by_code, vendor_org_ids
        from crobot.services.visibility import audience_for_channel

        study = study_by_code(s, "ONC-301")
        vendors = vendor_org_ids(s, study.id)
        apex = audience_for_person(world.actor(APEX_PM), study, vendors)
        approver = audience_for_person(world.actor(APPROVER), study, vendors)
        stranger = audience_for_person(world.actor(STRANGER), study, vendors)
        lab_channel = audience_for_channel(channel_link(s, "T1", "CLAB"))  # type: ignore[arg-type]
        apex_channel = audience_for_channel(channel_link(s, "T1", "CAPEX"))  # type: ignore[arg-type]
    assert apex.scope == Scope.VENDOR and apex.org_id == world.apex_id
    assert approver.scope == Scope.SPONSOR and stranger.scope == Scope.PUBLIC
    # Apex in CentraLab's channel sees nothing vendor-internal; the sponsor there sees
    # CentraLab's view only (a message in that channel is for CentraLab's eyes).
    assert narrowest(apex, lab_channel).scope == Scope.PUBLIC
    assert narrowest(approver, lab_channel) == lab_channel
    assert narrowest(apex, apex_channel) == apex
    assert narrowest(stranger, apex_channel).scope == Scope.PUBLIC
    # In the multi-vendor joint channel everyone gets the channel's view (the digest's),
    # not a view narrowed to their own organisation.
    with world.db.read() as s:
        joint_channel = audience_for_channel(channel_link(s, "T1", "CJOINT"))  # type: ignore[arg-type]
    assert narrowest(apex, joint_channel) == joint_channel
    assert narrowest(approver, joint_channel) == joint_channel
    # A person is (workspace, user): Apex's user id in another workspace is nobody we know.
    with world.db.read() as s:
        study = study_by_code(s, "ONC-301")
        twin = audience_for_person(world.actor(APEX_PM, team_id="T0EVIL"), study, vendors)
    assert twin.scope == Scope.PUBLIC


OWNERS = [("T1", LAB_PM), ("T9", LAB_PM), ("T1", APEX_PM), ("T1", SPONSOR)]
# (team, user): the sponsor's two roles, both vendors, and Apex's look-alike of CentraLab's ULAB.
ACTORS = [("T1", APPROVER), ("T1", SPONSOR), ("T1", APEX_PM), ("T1", LAB_PM), ("T9", LAB_PM)]
target_strategy = st.tuples(
    st.sampled_from(["milestone", "action"]),
    st.integers(0, 2),  # 0 = sponsor, 1 = Apex, 2 = CentraLab
    st.booleans(),  # shared
    st.integers(0, len(OWNERS) - 1),
)


def _answer(
    reach: Callable[[Session, Actor, int], object], s: Session, actor: Actor, row_id: int
) -> str | None:
    """What a by-id path answers: None when it reaches the row, else the refusal."""
    try:
        reach(s, actor, row_id)
    except UserError as err:
        return str(err)
    return None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(targets=st.lists(target_strategy, min_size=1, max_size=12))
def test_an_id_is_reachable_exactly_when_visible_and_permitted(
    world: World, targets: list[tuple[str, int, bool, int]]
) -> None:
    """`services.reachable` (every by-id path) compares (workspace, user) and answers a
    forbidden id exactly like a missing one."""
    if not hasattr(world, "lookalike"):
        world.add_person("T9", LAB_PM, "Apex CRO", "vendor_member", name="Look-alike")
        world.lookalike = True  # type: ignore[attr-defined]
    orgs = [world.sponsor_id, world.apex_id, world.lab_id]
    d = date(2026, 12, 2)
    with world.db.read() as s:
        rows: list[Milestone | ActionItem] = []
        for i, (kind, slot, shared, owner) in enumerate(targets):
            team, user = OWNERS[owner]
            if kind == "milestone":
                rows.append(
                    Milestone(
                        study_id=world.study_id,
                        org_id=orgs[slot],
                        name=f"m{i}",
                        planned_date=d,
                        shared=shared,
                        created_by="t",
                    )
                )
            else:
                rows.append(
                    ActionItem(
                        study_id=world.study_id,
                        title=f"a{i}",
                        owner_team_id=team,
                        owner_user_id=user,
                        owner_org_id=orgs[slot],
                        due_date=d,
                        shared=shared,
                        created_by="t",
                    )
                )
        s.add_all(rows)
        s.flush()
        missing = max(r.id for r in rows) + 1000
        for team, user in ACTORS:
            actor = resolve_actor(s, team, user)
            assert actor.person is not None
            sponsor = actor.person.org_id == world.sponsor_id
            for row in rows:
                reach: Callable[[Session, Actor, int], object]
                if isinstance(row, Milestone):
                    allowed = sponsor or row.org_id == actor.org_id
                    reach = reachable.milestone
                else:
                    own = (row.owner_team_id, row.owner_user_id) == (team, user)
                    visible = row.shared or row.owner_org_id == actor.org_id
                    allowed = sponsor or row.owner_org_id == actor.org_id or (own and visible)
                    reach = reachable.action
                got = _answer(reach, s, actor, row.id)
                absent = _answer(reach, s, actor, missing)
                assert (got is None) == allowed, (team, user, row.id)
                if not allowed:
                    assert absent is not None
                    assert got == absent.replace(f"#{missing}", f"#{row.id}")
        stranger = resolve_actor(s, "T1", STRANGER)
        for row in rows:
            fn = reachable.milestone if isinstance(row, Milestone) else reachable.action
            with pytest.raises(NotRegistered):
                fn(s, stranger, row.id)
        s.rollback()
