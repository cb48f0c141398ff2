"""A replica killed mid-post: the other one delivers its digest, once, within claim expiry
plus one sweep (issue 11, "a dead replica's runs wait for it forever").

Two real `crobot serve` processes on one PostgreSQL database and the fake Slack. Replica A
starts alone with every channel's digest missed, claims the first one in its catch-up and
is stuck in chat.postMessage (the fake holds A's posts, told apart by A's bot token). B
starts, catches up the rest and is idle. Then A is killed with SIGKILL. Either Slack never
acted on A's post, or it did and only the answer was lost (the message is in the channel's
history): B takes the run over once A's claim has expired, at its next sweep, and the
channel has exactly one post for that run key in both cases.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crobot.storage.models import DigestRun, DigestRunState
from tests.conftest import World
from tests.fake_slack import Call, FakeSlack
from tests.test_replicas import Replica, _schedule_all, _start, _stop

LEASE = 10.0  # seconds: B must start and catch up well within it while A is stuck
SWEEP = 2.0
MARGIN = 3.0  # a sweep's own work (claim, compose, post or history search, finish)
SHORT = {
    "CROBOT_OUTBOX_LEASE_SECONDS": str(LEASE),
    "CROBOT_OUTBOX_SWEEP_SECONDS": str(SWEEP),
}
TOKEN_A, TOKEN_B = "xoxb-replica-a", "xoxb-replica-b"


def _from(token: str) -> Callable[[Call], bool]:
    return lambda call: call.headers.get("Authorization") == f"Bearer {token}"


def _runs(world: World) -> list[DigestRun]:
    with world.db.read() as s:
        return list(s.scalars(select(DigestRun).where(DigestRun.target.like("link:%"))))


def _wait(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("slack_acted", [False, True], ids=["post-lost", "answer-lost"])
def test_a_killed_replicas_digest_is_delivered_once_by_the_other(
    world: World, fake_slack: FakeSlack, tmp_path: Path, slack_acted: bool
) -> None:
    if world.db.is_sqlite:
        pytest.skip("replicas share a PostgreSQL database (CROBOT_TEST_DATABASE_URL)")
    fire = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    channels = _schedule_all(world, fire)
    held = fake_slack.hold("chat.postMessage", _from(TOKEN_A), after_effect=slack_acted)

    a = _start(world, fake_slack, tmp_path, "a", token=TOKEN_A, extra_env=SHORT)
    replicas: list[Replica] = [a]
    try:
        a.wait_healthy()
        (stuck_call,) = held.wait_held(1, timeout=30)
        stuck_channel = str(stuck_call.params["channel"])
        (stuck,) = [r for r in _runs(world) if r.state == DigestRunState.PENDING]
        assert stuck.claimed_by is not None and f":{a.proc.pid}:" in stuck.claimed_by

        b = _start(world, fake_slack, tmp_path, "b", token=TOKEN_B, extra_env=SHORT)
        replicas.append(b)
        b.wait_healthy()
        _wait("B's catch-up", b.caught_up, 30)
        _wait(
            "B's digests",
            lambda: sum(r.state == DigestRunState.SENT for r in _runs(world)) == channels - 1,
            30,
        )
        # B is idle now; A still owns its claim (the lease has not expired) and is stuck.
        (still,) = [r for r in _runs(world) if r.state == DigestRunState.PENDING]
        assert still.claimed_by == stuck.claimed_by, "B started slower than the lease"
        assert a.proc.poll() is None

        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        replicas.remove(a)
        held.release(perform=False)  # A's connection is gone: nothing more comes of it

        # The final state: every run sent (a sent run is never posted again).
        _wait(
            "B to take over A's run",
            lambda: all(r.state == DigestRunState.SENT for r in _runs(world)),
            LEASE + SWEEP + 30,
        )
    finally:
        logs = _stop(replicas)
    assert all("Traceback" not in log for log in logs), "\n".join(logs)

    runs = _runs(world)
    assert len(runs) == channels and {r.state for r in runs} == {DigestRunState.SENT}
    (taken,) = [r for r in runs if r.id == stuck.id]
    assert taken.claimed_by is not None and f":{b.proc.pid}:" in taken.claimed_by
    # Within claim expiry + one sweep (+ the sweep's own work), by the database's times.
    assert taken.sent_at is not None
    expiry = stuck.claimed_at + timedelta(seconds=LEASE)
    assert expiry <= taken.sent_at <= expiry + timedelta(seconds=SWEEP + MARGIN), (
        taken.sent_at - stuck.claimed_at
    )

    # Exactly one post per channel, carrying its own run's key, in the channel history.
    keys = {f"{r.target}|{r.period_key}": r for r in runs}
    posted = [m for m in fake_slack.posted() if m.get("metadata")]
    per_key = Counter(m["metadata"]["event_payload"]["run_key"] for m in posted)
    assert per_key == Counter(dict.fromkeys(keys, 1))
    for m in posted:
        run = keys[m["metadata"]["event_payload"]["run_key"]]
        assert (run.slack_channel, run.slack_ts) == (m["channel"], m["ts"])
    assert Counter(str(m["channel"]) for m in posted) == Counter(
        {"CSPONSOR": 1, "CAPEX": 1, "CLAB": 1, "CJOINT": 1}
    )
    # Who posted the stuck channel's message: A (Slack acted before A died; B found it in
    # the history and did not post) or B (A's post never happened).
    b_posts = [
        c
        for c in fake_slack.calls_to("chat.postMessage")
        if _from(TOKEN_B)(c) and c.params.get("channel") == stuck_channel
    ]
    assert len(b_posts) == (0 if slack_acted else 1)
    if slack_acted:
        assert fake_slack.calls_to("conversations.history"), "B did not look before posting"
