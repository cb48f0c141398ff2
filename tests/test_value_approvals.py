"""Every vendor value passes an approver; a study may require four eyes.

Only a sponsor approver's own sponsor-organisation values and completions are approved at
once, and not even those when the study requires four eyes. Everything else — a value
entered on a vendor's behalf, or by anyone who is not an approver — waits, and under four
eyes the submitter cannot decide their own submission. Driven through signed `/cro`
requests, signed button clicks and the `crobot` CLI against fake Slack and the real DB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.services import approvals, directory, kpis, milestones
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    AuditHead,
    KpiUpdate,
    Milestone,
    MilestoneStatus,
    Study,
)
from tests.approval_support import (
    APPROVER_2,
    assert_chain_ok,
    audit_actions,
    block_action,
    ephemerals,
    message,
    posted_request,
    second_approver,
    send,
    send_event,
    wait_until,
)
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_LAB,
    C_SPONSOR,
    LAB_PM,
    SPONSOR,
    TODAY,
    World,
)
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient, slash_bot

C_JOINT_LAB = "CJOINTLAB"  # joint:CentraLab — the sponsor and CentraLab
WAITS = "awaits the sponsor's approval"


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    with world.db.write() as s:
        directory.link_channel(
            s,
            SYSTEM,
            team_id="T1",
            channel_id=C_JOINT_LAB,
            study="ONC-301",
            audience="joint:CentraLab",
        )
    second_approver(world)
    with slash_bot(world.db, fake_slack) as client:
        yield client


def _milestone(world: World, user: str) -> int:
    """A milestone of the user's organisation (CentraLab's, or the sponsor's), due next week."""
    with world.db.write() as s:
        ms = milestones.add(
            s,
            world.actor(user),
            today=TODAY,
            study="ONC-301",
            name=f"Milestone of {user}",
            planned=TODAY + timedelta(days=7),
        )
        return ms.id


def _approved_lab_value(world: World, value: float) -> None:
    """CentraLab reports cost of quality for this week and an approver accepts it."""
    with world.db.write() as s:
        rep = kpis.report(
            s, world.actor(LAB_PM), today=TODAY, study="ONC-301", kpi="coq", value=value
        )
        assert rep.approval_id is not None
        approvals.decide(s, world.actor(APPROVER), rep.approval_id, approve=True)


def _stored(world: World, ms_id: int) -> Milestone:
    with world.db.read() as s:
        return s.get_one(Milestone, ms_id)


def _latest_kpi(world: World) -> KpiUpdate:
    with world.db.read() as s:
        row = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id.desc())).first()
        assert row is not None
        return row


def _approval_of(world: World, subject_id: int) -> Approval:
    with world.db.read() as s:
        a = s.scalars(select(Approval).where(Approval.subject_id == subject_id)).one()
        return a


def test_a_sponsor_member_completing_a_vendor_milestone_waits(
    slash: SlashClient, world: World
) -> None:
    ms_id = _milestone(world, LAB_PM)
    a = slash.send(f"milestone update {ms_id} done", SPONSOR, C_SPONSOR)
    assert WAITS in a.text, a.text
    ms = _stored(world, ms_id)
    assert ms.status == MilestoneStatus.DONE and ms.actual_date == TODAY
    approval = _approval_of(world, ms_id)
    assert approval.state == ApprovalState.PENDING and approval.requested_by == "T1:USPONSOR"
    assert approval.org_id == world.lab_id


def test_a_sponsor_member_reporting_for_a_vendor_waits_and_the_joint_channel_keeps_the_approved_value(  # noqa: E501
    slash: SlashClient, world: World
) -> None:
    _approved_lab_value(world, 3)
    a = slash.send("kpi report ONC-301 cost_of_quality 5 org:CentraLab", SPONSOR, C_LAB)
    assert WAITS in a.text, a.text
    row = _latest_kpi(world)
    assert (row.value, row.org_id, row.approval_state) == (5, world.lab_id, ApprovalState.PENDING)
    # The joint channel with CentraLab still shows the value the sponsor approved.
    shown = slash.send("kpi show ONC-301 cost_of_quality", APPROVER, C_JOINT_LAB).text
    assert "*3*" in shown and "*5*" not in shown, shown
    trend = slash.send("kpi trend ONC-301 cost_of_quality", LAB_PM, C_JOINT_LAB).text
    assert "CentraLab*: 3 kUSD" in trend and "5 kUSD" not in trend, trend


