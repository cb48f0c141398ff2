"""A schedule changed anywhere reaches every scheduler within seconds, and a fire time
that passed before a scheduler learnt of the change is still sent, once.

Reproduces the finding: with a request-only replica (CROBOT_SCHEDULER=false) taking
`/cro digest schedule "daily 10:34"` at 10:32, the scheduling replica learnt of it at its
10-minute sync, scheduled it for the next day and never sent today's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from crobot.bot.scheduling import DigestScheduler
from crobot.digests import schedule as schedule_service
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.conftest import APPROVER, C_SPONSOR, World
from tests.digest_helpers import Clock, bot_test_settings, working_country
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post_signed
from tests.test_replicas import DAYS, Replica, _start, _stop


def _link(world: World, channel: str) -> ChannelLink:
    with world.db.read() as s:
        return s.scalars(select(ChannelLink).where(ChannelLink.channel_id == channel)).one()


def _digest_posts(fake: FakeSlack, channel: str) -> list[float]:
    """When (fake Slack's clock) each digest reached the channel."""
    return [
        c.at
        for c in fake.calls_to("chat.postMessage")
        if c.params.get("channel") == channel
        and "link:" in str((c.params.get("metadata") or {}).get("event_payload", {}))
    ]


@pytest.fixture
def replicas(world: World, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[list[Replica]]:
    if world.db.is_sqlite and not os.environ.get("CROBOT_TEST_REPLICAS_SQLITE"):
        pytest.skip("run against PostgreSQL, where replicas are deployed")
    scheduling = _start(world, fake_slack, tmp_path, "scheduling")
    requests_only = _start(world, fake_slack, tmp_path, "requests", scheduler=False)
    started = [scheduling, requests_only]
    try:
        for r in started:
            r.wait_healthy()
        yield started
    finally:
        logs = _stop(started)
        assert all("Traceback" not in log for log in logs), "\n".join(logs)


def test_a_change_through_a_request_only_replica_is_posted_on_time(
    world: World, fake_slack: FakeSlack, replicas: list[Replica]
) -> None:
    scheduling, requests_only = replicas
    now = datetime.now(UTC)
    fire = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (fire - now).total_seconds() < 60:  # the change is made at least 60 s before
        fire += timedelta(minutes=1)
    local = fire.astimezone(ZoneInfo(_link(world, C_SPONSOR).timezone))
    spec = f"{DAYS[local.weekday()].capitalize()} {local:%H:%M}"
    with world.db.write() as s:  # CI may run on a weekend or a holiday: a working country
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == C_SPONSOR)).one()
        link.country = working_country(local.date())
    status, body = post_signed(
        f"http://127.0.0.1:{requests_only.port}/slack/events",
        command_body(f'digest schedule "{spec}"', user_id=APPROVER, channel_id=C_SPONSOR),
    )
    assert status == 200, (body, requests_only.log.read_text())
    stored = f"{local:%H:%M}"
    deadline = time.monotonic() + 10
    while _link(world, C_SPONSOR).digest_time != stored:  # the request replica wrote it
        assert time.monotonic() < deadline, (body, requests_only.log.read_text())
        time.sleep(0.1)
    # The final state is the run recorded as sent (a post seen in the fake Slack may not
    # be committed yet): wait for that, then look at what was posted.
    deadline = time.monotonic() + (fire - datetime.now(UTC)).total_seconds() + 30
    while (run := _sent_run(world)) is None:
        assert time.monotonic() < deadline, scheduling.log.read_text()
        time.sleep(0.2)
    assert run.slack_ts is not None
    posted = _digest_posts(fake_slack, C_SPONSOR)
    assert len(posted) == 1
    late = posted[0] - fire.timestamp()
    assert -1 <= late <= 15, f"posted {late:.1f} s after the new fire time"


def _sent_run(world: World) -> DigestRun | None:
    with world.db.read() as s:
        return s.scalars(
            select(DigestRun).where(
                DigestRun.target.like("link:%"), DigestRun.state == DigestRunState.SENT
            )
        ).one_or_none()


def _scheduler(world: World, clock: Clock, fake: FakeSlack) -> DigestScheduler:
    runtime = Runtime(world.db, now=clock)
    client = WebClient(token="xoxb-test", base_url=fake.base_url)
    sched = DigestScheduler(bot_test_settings(world.db), runtime, client=client)
    sched.scheduler.start(paused=True)  # real jobs, nothing runs by itself
    sched.sync_jobs()
    return sched


def test_a_fire_time_passed_before_the_poll_is_caught_up_once(
    world: World, fake_slack: FakeSlack
) -> None:
    """The change lands 30 s before its fire time; this scheduler polls 30 s after it."""
    link = _link(world, C_SPONSOR)
    changed = datetime(2026, 11, 25, 15, 0, 30, tzinfo=UTC)  # 10:00:30 in New York
    clock = Clock(changed - timedelta(hours=1))
    with world.db.write() as s:
        row = s.get_one(ChannelLink, link.id)
        row.created_at = changed - timedelta(days=7)
    sched = _scheduler(world, clock, fake_slack)
    try:
        assert not sched.poll_changes()  # nothing changed since the sync
        clock.set(changed)
        with world.db.write() as s:
            row = s.get_one(ChannelLink, link.id)
            schedule_service.set_schedule(
                s, world.actor(APPROVER), row, now=changed, days="Wed", time="10:01"
            )
        clock.set(changed + timedelta(seconds=60))  # 10:01 has passed unseen
        assert sched.poll_changes()
        assert len(_digest_posts(fake_slack, C_SPONSOR)) == 1
        assert not sched.poll_changes()  # seen: nothing more to do
        # A later change to a time that had already passed when it was made sends nothing.
        with world.db.write() as s:
            row = s.get_one(ChannelLink, link.id)
            schedule_service.set_schedule(
                s,
                world.actor(APPROVER),
                row,
                now=changed + timedelta(seconds=90),
                days="Wed",
                time="09:30",
            )
        assert sched.poll_changes()
        with world.db.read() as s:
            runs = s.scalars(select(DigestRun).where(DigestRun.target.like("link:%"))).all()
        assert [r.period_key for r in runs] == ["2026-11-25T10:01"]
    finally:
        sched.shutdown(wait=False)
    assert len(_digest_posts(fake_slack, C_SPONSOR)) == 1
