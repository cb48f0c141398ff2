"""Digest fan-out: compose and deliver N channel digests to the fake Slack Web API.

    python -m benchmarks.digest_fanout --url sqlite:///bench.db [--digests 1000]
        [--workers 8] [--pace 0]

Two passes over the first N channel links of the generated portfolio:

1. Compose, one digest at a time: load the link, `digests.compose.compose` (the queries
   and the view model), then `digests.render.render` alone — the template floor. Reports
   per-digest times, the ratio (compose + render) / render, and SQL statements per
   digest counted with a `before_cursor_execute` listener (transaction control such as
   BEGIN is not counted). Target: constant per digest (no N+1).
2. Deliver: `digests.delivery.Delivery.send_links` (the scheduler's bounded fan-out pool,
   8 workers) for every link, to the fake Slack running in its own process (so its CPU
   is not crobot's; `--pace` seconds per Slack call models a throttled Slack). Reports
   total time, digests/s, SQL statements per digest (claim, attempt, compose, finish),
   and checks exactly-once through conversations.history: one message per channel with
   its own run key, every run `sent`. Target: 1,000 digests in < 10 s unthrottled.

Charts are native Block Kit blocks in the digest itself (no image to draw or upload), so
they are measured as part of compose + render, as each link has them.
The delivery pass writes DigestRun rows under a fresh `bench-…` period key and deletes
them afterwards (unless `--keep-runs`), so every run composes the same digests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import Engine, delete, event, func, select

from benchmarks.common import Summary, machine_line, ratio, redact
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import ChannelLink, DigestRun
from tests.fake_slack import FakeSlack

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    from crobot.digests.compose import compose
    from crobot.digests.delivery import Delivery, Outcome, delivery_client
    from crobot.digests.pool import DigestPool, WorkerSpec
    from crobot.digests.render import render
except ImportError as exc:  # the digests package lands with the digests branch
    raise SystemExit(f"digest_fanout needs the digests package: {exc}") from exc

# The generated portfolio is dated around 2026-11-25; digests are composed as of then.
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")


class QueryCounter:
    """SQL statements executed, per thread, on the given engines."""

    def __init__(self, *engines: Engine) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.total = 0
        for engine in {id(e): e for e in engines}.values():
            event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(_CONTROL):
            return
        self._local.count = getattr(self._local, "count", 0) + 1
        with self._lock:
            self.total += 1

    def reset_thread(self) -> None:
        self._local.count = 0

    @property
    def thread_count(self) -> int:
        return int(getattr(self._local, "count", 0))


def link_ids(db: Database, n: int) -> list[int]:
    with db.read() as s:
        return list(s.scalars(select(ChannelLink.id).order_by(ChannelLink.id).limit(n)))


def compose_pass(db: Database, counter: QueryCounter, ids: list[int]) -> dict[str, Any]:
    compose_t: list[float] = []
    render_t: list[float] = []
    queries: dict[str, list[int]] = {}
    for link_id in ids:
        counter.reset_thread()
        t0 = time.perf_counter()
        with db.read() as s:
            link = s.get(ChannelLink, link_id)
            assert link is not None
            view = compose(s, link, NOW)
        t1 = time.perf_counter()
        render(view)
        t2 = time.perf_counter()
        queries.setdefault(view.audience.scope.value, []).append(counter.thread_count)
        compose_t.append(t1 - t0)
        render_t.append(t2 - t1)
    return {"compose": compose_t, "render": render_t, "queries": queries}


@contextmanager
def fake_slack(pace: float, where: str) -> Iterator[str]:
    """The fake Slack in its own process (or a thread of this one); yields its base URL."""
    if where == "thread":
        fake = FakeSlack().start()
        fake.state.pace_seconds = pace
        try:
            yield fake.base_url
        finally:
            fake.stop()
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fake_slack_server", "--pace", str(pace)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url:
            raise SystemExit("fake Slack process did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def posted_run_keys(client: WebClient, channels: list[str], period: str) -> dict[str, list[str]]:
    """Every crobot message of the run (`period`) in the channels, as run keys, read back
    through the history API like crobot does: the digests, and each one's thread replies."""
    keys: dict[str, list[str]] = {"digests": [], "replies": []}
    for channel in channels:
        for msg in client.conversations_history(channel=channel, limit=200)["messages"]:
            payload = (msg.get("metadata") or {}).get("event_payload") or {}
            if not str(payload.get("run_key")).endswith(f"|{period}"):
                continue  # an earlier run's
            keys["digests"].append(str(payload["run_key"]))
            thread = client.conversations_replies(channel=channel, ts=msg["ts"], limit=999)
            for reply in thread["messages"][1:]:
                meta = (reply.get("metadata") or {}).get("event_payload") or {}
                keys["replies"].append(str(meta.get("run_key")))
    return keys


