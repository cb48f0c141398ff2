"""Slash-command round trip: crobot's HTTP stack vs a bare Bolt app on the same stack.

    python -m benchmarks.slash_roundtrip --url sqlite:///bench.db \
        [--count 600] [--concurrency 1,8,32] [--servers bare,crobot] [--strict]

Starts, as separate processes (benchmarks/serve.py), crobot (uvicorn + bot.http.SlackASGI
+ bot.app.create_app) on the generated database and a bare Bolt app whose `/cro` handler
only acks, plus an in-process fake Slack Web API (tests/fake_slack.py) and a receiver for
`response_url` posts. It then sends Slack-signed, form-encoded `/cro` commands to
POST /slack/events — `kpi show STUDY KPI`, `status STUDY`, `action list mine`, cycling
over sponsor users and sponsor channels of several studies — `--count` requests at each
concurrency, to each server in turn.

A request's round trip is what a Slack user waits for: until the HTTP answer when it
carries the reply (text/blocks in the ack), otherwise until the handler's follow-up
arrives at `response_url`. The bare app's round trip is its ack. Reported: p50/p95/p99,
requests/s, the ratio crobot/bare at p50 and p99 (target <= 1.5), errors, and the peak
RSS (VmHWM) of each server process (target for crobot < 200 MB).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.common import (
    TEAM,
    Summary,
    machine_line,
    ratio,
    redact,
    stop_process,
    tree_peak_rss_mb,
)
from crobot.storage.db import Database
from crobot.storage.models import (
    AudienceKind,
    ChannelLink,
    KpiDefinition,
    Person,
    Role,
    Study,
)
from tests.bot_server import free_port
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, signed_headers

REPO_ROOT = Path(__file__).resolve().parent.parent
FOLLOWUP_TIMEOUT = 10.0


# --- response_url receiver ---------------------------------------------------------------
class Followups:
    """Records when each `/resp/<id>` follow-up arrives (the handler's deferred reply)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.bodies: dict[str, str] = {}
        self.cond = threading.Condition()
        followups = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                now = time.perf_counter()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.path.rsplit("/", 1)[-1]
                with followups.cond:
                    followups.arrived.setdefault(key, now)
                    followups.bodies.setdefault(key, raw.decode(errors="replace"))
                    followups.cond.notify_all()
                data = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/resp/"

    def wait(self, key: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while key not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.arrived[key]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- servers -------------------------------------------------------------------------------
@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: str

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def launch(kind: str, db_url: str, slack_url: str, extra: list[str]) -> Server:
    """A server process; `extra`: more arguments for benchmarks/serve.py (--workers N)."""
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.serve", "--kind", kind, "--url", db_url,
           "--port", str(port), "--slack-url", slack_url, *extra]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    log.close()
    return Server(kind, port, proc, log.name)


def wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            tail = Path(server.log_path).read_text(errors="replace")[-2000:]
            raise SystemExit(f"{server.kind} server exited with {server.proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://{server.host}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.kind} server did not become healthy")
        time.sleep(0.05)


def stop(server: Server) -> None:
    stop_process(server.proc)


@contextmanager
def start_servers(
    kinds: list[str], db_url: str, slack_url: str, extra: list[str]
) -> Iterator[dict[str, Server]]:
    """Start every server at once (start-up overlaps), then wait until each is healthy."""
    servers: dict[str, Server] = {}
    try:
        for kind in kinds:
            servers[kind] = launch(kind, db_url, slack_url, extra)
        for server in servers.values():
            wait_healthy(server)
        yield servers
    finally:
        for server in servers.values():
            stop(server)


# --- workload --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    name: str
    text: str
    user_id: str
    channel_id: str


def workload(db_url: str, studies: int) -> list[Request]:
    """Commands a sponsor user sends in the study's sponsor channel, over several studies."""
    db = Database(db_url)
    out: list[Request] = []
    with db.read() as s:
        kpi_key = s.scalar(select(KpiDefinition.key).order_by(KpiDefinition.id).limit(1))
        for study in s.scalars(select(Study).order_by(Study.id).limit(studies)):
            user = s.scalar(
                select(Person.slack_user_id)
                .where(
                    Person.org_id == study.sponsor_org_id,
                    Person.team_id == TEAM,
                    Person.role == Role.SPONSOR_APPROVER,
                )
                .order_by(Person.id)
                .limit(1)
            )
            channel = s.scalar(
                select(ChannelLink.channel_id)
                .where(
                    ChannelLink.study_id == study.id, ChannelLink.audience == AudienceKind.SPONSOR
                )
                .order_by(ChannelLink.id)
                .limit(1)
            )
            if user is None or channel is None or kpi_key is None:
                continue
            out += [
                Request("kpi show", f"kpi show {study.code} {kpi_key}", user, channel),
                Request("status", f"status {study.code}", user, channel),
                Request("action list mine", "action list mine", user, channel),
            ]
    db.dispose()
    if not out:
        raise SystemExit("no study with a sponsor approver and a sponsor channel: generate first")
    return out


def writes_of(reads: list[Request]) -> list[Request]:
    """A write for each (user, channel) of the reads: `action add`, owned by the user
    (each one adds an action item and an audit event to the database)."""
    pairs = sorted(
        {(r.user_id, r.channel_id, r.text.split()[1]) for r in reads if r.name == "status"}
    )
    return [
        Request(
            "action add", f'action add {code} "Benchmark follow-up" <@{user}> due:+2w', user, ch
        )
        for user, ch, code in pairs
    ]


@dataclass
class Outcome:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Run:
    kind: str
    concurrency: int
    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0

    @property
    def ok_times(self) -> list[float]:
        return [o.seconds for o in self.outcomes if o.ok]

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def _reply_in_ack(status: int, body: bytes) -> bool:
    if status != 200 or not body.strip():
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return bool(body.strip())  # a plain-text ack is itself the reply
    return isinstance(data, dict) and bool(data.get("text") or data.get("blocks"))


_ERROR_WORDS = ("went wrong", "temporarily unavailable")


def one_request(
    conn: http.client.HTTPConnection, req: Request, key: str, kind: str, followups: Followups
) -> Outcome:
    body = command_body(
        req.text,
        user_id=req.user_id,
        channel_id=req.channel_id,
        team_id=TEAM,
        response_url=followups.base + key,
    )
    headers = signed_headers(body)
    start = time.perf_counter()
    conn.request("POST", "/slack/events", body=body.encode(), headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    acked = time.perf_counter()
    if resp.status != 200:
        return Outcome(req.name, acked - start, False, f"HTTP {resp.status}: {raw[:120]!r}")
    if kind == "bare" or _reply_in_ack(resp.status, raw):
        text = raw.decode(errors="replace")
        bad = any(w in text for w in _ERROR_WORDS)
        return Outcome(req.name, acked - start, not bad, text[:120] if bad else "")
    arrived = followups.wait(key, FOLLOWUP_TIMEOUT)
    if arrived is None:
        return Outcome(req.name, FOLLOWUP_TIMEOUT, False, "no reply at response_url")
    text = followups.bodies.get(key, "")
    bad = any(w in text for w in _ERROR_WORDS)
    return Outcome(req.name, arrived - start, not bad, text[:120] if bad else "")


def run_load(
    server: Server,
    requests: list[Request],
    count: int,
    concurrency: int,
    followups: Followups,
    tag: str,
) -> Run:
    run = Run(server.kind, concurrency)
    counter = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(server.host, timeout=30)
        try:
            while True:
                n = next(counter)
                if n >= count:
                    return
                req = requests[n % len(requests)]
                try:
                    outcome = one_request(conn, req, f"{tag}-{n}", server.kind, followups)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection(server.host, timeout=30)
                    outcome = Outcome(req.name, 0.0, False, f"{type(exc).__name__}: {exc}")
                with lock:
                    run.outcomes.append(outcome)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.wall = time.perf_counter() - started
    return run


def describe(run: Run, workers: int) -> str:
    s = Summary.of(run.ok_times)
    rps = len(run.outcomes) / run.wall if run.wall else float("nan")
    errs = f"  ERRORS {len(run.errors)}" if run.errors else ""
    return f"{run.kind:>6} w={workers} c={run.concurrency:<3} {s.ms()}  {rps:7.1f} req/s{errs}"


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


@dataclass
class Measured:
    """Every run of one worker count, by (server kind, concurrency); writes by level."""

    workers: int
    reads: dict[tuple[str, int], Run] = field(default_factory=dict)
    writes: dict[int, Run] = field(default_factory=dict)
    rss: dict[str, dict[int, float]] = field(default_factory=dict)

    def rps(self, kind: str, level: int) -> float:
        run = self.reads[(kind, level)]
        return len(run.ok_times) / run.wall if run.wall else 0.0


def measure(
    workers: int,
    kinds: list[str],
    levels: list[int],
    write_levels: list[int],
    args: argparse.Namespace,
    reads: list[Request],
    writes: list[Request],
    fake: FakeSlack,
    followups: Followups,
) -> tuple[Measured, bool]:
    m = Measured(workers)
    failed = False
    logs_to_drop: list[str] = []
    with start_servers(kinds, args.url, fake.base_url, ["--workers", str(workers)]) as servers:
        for kind in kinds:
            warm = run_load(servers[kind], reads, args.warmup, 4, followups, f"w{kind}{workers}")
            if warm.errors:
                e = warm.errors[0]
                print(f"  warm-up {kind}: {len(warm.errors)} errors, e.g. {e.name}: {e.detail}")
        for level in levels:
            for kind in kinds:  # same level back to back: ratios come from one run
                tag = f"{kind}{workers}-{level}"
                run = run_load(servers[kind], reads, args.count, level, followups, tag)
                m.reads[(kind, level)] = run
                print(describe(run, workers), flush=True)
                failed |= _report_errors(run)
        if "crobot" in kinds:
            for level in write_levels:
                tag = f"write{workers}-{level}"
                run = run_load(servers["crobot"], writes, args.writes, level, followups, tag)
                run.kind = "writes"
                m.writes[level] = run
                print(describe(run, workers), flush=True)
                failed |= _report_errors(run)
        for kind, server in servers.items():
            m.rss[kind] = tree_peak_rss_mb(server.proc.pid)
            if any(r.errors for (k, _), r in m.reads.items() if k == kind):
                print(f"  {kind} server log: {server.log_path}")
            else:
                logs_to_drop.append(server.log_path)
    for path in logs_to_drop:
        Path(path).unlink(missing_ok=True)
    return m, failed


def _report_errors(run: Run) -> bool:
    if not run.errors:
        return False
    e = run.errors[0]
    print(f"         first error ({e.name}): {e.detail}")
    return True


def report(m: Measured, kinds: list[str], levels: list[int], write_levels: list[int]) -> None:
    w = m.workers
    if "bare" in kinds and "crobot" in kinds:
        print(f"ratio crobot/bare, {w} worker(s) (targets: p99 <= 3 at c=1 and c=8):")
        for level in levels:
            c = Summary.of(m.reads[("crobot", level)].ok_times)
            b = Summary.of(m.reads[("bare", level)].ok_times)
            if c.n == 0 or b.n == 0:
                print(f"  c={level:<3} not measured: no successful requests")
                continue
            r50, r99 = ratio(c.p50, b.p50), ratio(c.p99, b.p99)
            target = f"  ({verdict(r99 <= 3)})" if level in (1, 8) else ""
            print(
                f"  c={level:<3} p50 {r50:5.2f}  p99 {r99:5.2f}{target}  "
                f"(crobot p99 {c.p99 * 1000:.0f} ms vs Slack's 3000 ms)"
            )
    if "crobot" in kinds:
        if 8 in levels:
            rps = m.rps("crobot", 8)
            print(f"  crobot reads at c=8: {rps:.0f} req/s (target >= 300: {verdict(rps >= 300)})")
        by_cmd: dict[str, list[float]] = {}
        for o in m.reads[("crobot", levels[0])].outcomes:
            if o.ok:
                by_cmd.setdefault(o.name, []).append(o.seconds)
        print(f"crobot per command at c={levels[0]}, {w} worker(s):")
        for name, times in sorted(by_cmd.items()):
            print(f"  {name:<18} {Summary.of(times).ms()}")
    if m.writes and 1 in m.writes:
        base = Summary.of(m.writes[1].ok_times)
        print(f"writes (action add, until the reply at response_url), {w} worker(s):")
        for level, run in sorted(m.writes.items()):
            s = Summary.of(run.ok_times)
            r = ratio(s.p99, base.p50)
            target = f"  (target <= 10: {verdict(r <= 10)})" if level == 8 else ""
            print(f"  c={level:<3} p99 / p50 at c=1: {r:6.1f}{target}")
    for kind in ("crobot", "bare"):
        tree = m.rss.get(kind)
        if tree:
            each = ", ".join(f"{mb:.0f}" for mb in tree.values())
            target = "  (target < 200 MB per process)" if kind == "crobot" else ""
            print(
                f"peak RSS {kind}, {w} worker(s): {each} MB (supervisor first), "
                f"total {sum(tree.values()):.0f} MB{target}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="database URL (generated by generate.py)")
    p.add_argument("--count", type=int, default=600, help="requests per server and level")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--servers", default="bare,crobot", help="which servers to measure")
    p.add_argument(
        "--workers", default="1", help="worker processes per server, e.g. 1,2,4 (each measured)"
    )
    p.add_argument("--writes", type=int, default=0, help="write requests per level (0: none)")
    p.add_argument("--write-concurrency", default="1,8", help="levels for the writes")
    p.add_argument("--studies", type=int, default=10, help="studies the requests cycle over")
    p.add_argument("--warmup", type=int, default=30, help="unmeasured requests per server")
    p.add_argument("--strict", action="store_true", help="exit 1 if any request failed")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    write_levels = [int(c) for c in args.write_concurrency.split(",")] if args.writes else []
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    worker_counts = [int(w) for w in args.workers.split(",")]
    reads = workload(args.url, args.studies)
    writes = writes_of(reads)
    print(machine_line())
    print(
        f"slash_roundtrip: {redact(args.url)}  {args.count} requests per server and level, "
        f"concurrency {levels}, workers {worker_counts}, commands: "
        f"{sorted({r.name for r in reads})}"
        + (f"; writes: {args.writes} per level {write_levels}" if args.writes else "")
    )
    fake = FakeSlack().start()
    for r in reads:
        fake.add_user(r.user_id, tz="America/New_York", team_id=TEAM)
    followups = Followups()
    failed = False
    measured: list[Measured] = []
    try:
        for workers in worker_counts:
            m, bad = measure(
                workers, kinds, levels, write_levels, args, reads, writes, fake, followups
            )
            measured.append(m)
            failed |= bad
            report(m, kinds, levels, write_levels)
    finally:
        followups.stop()
        fake.stop()
    if len(measured) > 1 and "crobot" in kinds:
        print("scale: crobot reads, req/s by worker processes:")
        for level in levels:
            rates = "  ".join(f"w={m.workers}: {m.rps('crobot', level):6.0f}" for m in measured)
            first = measured[0].rps("crobot", level)
            gain = "  ".join(f"x{ratio(m.rps('crobot', level), first):.2f}" for m in measured[1:])
            print(f"  c={level:<3} {rates}   ({gain} over w={measured[0].workers})")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