def test_every_digit_of_a_value_is_shown_to_the_approver_and_in_the_digest(
    slash: SlashClient, world: World, fake_slack: FakeSlack
) -> None:
    a = slash.send("kpi report ONC-301 cost_of_quality 123,456.7", LAB_PM, C_LAB)
    assert WAITS in a.text and "123456.7" in a.text, a.text
    row = _latest_kpi(world)
    loc = posted_request(slash.bot, world, _approval_of(world, row.id).id)
    request = json.dumps(message(fake_slack, loc["channel"], loc["ts"]), ensure_ascii=False)
    assert "*123456.7*" in request, request  # not rounded to 123457
    digest = slash.send("digest preview", LAB_PM, C_LAB).text
    assert "123,456.7 kUSD (pending approval)" in digest, digest


def test_a_sponsor_members_own_sponsor_value_waits_too(slash: SlashClient, world: World) -> None:
    a = slash.send("kpi report ONC-301 screen_failure_rate 18.5", SPONSOR, C_SPONSOR)
    assert WAITS in a.text, a.text
    assert _latest_kpi(world).approval_state == ApprovalState.PENDING


def test_an_approver_is_trusted_only_with_the_sponsors_own_values(
    slash: SlashClient, world: World
) -> None:
    a = slash.send("kpi report ONC-301 screen_failure_rate 18.5", APPROVER, C_SPONSOR)
    assert "awaits" not in a.text, a.text
    assert _latest_kpi(world).approval_state == ApprovalState.APPROVED
    own = _milestone(world, APPROVER)
    a = slash.send(f"milestone update {own} done", APPROVER, C_SPONSOR)
    assert "awaits" not in a.text and _stored(world, own).status == MilestoneStatus.APPROVED
    # On a vendor's behalf even an approver's entry waits for an approver.
    a = slash.send("kpi report ONC-301 query_aging 9 org:CentraLab", APPROVER, C_SPONSOR)
    assert WAITS in a.text and _latest_kpi(world).approval_state == ApprovalState.PENDING
    lab = _milestone(world, LAB_PM)
    a = slash.send(f"milestone update {lab} done", APPROVER, C_SPONSOR)
    assert WAITS in a.text and _stored(world, lab).status == MilestoneStatus.DONE


# --- four eyes -------------------------------------------------------------------------


def _four_eyes(db: Database, code: str = "ONC-301") -> bool:
    with db.read() as s:
        return s.scalars(select(Study.four_eyes).where(Study.code == code)).one()


