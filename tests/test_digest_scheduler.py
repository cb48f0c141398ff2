"""`start_scheduler`: jobs from the schedule columns, deliberate defaults, recovery at start."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import select, update

from crobot.bot.scheduling import start_scheduler
from crobot.services import actions
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.conftest import C_APEX, C_JOINT, C_LAB, TODAY, World
from tests.digest_helpers import Clock, bot_test_settings, link_id
from tests.fake_slack import FakeSlack


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_start_builds_jobs_and_recovers_pending_missed_and_nudges(
    world: World, fake_slack: FakeSlack
) -> None:
    # Monday 30 Nov 2026, 09:20 UTC: Dublin's 09:00 (digest and nudge) was missed 20 min
    # ago and Kolkata's 09:00 IST digest 5 h 50 min ago: both within the 6 h digest grace;
    # a nudge is caught up only within an hour of 09:00 (Dublin's, not Kolkata's).
    clock = Clock(datetime(2026, 11, 30, 9, 20, tzinfo=UTC))
    runtime = Runtime(world.db, now=clock)
    with world.db.write() as s:
        s.execute(update(ChannelLink).values(created_at=datetime(2026, 1, 1, tzinfo=UTC)))
        for owner in ("UAPEX", "ULAB"):
            actions.add(
                s,
                world.actor(owner),
                today=TODAY,
                allow_past=True,
                study="ONC-301",
                title="Overdue thing",
                owner_user_id=owner,
                due=TODAY - timedelta(days=3),
            )
        # A crash leftover from another (dead) process, lease long expired.
        s.add(
            DigestRun(
                target=f"link:{link_id(world.db, C_APEX)}",
                period_key="2026-11-23T09:00",
                channel_link_id=link_id(world.db, C_APEX),
                claimed_by="old-host:1:dead",
                claimed_at=datetime(2026, 11, 23, 3, 30, tzinfo=UTC),
            )
        )
    settings = bot_test_settings(world.db, fake_slack.base_url)
    client = WebClient(token="xoxb-test-token", base_url=fake_slack.base_url)
    sched = start_scheduler(settings, runtime, client)
    try:
        ids = sched.job_ids()
        assert {f"digest:{i}" for i in range(1, 5)} <= set(ids)
        assert "nudge:Asia/Kolkata" in ids and "sync" in ids and "anchor" in ids
        job = sched.job(f"digest:{link_id(world.db, C_LAB)}")
        assert job.coalesce is True and job.misfire_grace_time == 6 * 3600
        # Recovery has posted; then its job is joined (shutdown waits for running jobs),
        # so nothing more can arrive and the counts below are final.
        _wait(lambda: bool(fake_slack.posted("DLAB")) and _runs_final(world))
    finally:
        sched.shutdown()
    with world.db.read() as s:
        runs = {(r.target, r.period_key): r.state for r in s.scalars(select(DigestRun))}
    lab, apex = link_id(world.db, C_LAB), link_id(world.db, C_APEX)
    # Kolkata: last week's pending run resumed, and today's 09:00 IST (03:30 UTC, 5 h 50 min
    # ago) caught up; Dublin's and Berlin's missed 09:00 caught up; the nudge; each once.
    assert runs[(f"link:{apex}", "2026-11-23T09:00")] == DigestRunState.SENT
    assert runs[(f"link:{apex}", "2026-11-30T09:00")] == DigestRunState.SENT
    assert runs[(f"link:{lab}", "2026-11-30T09:00")] == DigestRunState.SENT
    assert runs[(f"link:{link_id(world.db, C_JOINT)}", "2026-11-30T09:00")] == DigestRunState.SENT
    assert set(runs.values()) == {DigestRunState.SENT}
    assert len(fake_slack.posted(C_LAB)) == 1  # caught up once
    apex_keys = sorted(m["metadata"]["event_payload"]["run_key"] for m in fake_slack.posted(C_APEX))
    assert [k.split("|")[1] for k in apex_keys] == ["2026-11-23T09:00", "2026-11-30T09:00"]
    assert len(fake_slack.posted("DLAB")) == 1  # Dublin's nudge once
    assert fake_slack.posted("DAPEX") == []  # Kolkata's is hours late: not sent
    # Every run sent is one message in Slack's history, and no message lacks its run.
    assert len(fake_slack.posted()) == len(runs)


def _runs_final(world: World) -> bool:
    with world.db.read() as s:
        states = list(s.scalars(select(DigestRun.state)))
    return bool(states) and DigestRunState.PENDING not in states


def test_disabled_scheduler_setting_does_not_start(world: World) -> None:
    settings = bot_test_settings(world.db).model_copy(update={"scheduler_enabled": False})
    sched = start_scheduler(settings, Runtime(world.db), WebClient(token="xoxb-x"))
    assert not sched.scheduler.running
