"""The forecast acts: an enrolment milestone whose on-time odds fall below 50% is marked
at risk with the reason, audited, and announced once in the sponsor channel and the
owning vendor's channel; above 60% it clears (announced once); a status the sponsor
pinned by hand is left alone."""

from __future__ import annotations

import threading
from datetime import timedelta

from slack_sdk import WebClient
from sqlalchemy import select

from crobot.digests.compose import compose
from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.digests.render import render
from crobot.services import approvals, enrolment, milestones, recruitment, sites
from crobot.services.actor import SYSTEM
from crobot.services.runtime import Runtime
from crobot.storage.models import (
    AuditEvent,
    ChannelLink,
    DigestRun,
    Milestone,
    MilestoneStatus,
)
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_APEX,
    C_JOINT,
    C_LAB,
    C_SPONSOR,
    SPONSOR,
    TODAY,
    World,
)
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls
from tests.slash_helpers import NOW, SlashClient
from tests.test_sites import history, set_target


def _milestone(world: World, count: int, days: int, org: str | None = "Apex CRO") -> int:
    with world.db.write() as s:
        ms = milestones.add(
            s,
            SYSTEM,
            today=TODAY,
            study="ONC-301",
            name="LPI",
            planned=TODAY + timedelta(days=days),
            org=org,
            count=count,
        )
        return ms.id


def _state(world: World, ms_id: int) -> Milestone:
    with world.db.read() as s:
        return s.get_one(Milestone, ms_id)


def _recompute(world: World) -> list[enrolment.Flag]:
    with world.db.write() as s:
        return enrolment.recompute(s, world.study_id, TODAY)


def _deliver(world: World, fake: FakeSlack) -> None:
    client = delivery_client(WebClient(token="xoxb-test", base_url=fake.base_url))
    Delivery(Runtime(world.db, now=lambda: NOW), client, pacer=ChannelPacer(0.0)).resume_pending()


def _news(fake: FakeSlack, channel: str) -> list[str]:
    """The forecast's announcements in a channel (not the approval posts of the history)."""
    return [m["text"] for m in fake.posted(channel) if "enrolment milestone" in m["text"]]


def _forecast_rows(world: World) -> list[DigestRun]:
    with world.db.read() as s:
        return list(
            s.scalars(
                select(DigestRun).where(DigestRun.target.like("forecast:%")).order_by(DigestRun.id)
            )
        )


def test_at_risk_is_flagged_announced_once_and_recovers(
    world: World, fake_slack: FakeSlack
) -> None:
    history(world, 6, 10)  # about 90 patients, ~9 a week
    ms_id = _milestone(world, 400, 60)  # 310 more in 60 days: out of reach
    (flag,) = _recompute(world)
    assert flag.action == enrolment.AT_RISK
    ms = _state(world, ms_id)
    assert ms.status == MilestoneStatus.AT_RISK and ms.risk_reason is not None
    assert ms.risk_reason.startswith("P50 for 400 patients is 20")
    assert "after the planned LPI" in ms.risk_reason
    with world.db.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == enrolment.AT_RISK)))
    assert len(events) == 1 and events[0].after and events[0].after["status"] == "at_risk"
    # Told in the sponsor channel and Apex's own channel, not the lab's nor the joint one.
    assert {r.period_key.split(":")[1] for r in _forecast_rows(world)} == {C_SPONSOR, C_APEX}
    _deliver(world, fake_slack)
    for channel in (C_SPONSOR, C_APEX):
        (post,) = _news(fake_slack, channel)
        assert "*LPI* is now *at risk*" in post and "P50 for 400 patients" in post
    assert _news(fake_slack, C_LAB) == [] and _news(fake_slack, C_JOINT) == []
    assert validate_calls(fake_slack.calls_to("chat.postMessage")) >= 2
    # Recomputing again changes nothing and announces nothing more.
    assert _recompute(world) == []
    _deliver(world, fake_slack)
    assert len(_news(fake_slack, C_SPONSOR)) == 1 and len(_forecast_rows(world)) == 2

    # The target comes within reach (the milestone now asks for what is enrolled): clears.
    with world.db.write() as s:
        s.get_one(Milestone, ms_id).target_count = 50
    (flag,) = _recompute(world)
    assert flag.action == enrolment.RECOVERED
    ms = _state(world, ms_id)
    assert ms.status == MilestoneStatus.PLANNED and ms.risk_reason is None
    _deliver(world, fake_slack)
    assert "back on track" in _news(fake_slack, C_SPONSOR)[-1]
    assert len(_news(fake_slack, C_APEX)) == 2
    assert _recompute(world) == []