@pytest.mark.usefixtures("world")  # ONC-301
def test_four_eyes_is_set_per_study_from_the_cli_and_audited(
    cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _four_eyes(cli_env) is False
    assert main(["study", "add", "ONC-302", "--title", "T", "--sponsor", "Helix Pharma",
                 "--four-eyes"]) == 0  # fmt: skip
    assert _four_eyes(cli_env, "ONC-302") is True
    assert main(["study", "update", "ONC-301", "--four-eyes"]) == 0
    assert "four eyes" in capsys.readouterr().out
    assert _four_eyes(cli_env) is True
    assert main(["study", "update", "onc-301", "--no-four-eyes"]) == 0
    assert _four_eyes(cli_env) is False
    changes = [(e.before, e.after) for e in audit_actions(cli_env, "study.update")]
    assert changes == [({"four_eyes": False}, {"four_eyes": True}),
                       ({"four_eyes": True}, {"four_eyes": False})]  # fmt: skip
    before = snapshot(cli_env)
    assert main(["study", "update", "NOPE-1", "--four-eyes"]) == 2
    assert main(["study", "update", "ONC-301"]) == 2  # nothing to change
    err = capsys.readouterr().err
    assert "no study `NOPE-1`" in err and "Nothing to change" in err
    assert_unchanged(cli_env, before)
    assert_chain_ok(cli_env)


def test_under_four_eyes_an_approvers_own_value_waits_for_a_second_approver(
    slash: SlashClient, world: World, fake_slack: FakeSlack, cli_env: Database
) -> None:
    assert main(["study", "update", "ONC-301", "--four-eyes"]) == 0
    a = slash.send("kpi report ONC-301 screen_failure_rate 18.5", APPROVER, C_SPONSOR)
    assert WAITS in a.text, a.text
    row = _latest_kpi(world)
    assert row.approval_state == ApprovalState.PENDING
    aid = _approval_of(world, row.id).id
    loc = posted_request(slash.bot, world, aid)
    msg = message(fake_slack, loc["channel"], loc["ts"])

    # The submitter cannot decide: neither Approve nor Reject, nothing written.
    before = snapshot(world.db)
    for action in ("approval_approve", "approval_reject"):
        status, _ = send(slash.bot, block_action(action, aid, user=APPROVER, msg=msg))
        assert status == 200
    # The final state: both refusals told (after each click's ack phase, which would have
    # written a decision or opened the reject form).
    wait_until(lambda: len(ephemerals(fake_slack, APPROVER)) == 2)
    for text in ephemerals(fake_slack, APPROVER):
        assert "a second approver must decide" in text, text
    assert fake_slack.calls_to("views.open") == []  # no reject form for the submitter
    _assert_only_refusals_recorded(world.db, before)

    # Home lists it as waiting for the second approver, not for the submitter.
    for user in (APPROVER, APPROVER_2):
        send_event(slash.bot, {"type": "app_home_opened", "user": user, "tab": "home"})
    homes = wait_until(lambda: _homes(fake_slack) if len(_homes(fake_slack)) == 2 else None)
    assert "Approvals waiting for you" not in homes[APPROVER]
    assert "Approvals waiting for you" in homes[APPROVER_2] and f"(#{aid})" in homes[APPROVER_2]

    # A second approver can.
    send(slash.bot, block_action("approval_approve", aid, user=APPROVER_2, msg=msg))
    wait_until(lambda: _latest_kpi(world).approval_state == ApprovalState.APPROVED)
    assert _approval_of(world, row.id).decided_by == f"T1:{APPROVER_2}"


def _assert_only_refusals_recorded(db: Database, before: dict[str, list[tuple[Any, ...]]]) -> None:
    """Nothing was decided or written, except that a refused attempt may be audited."""
    after = snapshot(db)
    audit = {AuditEvent.__tablename__, AuditHead.__tablename__}
    assert {t: v for t, v in after.items() if t not in audit} == {
        t: v for t, v in before.items() if t not in audit
    }
    seen = {row[0] for row in before[AuditEvent.__tablename__]}
    with db.read() as s:
        new = s.scalars(select(AuditEvent.action).where(AuditEvent.id.not_in(seen))).all()
    assert set(new) <= {"approval.refused"}, new


def _homes(fake_slack: FakeSlack) -> dict[str, str]:
    """The Home view last published for each user, as text."""
    return {
        str(c.params["user_id"]): json.dumps(c.params["view"], ensure_ascii=False)
        for c in fake_slack.calls_to("views.publish")
    }


def test_under_four_eyes_an_approvers_own_completion_waits(
    slash: SlashClient, world: World, cli_env: Database
) -> None:
    assert main(["study", "update", "ONC-301", "--four-eyes"]) == 0
    own = _milestone(world, APPROVER)
    a = slash.send(f"milestone update {own} done", APPROVER, C_SPONSOR)
    assert WAITS in a.text, a.text
    assert _stored(world, own).status == MilestoneStatus.DONE
    # A vendor's submission is decided by one approver as before.
    with world.db.write() as s:
        rep = kpis.report(
            s, world.actor(APEX_PM), today=TODAY, study="ONC-301", kpi="enrollment", value=4
        )
        assert rep.approval_id is not None
        assert approvals.decide(s, world.actor(APPROVER), rep.approval_id, approve=True).changed
