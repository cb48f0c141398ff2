"""Real processes: replicas racing for the same periods, and SIGKILL in the middle of a fan-out."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crobot.storage.db import Database
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.conftest import World
from tests.digest_helpers import link_id
from tests.fake_slack import FakeSlack

ROOT = Path(__file__).resolve().parent.parent


def _worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.digest_worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_two_processes_racing_the_same_periods_post_each_exactly_once(
    world: World, fake_slack: FakeSlack
) -> None:
    lid = link_id(world.db, "CAPEX")
    periods = [f"2026-11-{d:02d}T09:00" for d in range(1, 21)]
    start_at = f"{time.time() + 2.0:.3f}"  # both start together, after their imports
    procs = [
        _worker("race", world.db.url, fake_slack.base_url, str(lid), start_at, *periods)
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    # Every period: one process sent, the other saw the claim.
    for states in zip(*results, strict=True):
        assert sorted(states) == ["duplicate", "sent"]
    keys = [m["metadata"]["event_payload"]["run_key"] for m in fake_slack.posted("CAPEX")]
    assert len(keys) == len(periods) == len(set(keys))
    assert len(fake_slack.calls_to("chat.postMessage")) == len(periods)


def _add_channels(db: Database, world: World, n: int) -> None:
    with db.write() as s:
        for i in range(n):
            s.add(
                ChannelLink(
                    team_id="T1",
                    channel_id=f"CFAN{i:04d}",
                    study_id=world.study_id,
                    audience="vendor" if i % 3 else "sponsor",
                    audience_org_id=(world.apex_id if i % 2 else world.lab_id) if i % 3 else None,
                    timezone="Europe/Berlin",
                    charts_enabled=False,
                )
            )


def crash_and_restart(world: World, fake: FakeSlack, seed: int, channels: int) -> dict[str, int]:
    rng = random.Random(seed)
    period = f"fanout-{seed}"
    kill_after = rng.randint(1, channels - 1)
    first = _worker("fanout", world.db.url, fake.base_url, period)
    deadline = time.monotonic() + 120
    while len(fake.calls_to("chat.postMessage")) < kill_after:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    # Land anywhere: before, during or after the next post.
    time.sleep(rng.random() * 0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    posted_before_kill = len(fake.posted())
    with world.db.read() as s:
        pending_at_kill = s.scalar(
            select(func.count()).where(DigestRun.state == DigestRunState.PENDING)
        )
    second = _worker("fanout", world.db.url, fake.base_url, period)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    per_channel = Counter(str(m["channel"]) for m in fake.posted())
    with world.db.read() as s:
        links = list(s.scalars(select(ChannelLink.channel_id)))
        sent = s.scalar(
            select(func.count()).where(
                DigestRun.state == DigestRunState.SENT, DigestRun.period_key == period
            )
        )
    return {
        "channels": len(links),
        "killed_after_posts": posted_before_kill,
        "pending_at_kill": int(pending_at_kill or 0),
        "lost": sum(1 for c in links if per_channel[c] == 0),
        "duplicated": sum(1 for c in links if per_channel[c] > 1),
        "runs_sent": int(sent or 0),
        "resumed": summary["resumed"],
        "resumed_found_in_history": summary["found"],
    }


def _fanout(world: World, fake: FakeSlack, seeds: list[int]) -> None:
    _add_channels(world.db, world, 196)  # + the world's 4 = 200 channels
    for seed in seeds:
        fake.reset()
        fake.state.pace_seconds = 0.002  # a little service time, so kills land mid-call
        figures = crash_and_restart(world, fake, seed, 200)
        print(f"crash mid fan-out seed={seed} backend={world.db.url.split(':')[0]}: {figures}")
        assert figures["channels"] == 200
        assert figures["lost"] == 0 and figures["duplicated"] == 0, figures
        assert figures["runs_sent"] == 200


def test_sigkill_mid_fanout_then_restart_delivers_every_channel_exactly_once(
    world: World, fake_slack: FakeSlack
) -> None:
    _fanout(world, fake_slack, [11, 29])


@pytest.mark.heavy
def test_sigkill_mid_fanout_many_seeds(world: World, fake_slack: FakeSlack) -> None:
    _fanout(world, fake_slack, [1, 2, 3, 4, 5, 6, 7, 8])