@dataclass
class Delivered:
    processes: int
    wall: float
    start_up: float
    statements: int | None  # counted in this process only: with one process
    cpu: float  # crobot's CPU seconds: this process's with one, the workers' with several
    outcomes: list[Outcome]
    keys: dict[str, list[str]]
    rows: dict[str, int]  # DigestRun rows of the run by kind and state
    load: str

    @property
    def exactly_once(self) -> bool:
        n = len(self.outcomes)
        digests, replies = self.keys["digests"], self.keys["replies"]
        return (
            all(o.state == "sent" for o in self.outcomes)
            and n == len(digests) == len(set(digests))
            and len(replies) == len(set(replies)) == self.rows.get("replies sent", 0)
            and set(self.rows) <= {"digests sent", "replies sent"}
        )


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def _run_rows(db: Database, period: str) -> tuple[dict[str, int], list[str]]:
    """The run's outbox rows by kind and state, and the thread targets of its digests."""
    with db.read() as s:
        parents = list(s.scalars(select(DigestRun.id).where(DigestRun.period_key == period)))
        threads = [f"thread:{i}" for i in parents]
        rows: dict[str, int] = {}
        for kind, where in (
            ("digests", DigestRun.period_key == period),
            ("replies", DigestRun.target.in_(threads)),
        ):
            for state, n in s.execute(
                select(DigestRun.state, func.count()).where(where).group_by(DigestRun.state)
            ):
                rows[f"{kind} {state.value}"] = int(n)
    return rows, threads


def deliver_pass(
    db: Database,
    counter: QueryCounter,
    ids: list[int],
    processes: int,
    threads: int,
    slack_url: str,
    keep_runs: bool = False,
) -> Delivered:
    period = f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S.%f}"
    with db.read() as s:
        channels = list(s.scalars(select(ChannelLink.channel_id).where(ChannelLink.id.in_(ids))))
    spec = WorkerSpec(
        db.url, slack_url, "xoxb-bench-token", threads=threads, now=NOW, slack_timeout=60
    )
    runtime = Runtime(db, now=lambda: NOW)
    client = delivery_client(WebClient(token=spec.token, base_url=slack_url, timeout=60))
    pool = DigestPool(spec, processes, local=Delivery(runtime, client))
    started = time.perf_counter()
    pool.start()
    start_up = time.perf_counter() - started
    try:
        before = counter.total
        cpu = time.process_time()
        started = time.perf_counter()
        outcomes = pool.deliver(db, [(i, period) for i in ids])
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu + pool.worker_cpu
        statements = counter.total - before if processes == 1 else None
        load = load_average()
    finally:
        pool.shutdown()
    keys = posted_run_keys(WebClient(base_url=slack_url), channels, period)
    rows, thread_targets = _run_rows(db, period)
    if not keep_runs:
        # Later runs must compose the same digests: "completed since the last digest"
        # reads the newest sent run of each channel.
        with db.write() as s:
            s.execute(delete(DigestRun).where(DigestRun.target.in_(thread_targets)))
            s.execute(delete(DigestRun).where(DigestRun.period_key == period))
    return Delivered(processes, wall, start_up, statements, cpu, outcomes, keys, rows, load)


