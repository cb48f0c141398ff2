"""CPU per `/cro` request, in process: what one answer costs crobot's interpreter.

    python -m benchmarks.request_cpu --url sqlite:///bench.db [--count 200] [--profile status]

Builds crobot's Bolt app exactly as `crobot serve` does (`bot.runners.build`, scheduler
off) on the generated portfolio, with the fake Slack Web API and a `response_url` receiver
in this process, then dispatches Slack-signed `/cro` commands one at a time through
`App.dispatch` (request verification, every middleware, the listener, Block Kit) — the
same commands as `slash_roundtrip.py`: `kpi show`, `status`, `action list mine`, and the
write `action add` (its reply goes to response_url from a listener thread).

CPU per request = the dispatching thread's CPU time (`time.thread_time`) + the CPU time
of every task the request put on Bolt's listener executor (the write's work after the
ack), waited for to the end. The fake Slack's and the receiver's threads are not counted;
neither is the HTTP server (uvicorn, the same for any Bolt app). A no-op Bolt app's
dispatch is measured the same way as the floor.

Targets (issue 18, 1M KPI rows): `kpi show` and `action list mine` <= 2 ms, `status`
<= 6 ms, a write <= 4 ms. `--profile NAME` prints a cProfile of that command's requests.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from pydantic import SecretStr
from slack_bolt import Ack, App, BoltRequest
from slack_sdk import WebClient

from benchmarks.common import Summary, machine_line, redact
from benchmarks.slash_roundtrip import Followups, Request, workload, writes_of
from crobot.bot import runners
from crobot.bot.settings import Settings
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET, command_body, signed_headers

P = ParamSpec("P")
R = TypeVar("R")
TARGET_MS = {"kpi show": 2.0, "action list mine": 2.0, "status": 6.0, "action add": 4.0}


class MeasuringExecutor(Executor):
    """Bolt's listener executor, adding each task's CPU time to `cpu` when it ends."""

    def __init__(self, inner: ThreadPoolExecutor) -> None:
        self.inner = inner
        self.cpu = 0.0
        self.pending: list[Future[Any]] = []
        self.lock = threading.Lock()

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        def timed() -> R:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.cpu += time.thread_time() - t0

        fut = self.inner.submit(timed)
        with self.lock:
            self.pending.append(fut)
        return fut

    def drain(self) -> float:
        """Wait for every task submitted so far; their CPU time, reset to zero."""
        while True:
            with self.lock:
                pending, self.pending = self.pending, []
            if not pending:
                break
            for fut in pending:
                fut.result()
        with self.lock:
            cpu, self.cpu = self.cpu, 0.0
        return cpu


def measuring(app: App) -> MeasuringExecutor:
    runner = app.listener_runner
    executor = MeasuringExecutor(runner.listener_executor)  # type: ignore[arg-type]
    runner.listener_executor = executor
    runner.lazy_listener_runner.executor = executor  # type: ignore[attr-defined]
    return executor


def settings_for(url: str, slack: FakeSlack) -> Settings:
    return Settings(
        CROBOT_DATABASE_URL=url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-bench-token"),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        CROBOT_SLACK_API_URL=slack.base_url,
        CROBOT_SCHEDULER=False,
        CROBOT_LOG_LEVEL="WARNING",
    )


def noop_app(slack: FakeSlack) -> App:
    app = App(
        client=WebClient(token="xoxb-bench-token", base_url=slack.base_url),
        signing_secret=SIGNING_SECRET,
        token_verification_enabled=False,
        process_before_response=True,
    )

    def cro(ack: Ack) -> None:
        ack()

    app.command("/cro")(cro)
    return app


class Dispatcher:
    def __init__(self, app: App, followups: Followups) -> None:
        self.app = app
        self.executor = measuring(app)
        self.followups = followups
        self.n = 0

    def one(self, req: Request) -> tuple[float, bool]:
        """CPU seconds of one request and whether it succeeded (its reply arrived)."""
        self.n += 1
        key = f"r{self.n}"
        body = command_body(
            req.text,
            user_id=req.user_id,
            channel_id=req.channel_id,
            response_url=self.followups.base + key,
        )
        headers: dict[str, str | Sequence[str]] = dict(signed_headers(body))
        t0 = time.thread_time()
        resp = self.app.dispatch(BoltRequest(body=body, headers=headers))
        cpu = time.thread_time() - t0
        cpu += self.executor.drain()
        ok = resp.status == 200
        if ok and req.name == "action add":  # its reply goes to response_url
            ok = self.followups.wait(key, 10.0) is not None
        return cpu, ok


def measure(
    d: Dispatcher, reqs: list[Request], count: int, prof: cProfile.Profile | None = None
) -> tuple[list[float], int]:
    cpus: list[float] = []
    failed = 0
    for i in range(count):
        req = reqs[i % len(reqs)]
        if prof is not None:
            prof.enable()
        cpu, ok = d.one(req)
        if prof is not None:
            prof.disable()
        cpus.append(cpu)
        failed += not ok
    return cpus, failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="database URL (generated by generate.py)")
    p.add_argument("--count", type=int, default=200, help="measured requests per command")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured requests per command")
    p.add_argument("--studies", type=int, default=10, help="studies the requests cycle over")
    p.add_argument("--writes", type=int, default=100, help="measured `action add` (0: none)")
    p.add_argument("--profile", default="", help="cProfile this command's requests")
    args = p.parse_args(argv)
    print(machine_line())
    print(f"database: {redact(args.url)}; {args.count} requests per command, one at a time")

    reads = workload(args.url, args.studies)
    by_name: dict[str, list[Request]] = {}
    for r in reads:
        by_name.setdefault(r.name, []).append(r)
    if args.writes:
        by_name["action add"] = writes_of(reads)

    slack = FakeSlack().start()
    followups = Followups()
    try:
        runtime, app = runners.build(settings_for(args.url, slack))
        crobot = Dispatcher(app, followups)
        floor = Dispatcher(noop_app(slack), followups)
        floor_cpu, _ = measure(floor, reads, args.warmup + args.count)
        floor_s = Summary.of(floor_cpu[args.warmup :])
        print(f"floor (no-op Bolt app, dispatch): p50 {floor_s.p50 * 1000:.2f} ms CPU")
        print("command             CPU ms p50   p95    mean   target  met?  failed")
        for name, reqs in by_name.items():
            count = args.writes if name == "action add" else args.count
            measure(crobot, reqs, args.warmup)
            # CPU time, not wall: waiting for the database is not this process's work.
            prof = cProfile.Profile(time.thread_time) if name == args.profile else None
            cpus, failed = measure(crobot, reqs, count, prof)
            s = Summary.of(cpus)
            target = TARGET_MS[name]
            met = "yes" if s.p50 * 1000 <= target else "no"
            print(
                f"  {name:<18} {s.p50 * 1000:6.2f} {s.p95 * 1000:6.2f} {s.mean * 1000:6.2f}"
                f"   <= {target:.0f}    {met:<4}  {failed}"
            )
            if prof is not None:
                out = io.StringIO()
                stats = pstats.Stats(prof, stream=out)
                stats.sort_stats("cumulative").print_stats(40)
                stats.sort_stats("tottime").print_stats(25)
                print(out.getvalue())
        runtime.db.dispose()
    finally:
        followups.stop()
        slack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