def test_hysteresis_between_50_and_60_percent(world: World) -> None:
    history(world, 6, 10)
    ms_id = _milestone(world, 400, 60)
    _recompute(world)
    assert _state(world, ms_id).status == MilestoneStatus.AT_RISK
    # Find a count whose odds sit between 50% and 60%: it stays at risk, nothing said.
    with world.db.read() as s:
        base = enrolment.model_sites(s, world.study_id, TODAY)[0]
    plan = TODAY + timedelta(days=60)
    between = None
    for count in range(100, 400, 2):
        target = recruitment.MilestoneTarget(ms_id, "LPI", count, plan)
        p = recruitment.forecast(base, target=count, as_of=TODAY, milestones=[target])
        if 0.5 <= p.milestones[0].p_on_time <= 0.6:
            between = count
            break
    assert between is not None
    with world.db.write() as s:
        s.get_one(Milestone, ms_id).target_count = between
    assert _recompute(world) == []
    assert _state(world, ms_id).status == MilestoneStatus.AT_RISK


def test_a_status_the_sponsor_pinned_is_not_overridden(world: World, slash: SlashClient) -> None:
    history(world, 6, 10)
    ms_id = _milestone(world, 400, 60)
    a = slash.send(f"milestone update {ms_id} status:planned", SPONSOR, C_SPONSOR)
    assert "(pinned)" in a.text, a.text
    assert _recompute(world) == []
    assert _state(world, ms_id).status == MilestoneStatus.PLANNED
    # A vendor cannot hand it back; the sponsor can, and the forecast acts again.
    a = slash.send(f"milestone update {ms_id} status:auto", APEX_PM, C_APEX)
    assert "Only the sponsor" in a.text
    a = slash.send(f"milestone update {ms_id} status:auto", SPONSOR, C_SPONSOR)
    assert "(pinned)" not in a.text
    (flag,) = _recompute(world)
    assert flag.action == enrolment.AT_RISK


def test_approving_a_site_report_recomputes(world: World) -> None:
    history(world, 6, 10)
    ms_id = _milestone(world, 400, 60)
    with world.db.write() as s:
        rep = sites.report(
            s, world.actor(APEX_PM), today=TODAY, study="ONC-301", site="S00", enrolled=2
        )
        assert _state(world, ms_id).status == MilestoneStatus.PLANNED  # pending: not counted
        assert rep.approval_id is not None
        approvals.decide(s, world.actor(APPROVER), rep.approval_id, approve=True, today=TODAY)
    assert _state(world, ms_id).status == MilestoneStatus.AT_RISK


def test_digest_has_one_forecast_line(world: World) -> None:
    history(world, 6, 10)
    set_target(world, 200)
    with world.db.read() as s:
        links = {link.channel_id: link for link in s.scalars(select(ChannelLink))}
        sponsor = render(compose(s, links[C_SPONSOR], NOW)).full_text
        apex = render(compose(s, links[C_APEX], NOW)).full_text
        lab = render(compose(s, links[C_LAB], NOW)).full_text
    assert "Enrolment forecast" in sponsor
    (line,) = [ln for ln in sponsor.splitlines() if "enrolled · target reached P50" in ln]
    assert line.startswith("• 90/200 enrolled") and "FALLBACK" not in line
    assert "from the sites this channel sees" in apex
    assert "Enrolment forecast" not in lab


def test_two_recomputations_at_once_flag_and_announce_once(world: World) -> None:
    history(world, 6, 10)
    _milestone(world, 400, 60)
    barrier = threading.Barrier(2)
    flags: list[list[enrolment.Flag]] = []

    def run() -> None:
        barrier.wait()
        flags.append(_recompute(world))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(len(f) for f in flags) == [0, 1]
    with world.db.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == enrolment.AT_RISK))
        assert len(list(events)) == 1
    assert len(_forecast_rows(world)) == 2  # the sponsor channel and Apex's, once each
