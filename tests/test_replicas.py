"""Two `crobot serve` replicas, each with its own scheduler, against one database: a digest
due at the same minute in every channel is posted exactly once per channel.

The replicas share nothing but the database (no shared APScheduler job store); the
DigestRun claim decides which process posts. Both the cron path (fire at the next minute)
and the start-up catch-up path (a digest missed while both were down) are raced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.bot_server import free_port
from tests.conftest import World
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _schedule_all(world: World, fire_utc: datetime) -> int:
    """Every channel's digest at fire_utc's minute, written in the channel's own zone."""
    with world.db.write() as s:
        links = s.scalars(select(ChannelLink)).all()
        for link in links:
            local = fire_utc.astimezone(ZoneInfo(link.timezone))
            link.digest_enabled, link.charts_enabled = True, False
            link.digest_days = DAYS[local.weekday()]
            link.digest_time = local.strftime("%H:%M")
            # Linked well before: a channel linked after a fire time has nothing to catch up.
            link.created_at = fire_utc - timedelta(days=1)
        return len(links)


def _start(world: World, fake: FakeSlack, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROBOT_", "SLACK_"))}
    env.update(
        CROBOT_DATABASE_URL=world.db.url,
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        CROBOT_SLACK_API_URL=fake.base_url,
        CROBOT_SCHEDULER="true",
        CROBOT_LOG_LEVEL="WARNING",
    )
    workdir = tmp_path / name
    workdir.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crobot.bot", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((proc.stderr.read() if proc.stderr else b"").decode())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"replica {name} did not become healthy")


def _stop(procs: list[subprocess.Popen[bytes]]) -> list[bytes]:
    errs = []
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        errs.append(err)
    return errs


def _posts_per_channel(fake: FakeSlack) -> Counter[str]:
    return Counter(
        str(c.params.get("channel"))
        for c in fake.calls_to("chat.postMessage")
        if (c.params.get("metadata") or {}).get("event_payload", {}).get("run_key")
    )


def _race(
    world: World, fake: FakeSlack, tmp_path: Path, fire: datetime, wait_until: datetime
) -> Counter[str]:
    channels = _schedule_all(world, fire)
    procs = [_start(world, fake, tmp_path, "a"), _start(world, fake, tmp_path, "b")]
    try:
        deadline = time.monotonic() + (wait_until - datetime.now(UTC)).total_seconds() + 30
        while time.monotonic() < deadline and len(_posts_per_channel(fake)) < channels:
            time.sleep(0.2)
        time.sleep(2)  # a second post, if either replica were to make one, lands by now
    finally:
        errs = _stop(procs)
    assert all(b"Traceback" not in e for e in errs), b"\n".join(errs).decode()
    with world.db.read() as s:
        runs = s.scalars(select(DigestRun).where(DigestRun.target.like("link:%"))).all()
    assert len(runs) == channels and {r.state for r in runs} == {DigestRunState.SENT}
    return _posts_per_channel(fake)


def test_replicas_post_a_missed_digest_once(
    world: World, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # Due 10 minutes ago while "both were down": each replica's start-up catch-up races.
    fire = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    posts = _race(world, fake_slack, tmp_path, fire, datetime.now(UTC))
    assert posts == Counter({"CSPONSOR": 1, "CAPEX": 1, "CLAB": 1, "CJOINT": 1})


def test_replicas_post_a_digest_due_this_minute_once(
    world: World, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    if world.db.is_sqlite and not os.environ.get("CROBOT_TEST_REPLICAS_SQLITE"):
        pytest.skip("the cron race is run against PostgreSQL (CROBOT_TEST_DATABASE_URL)")
    now = datetime.now(UTC)
    fire = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (fire - now).total_seconds() < 15:  # leave the replicas time to start first
        fire += timedelta(minutes=1)
    posts = _race(world, fake_slack, tmp_path, fire, fire)
    assert posts == Counter({"CSPONSOR": 1, "CAPEX": 1, "CLAB": 1, "CJOINT": 1})
