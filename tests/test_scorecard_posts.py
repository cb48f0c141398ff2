"""Quarter-end scorecard posts: on the first working morning after the quarter, in each
channel's zone, the sponsor channel gets every vendor's scorecard and each vendor channel
only its own — exactly once, with two replicas racing for them (real processes on one
database, the fake Slack); a joint channel gets none, and no outbox row can make a vendor
channel show another vendor's scorecard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slack_sdk import WebClient
from sqlalchemy import select, update

from crobot.bot.scheduling import DigestScheduler
from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.digests.targets import target_team
from crobot.services import scorecard_posts
from crobot.services.quarters import Quarter
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.conftest import C_APEX, C_JOINT, C_LAB, C_SPONSOR, World
from tests.digest_helpers import Clock, bot_test_settings, link_id
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls
from tests.test_scorecards import _record

ROOT = Path(__file__).resolve().parent.parent
Q4 = Quarter(2026, 4)
# 2026-Q4 ends on Thursday 31 Dec. Friday 1 Jan 2027 is New Year's Day in the US and
# Ireland, not in India: the first working mornings are Mon 4 Jan 09:00 in New York
# (14:00 UTC) and Dublin (09:00 UTC), Fri 1 Jan 09:00 in Kolkata (03:30 UTC).
DUE = {
    C_SPONSOR: datetime(2027, 1, 4, 14, 0, tzinfo=UTC),
    C_LAB: datetime(2027, 1, 4, 9, 0, tzinfo=UTC),
    C_APEX: datetime(2027, 1, 1, 3, 30, tzinfo=UTC),
}
ALL_DUE = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)


def _linked_long_ago(world: World) -> None:
    with world.db.write() as s:
        s.execute(update(ChannelLink).values(created_at=datetime(2026, 1, 1, tzinfo=UTC)))


def _due(world: World, now: datetime) -> set[tuple[str, str]]:
    """(channel, vendor) of every post due at `now`, for quarter 2026-Q4."""
    names = {world.apex_id: "Apex CRO", world.lab_id: "CentraLab"}
    with world.db.read() as s:
        channels = dict(s.execute(select(ChannelLink.id, ChannelLink.channel_id)).all())
        due = scorecard_posts.due_posts(s, now)
    assert {d.quarter for d in due} <= {Q4}
    return {(channels[d.link_id], names[d.org_id]) for d in due}


def test_due_on_each_channels_first_working_morning(world: World) -> None:
    _linked_long_ago(world)
    with world.db.read() as s:
        links = {link.channel_id: link for link in s.scalars(select(ChannelLink))}
        assert {c: scorecard_posts.due_at(links[c], Q4) for c in DUE} == DUE
    minute = timedelta(minutes=1)
    assert _due(world, DUE[C_APEX] - minute) == set()
    assert _due(world, DUE[C_APEX]) == {(C_APEX, "Apex CRO")}
    assert _due(world, DUE[C_LAB]) == {(C_APEX, "Apex CRO"), (C_LAB, "CentraLab")}
    # The sponsor's morning: every vendor's scorecard there; the joint channel never.
    assert _due(world, ALL_DUE) == {
        (C_APEX, "Apex CRO"),
        (C_LAB, "CentraLab"),
        (C_SPONSOR, "Apex CRO"),
        (C_SPONSOR, "CentraLab"),
    }
    # Missed while crobot was down: still sent within a week of the morning, not after.
    assert (C_SPONSOR, "CentraLab") in _due(world, DUE[C_SPONSOR] + timedelta(days=6))
    assert _due(world, DUE[C_SPONSOR] + scorecard_posts.GRACE + minute) == set()
    # A channel linked after its morning gets nothing for that quarter.
    with world.db.write() as s:
        s.execute(
            update(ChannelLink)
            .where(ChannelLink.channel_id == C_LAB)
            .values(created_at=DUE[C_LAB] + minute)
        )
    assert (C_LAB, "CentraLab") not in _due(world, ALL_DUE)


def _replica(
    world: World, fake: FakeSlack, start_at: float, now: datetime
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.digest_worker",
            "scorecards",
            world.db.url,
            fake.base_url,
            f"{start_at:.3f}",
            now.isoformat(),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _outcomes(procs: list[subprocess.Popen[str]]) -> list[list[tuple[int, str]]]:
    """Each replica's (run id, what it did) per post it tried."""
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        said = json.loads(stdout.strip().splitlines()[-1])
        out.append([(int(run_id), str(state)) for run_id, state in said])
    return out


def _scorecard_runs(world: World) -> list[DigestRun]:
    with world.db.read() as s:
        return list(s.scalars(select(DigestRun).where(DigestRun.target.like("scorecard:%"))))


