"""Two `crobot serve` replicas, each with its own scheduler, against one database: a digest
due at the same minute in every channel is posted exactly once per channel.

The replicas share nothing but the database (no shared APScheduler job store); the
DigestRun claim decides which process posts. Both the cron path (fire at the next minute)
and the start-up catch-up path (a digest missed while both were down) are raced.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.bot_server import free_port
from tests.conftest import TEST_AUDIT_KEY, World
from tests.digest_helpers import working_country
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
            link.country = working_country(local.date())  # CI may run on a day off
            # Linked well before: a channel linked after a fire time has nothing to catch up.
            link.created_at = fire_utc - timedelta(days=1)
        return len(links)


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    log: Path  # its stderr: the runner logs each digest's outcome there
    port: int

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(self.log.read_text())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"replica at {self.log} did not become healthy")

    def outcomes(self) -> dict[int, str]:
        """link id → what this replica did with its digest ("sent", "duplicate", …)."""
        return {int(link): state for link, state in OUTCOME.findall(self.log.read_text())}

    def caught_up(self) -> bool:
        """Its start-up catch-up has finished (whatever it found to do)."""
        return "catch-up done:" in self.log.read_text()


OUTCOME = re.compile(r"digest for link (\d+) \([^)]*\): (\w+)")


def _start(
    world: World,
    fake: FakeSlack,
    tmp_path: Path,
    name: str,
    *,
    scheduler: bool = True,
    token: str = "xoxb-test-token",
    extra_env: dict[str, str] | None = None,
) -> Replica:
    """A `crobot serve` process; `token` tells its Slack calls apart in the fake's log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROBOT_", "SLACK_"))}
    env.update(
        CROBOT_DATABASE_URL=world.db.url,
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        CROBOT_SLACK_API_URL=fake.base_url,
        CROBOT_SCHEDULER="true" if scheduler else "false",
        CROBOT_LOG_LEVEL="INFO",
        **(extra_env or {}),
        CROBOT_AUDIT_KEY=TEST_AUDIT_KEY,  # every replica signs with the same key
    )
    workdir = tmp_path / name
    workdir.mkdir()
    port = free_port()
    log = workdir / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crobot.bot", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Replica(proc, log, port)


def _stop(replicas: list[Replica]) -> list[str]:
    for r in replicas:
        r.proc.send_signal(signal.SIGTERM)
    for r in replicas:
        r.proc.wait(timeout=30)
    return [r.log.read_text() for r in replicas]


def _posts_per_channel(fake: FakeSlack) -> Counter[str]:
    return Counter(
        str(c.params.get("channel"))
        for c in fake.calls_to("chat.postMessage")
        if (c.params.get("metadata") or {}).get("event_payload", {}).get("run_key")
    )


def _race(
    world: World,
    fake: FakeSlack,
    tmp_path: Path,
    fire: datetime,
    wait_until: datetime,
    finished: Callable[[Replica, set[int]], bool],
) -> Counter[str]:
    channels = _schedule_all(world, fire)
    with world.db.read() as s:
        link_ids = set(s.scalars(select(ChannelLink.id)))
    # Started together, so that their start-up catch-ups really race.
    replicas = [_start(world, fake, tmp_path, "a"), _start(world, fake, tmp_path, "b")]
    try:
        for r in replicas:
            r.wait_healthy()
        # The final state: every replica has finished its turn at the digests (`finished`),
        # and every run is final in the database. Only then is "posted once" a fact rather
        # than "not posted twice yet".
        deadline = time.monotonic() + (wait_until - datetime.now(UTC)).total_seconds() + 30
        while not (all(finished(r, link_ids) for r in replicas) and _all_final(world, channels)):
            assert time.monotonic() < deadline, [r.outcomes() for r in replicas]
            time.sleep(0.1)
    finally:
        logs = _stop(replicas)
    assert all("Traceback" not in log for log in logs), "\n".join(logs)
    with world.db.read() as s:
        runs = s.scalars(select(DigestRun).where(DigestRun.target.like("link:%"))).all()
    assert len(runs) == channels and {r.state for r in runs} == {DigestRunState.SENT}
    said = [r.outcomes() for r in replicas]
    for link in link_ids:  # exactly one replica posted each digest; no other one did
        assert [o.get(link) for o in said].count("sent") == 1, said
    posted = _posts_per_channel(fake)
    # The fake's channel history (what a reader sees) agrees with the calls it answered.
    history = Counter(str(m["channel"]) for m in fake.posted() if m.get("metadata"))
    assert history == posted
    return posted


def _all_final(world: World, channels: int) -> bool:
    with world.db.read() as s:
        states = list(s.scalars(select(DigestRun.state).where(DigestRun.target.like("link:%"))))
    return len(states) == channels and all(st in FINAL for st in states)


FINAL = (DigestRunState.SENT, DigestRunState.FAILED)


def _caught_up(replica: Replica, links: set[int]) -> bool:
    return replica.caught_up()


def _fired(replica: Replica, links: set[int]) -> bool:
    """It ran every channel's job for this minute: "sent", or "duplicate" if beaten."""
    return set(replica.outcomes()) == links


def test_replicas_post_a_missed_digest_once(
    world: World, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # Due 10 minutes ago while "both were down": each replica's start-up catch-up races.
    fire = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    posts = _race(world, fake_slack, tmp_path, fire, datetime.now(UTC), _caught_up)
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
    posts = _race(world, fake_slack, tmp_path, fire, fire, _fired)
    assert posts == Counter({"CSPONSOR": 1, "CAPEX": 1, "CLAB": 1, "CJOINT": 1})