def report(d: Delivered, threads: int) -> None:
    n = len(d.outcomes)
    target_s = 10 * n / 1000
    verdict = "OK" if d.wall < target_s else "OVER TARGET"
    replies = len(d.keys["replies"])
    print(
        f"  {d.processes} process(es) x {threads} threads: {n} digests + {replies} thread "
        f"replies in {d.wall:.2f} s ({n / d.wall:.1f} digests/s); "
        f"/ {target_s:g} s target = {d.wall / target_s:.2f} ({verdict}); "
        f"pool start-up {d.start_up:.2f} s; {d.load}"
    )
    print(
        f"    crobot CPU {d.cpu:.2f} s ({d.cpu / n * 1000:.1f} ms per digest, replies "
        f"included; 2 cores for 10 s leave {20 * 1000 / n:.0f} ms for crobot, the database "
        f"and Slack together)"
    )
    if d.statements is not None:
        print(
            f"    SQL statements per delivered digest (its replies included): "
            f"{d.statements / n:.1f}"
        )
    digests = d.keys["digests"]
    print(
        f"    outcomes {sorted({o.state for o in d.outcomes})}: digests posted {len(digests)}, "
        f"distinct {len(set(digests))}; replies posted {replies}, distinct "
        f"{len(set(d.keys['replies']))}; rows {d.rows} -> "
        f"{'exactly once' if d.exactly_once else 'NOT exactly once'}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--digests", type=int, default=1000)
    p.add_argument(
        "--processes",
        default="1,2,4",
        help="worker process counts to measure, comma-separated (digests/pool.py)",
    )
    p.add_argument("--threads", type=int, default=2, help="fan-out threads per process")
    p.add_argument("--pace", type=float, default=0.0, help="fake Slack seconds per call")
    p.add_argument("--skip-compose", action="store_true")
    p.add_argument("--keep-runs", action="store_true", help="keep the DigestRun rows written")
    p.add_argument(
        "--fake-slack",
        choices=("process", "thread"),
        default="process",
        help="run the fake Slack in its own process (default) or in a thread of this one",
    )
    args = p.parse_args(argv)
    db = Database(args.url)
    counter = QueryCounter(db.engine, db.write_engine)
    ids = link_ids(db, args.digests)
    if not ids:
        raise SystemExit("no channel links: run benchmarks/generate.py first")
    print(machine_line())
    print(f"digest_fanout: {redact(db.url)}  {len(ids)} channel digests as of {NOW:%Y-%m-%d}")
    ok = True
    if not args.skip_compose:
        c = compose_pass(db, counter, ids)
        comp, rend = Summary.of(c["compose"]), Summary.of(c["render"])
        full = Summary.of([a + b for a, b in zip(c["compose"], c["render"], strict=True)])
        q = c["queries"]
        print("compose pass (sequential):")
        print(f"  compose (queries + view model) {comp.ms()}")
        print(f"  render alone (template floor)  {rend.ms()}")
        print(f"  compose + render               {full.ms()}")
        print(
            f"  ratio (compose + render) / render: p50 {ratio(full.p50, rend.p50):.2f}  "
            f"p99 {ratio(full.p99, rend.p99):.2f}"
        )
        constant = all(min(v) == max(v) for v in q.values())
        per_scope = ", ".join(
            f"{scope}: {min(v)}" + ("" if min(v) == max(v) else f"..{max(v)}")
            for scope, v in sorted(q.items())
        )
        print(
            f"  SQL statements per digest by audience: {per_scope} "
            f"({'constant' if constant else 'VARIES'}; sponsor digests add pending approvals)"
        )
        print(
            f"  sequential total {sum(c['compose']) + sum(c['render']):.2f} s "
            f"for {len(ids)} digests"
        )
        ok = ok and constant
    print(
        f"deliver pass (fake Slack in a {args.fake_slack}, Slack pace "
        f"{args.pace * 1000:.0f} ms/call, 1 message/s per channel as crobot paces Slack):"
    )
    with fake_slack(args.pace, args.fake_slack) as url:
        for processes in (int(n) for n in args.processes.split(",")):
            d = deliver_pass(db, counter, ids, processes, args.threads, url, args.keep_runs)
            report(d, args.threads)
            ok = ok and d.exactly_once
    db.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