def test_two_replicas_post_each_scorecard_exactly_once(world: World, fake_slack: FakeSlack) -> None:
    _record(world)
    _linked_long_ago(world)
    start_at = time.time() + 2.0  # both start together, after their imports
    said = _outcomes([_replica(world, fake_slack, start_at, ALL_DUE) for _ in range(2)])
    runs = _scorecard_runs(world)
    assert len(runs) == 4 and {r.state for r in runs} == {DigestRunState.SENT}
    with world.db.read() as s:  # posted by the workspace that linked each channel
        assert {target_team(s, r) for r in runs} == {"T1"}
    # Each run was sent by exactly one replica (the other saw the claim, or the claim
    # was already there when it looked).
    sent = Counter(run_id for outcomes in said for run_id, state in outcomes if state == "sent")
    assert sorted(sent) == sorted(r.id for r in runs) and set(sent.values()) == {1}
    posts = fake_slack.posted()
    assert Counter(str(m["channel"]) for m in posts) == Counter({C_SPONSOR: 2, C_APEX: 1, C_LAB: 1})
    keys = [m["metadata"]["event_payload"]["run_key"] for m in posts]
    assert len(keys) == len(set(keys)) == 4
    assert {k.split("|")[1] for k in keys} == {
        f"2026-Q4:{world.apex_id}",
        f"2026-Q4:{world.lab_id}",
    }
    by_channel = {
        str(m["channel"]): json.dumps(m, ensure_ascii=False)
        for m in posts
        if m["channel"] != C_SPONSOR
    }
    # A vendor's channel: its own scorecard, and not a word of the other vendor's.
    assert "Vendor scorecard — Apex CRO · ONC-301 · 2026-Q4" in by_channel[C_APEX]
    assert "CentraLab" not in by_channel[C_APEX] and "Kits shipped" not in by_channel[C_APEX]
    assert "Vendor scorecard — CentraLab" in by_channel[C_LAB]
    assert "Apex CRO" not in by_channel[C_LAB]
    # As of January, Apex's 15 Dec milestone is past its date too: 1 of 4 on time.
    assert "1 of 4 milestones due in 2026-Q4 done on time" in by_channel[C_APEX]
    assert fake_slack.posted(C_JOINT) == []
    validate_calls(fake_slack.calls_to("chat.postMessage"))
    # A restart (or a later run of the job) finds every post claimed: nothing more.
    (again,) = _outcomes([_replica(world, fake_slack, time.time(), ALL_DUE)])
    assert again == [] and len(fake_slack.posted()) == 4


def test_no_outbox_row_shows_a_vendor_channel_another_vendors_scorecard(
    world: World, fake_slack: FakeSlack
) -> None:
    _record(world)
    runtime = Runtime(world.db, now=Clock(ALL_DUE))
    client = delivery_client(WebClient(token="xoxb-test", base_url=fake_slack.base_url))
    delivery = Delivery(runtime, client, pacer=ChannelPacer(0.0))
    wrong = delivery.send(f"scorecard:{link_id(world.db, C_APEX)}", f"2026-Q4:{world.lab_id}")
    joint = delivery.send(f"scorecard:{link_id(world.db, C_JOINT)}", f"2026-Q4:{world.apex_id}")
    garbled = delivery.send(f"scorecard:{link_id(world.db, C_APEX)}", "2026-Q9:2")
    assert (wrong.state, joint.state, garbled.state) == ("skipped", "skipped", "skipped")
    assert fake_slack.posted() == []


def test_the_scheduler_runs_the_scorecard_job(world: World, fake_slack: FakeSlack) -> None:
    _record(world)
    _linked_long_ago(world)
    clock = Clock(DUE[C_APEX] + timedelta(minutes=5))  # Kolkata's morning only
    runtime = Runtime(world.db, now=clock)
    client = WebClient(token="xoxb-test-token", base_url=fake_slack.base_url)
    sched = DigestScheduler(bot_test_settings(world.db, fake_slack.base_url), runtime, client)
    sched.start()  # its start-up recovery runs the scorecard job once
    try:
        assert "scorecards" in sched.job_ids()
        deadline = time.monotonic() + 15
        while not _scorecard_runs(world) or any(
            r.state == DigestRunState.PENDING for r in _scorecard_runs(world)
        ):
            assert time.monotonic() < deadline, "no scorecard posted"
            time.sleep(0.05)
    finally:
        sched.shutdown()  # waits for running jobs: what was posted is final now
    runs = _scorecard_runs(world)
    assert [(r.target, r.period_key, r.state) for r in runs] == [
        (f"scorecard:{link_id(world.db, C_APEX)}", f"2026-Q4:{world.apex_id}", DigestRunState.SENT)
    ]
    cards = [m for m in fake_slack.posted() if m["metadata"]["event_type"] == "crobot_scorecard"]
    assert [m["channel"] for m in cards] == [C_APEX]
