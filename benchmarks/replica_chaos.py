"""Replica chaos: two `crobot serve` replicas deliver N channels' digests; one is killed
with SIGKILL at a random point; the other must deliver every digest, exactly once.

    python -m benchmarks.replica_chaos --url postgresql+psycopg://postgres@127.0.0.1:5432/bench
        [--channels 200] [--rounds 8] [--lease 8] [--sweep 2] [--kill-window 8]
        [--pace 0.05] [--seed 1]

Needs a generated portfolio at --url (`benchmarks.generate`, at least --channels links).
Each round is one trial: the first N channel links get a digest due 10 minutes ago (in
each link's own zone; charts off), the other links' digests are off; two replicas start
together (real processes, sharing only the database) and race through their start-up
catch-up; once both answer /healthz, one of them, chosen at random, is killed after a
random delay in [0, --kill-window] s. The survivor keeps running: it takes over the dead
replica's claims once their lease has expired, at its next outbox sweep. A round ends
when every run is `sent` (or after lease + sweep + 60 s: whatever is left is lost).

Printed per round and in total: kills, lost (channels without a post carrying their run
key), duplicated (channels with more than one), the claims the dead replica held, runs
the survivor found already posted in the channel history (Slack had acted, the dead
replica had not recorded it), and the time to recover (kill → every digest delivered).
--lease / --sweep set CROBOT_OUTBOX_LEASE_SECONDS / CROBOT_OUTBOX_SWEEP_SECONDS for both
replicas (production defaults 120 / 60 s: recovery then takes up to ~3 minutes).

The fake Slack runs in this process (tests/fake_slack.py; `conversations.history`
returns what was posted); `--pace` seconds per Slack call widen the window in which a
kill lands mid-post. The links' schedule columns are restored and the runs the benchmark
wrote are deleted afterwards (unless --keep-runs).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select

from benchmarks.common import Summary, machine_line, redact, stop_process
from crobot.storage.db import Database, normalise_url
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.bot_server import free_port
from tests.digest_helpers import working_country
from tests.fake_slack import FakeSlack

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE = ("digest_enabled", "digest_days", "digest_time", "charts_enabled", "created_at")
FOUND = re.compile(r"run link:\d+\|\S+ already posted as")


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)


@dataclass
class Round:
    victim: str
    delay: float
    sent_at_kill: int
    in_flight: int  # pending runs claimed by the victim when it died
    recover: float | None  # seconds from the kill until every run was sent; None: never
    takeover: float | None  # seconds from the kill until the victim's claims were sent
    lost: int
    duplicated: int
    found_in_history: int
    tracebacks: int


def start(
    name: str, url: str, slack_url: str, workdir: Path, lease: float, sweep: float
) -> Replica:
    # Only this run's settings, but the audit key the portfolio was signed with (a
    # PostgreSQL database has no key file beside it to fall back on).
    keep = ("CROBOT_AUDIT_KEY", "CROBOT_AUDIT_KEY_FILE")
    env = {
        k: v for k, v in os.environ.items() if k in keep or not k.startswith(("CROBOT_", "SLACK_"))
    }
    env.update(
        CROBOT_DATABASE_URL=url,
        SLACK_BOT_TOKEN=f"xoxb-chaos-{name}",
        SLACK_SIGNING_SECRET="chaos-signing-secret",
        CROBOT_SLACK_API_URL=slack_url,
        CROBOT_LOG_LEVEL="INFO",
        CROBOT_OUTBOX_LEASE_SECONDS=str(lease),
        CROBOT_OUTBOX_SWEEP_SECONDS=str(sweep),
    )
    (workdir / name).mkdir(parents=True, exist_ok=True)
    log = workdir / name / "stderr.log"
    port = free_port()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crobot.bot", "serve", "--port", str(port)],
            env=env,
            cwd=workdir / name,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Replica(name, proc, log, port)


def make_due(db: Database, ids: list[int], fire: datetime) -> None:
    """The chosen links' digest due at `fire` (their own zone), every other link's off."""
    with db.write() as s:
        for link in s.scalars(select(ChannelLink)):
            if link.id not in ids:
                link.digest_enabled = False
                continue
            local = fire.astimezone(ZoneInfo(link.timezone))
            link.digest_enabled, link.charts_enabled = True, False
            link.digest_days = DAYS[local.weekday()]
            link.digest_time = local.strftime("%H:%M")
            link.country = working_country(local.date())  # a run on a day off still fires
            # Linked (and scheduled) well before the fire time, so it is a missed digest.
            link.created_at = fire - timedelta(days=1)
            link.schedule_changed_at = None


def link_runs(db: Database, ids: list[int], first_id: int) -> list[DigestRun]:
    targets = [f"link:{i}" for i in ids]
    with db.read() as s:
        stmt = select(DigestRun).where(DigestRun.id > first_id, DigestRun.target.in_(targets))
        return list(s.scalars(stmt))


def clear_runs(db: Database, first_id: int, *, every: bool = False) -> None:
    """Delete the runs this benchmark wrote: digests and their notices (all of them at
    the end, nudges included)."""
    with db.write() as s:
        stmt = delete(DigestRun).where(DigestRun.id > first_id)
        if not every:
            stmt = stmt.where(DigestRun.target.like("link:%") | DigestRun.target.like("notice:%"))
        s.execute(stmt)


def one_round(
    no: int,
    args: argparse.Namespace,
    db: Database,
    fake: FakeSlack,
    ids: list[int],
    first_id: int,
    workdir: Path,
    rng: random.Random,
) -> Round:
    clear_runs(db, first_id)
    fake.reset()
    fake.state.pace_seconds = args.pace
    url = normalise_url(args.url)
    rdir = workdir / f"round{no}"
    replicas = {n: start(n, url, fake.base_url, rdir, args.lease, args.sweep) for n in ("a", "b")}
    try:
        deadline = time.monotonic() + 60
        while not all(r.healthy() for r in replicas.values()):
            for r in replicas.values():
                if r.proc.poll() is not None:
                    raise SystemExit(f"replica {r.name} exited:\n{r.log.read_text()}")
            if time.monotonic() > deadline:
                raise SystemExit("replicas did not become healthy in 60 s")
            time.sleep(0.05)
        victim = replicas[rng.choice("ab")]
        survivor = replicas["b" if victim.name == "a" else "a"]
        delay = rng.uniform(0, args.kill_window)
        time.sleep(delay)  # the random kill point (not a wait for any outcome)
        victim.proc.send_signal(signal.SIGKILL)
        t_kill = time.perf_counter()
        victim.proc.wait(timeout=10)
        runs = link_runs(db, ids, first_id)
        sent_at_kill = sum(r.state == DigestRunState.SENT for r in runs)
        mark = f":{victim.proc.pid}:"
        orphans = {
            r.id for r in runs if r.state == DigestRunState.PENDING and mark in (r.claimed_by or "")
        }
        # The final state: every run sent. A sent run is never posted again.
        recover: float | None = None
        takeover: float | None = None
        give_up = t_kill + args.lease + args.sweep + 60
        while time.perf_counter() < give_up:
            runs = link_runs(db, ids, first_id)
            if (
                takeover is None
                and orphans
                and all(r.state == DigestRunState.SENT for r in runs if r.id in orphans)
            ):
                takeover = time.perf_counter() - t_kill
            if len(runs) == len(ids) and all(r.state == DigestRunState.SENT for r in runs):
                recover = time.perf_counter() - t_kill
                break
            time.sleep(0.02)
    finally:
        for r in replicas.values():
            r.stop()
    with db.read() as s:
        keys = {
            f"link:{i}|{k}": int(i)
            for i, k in s.execute(
                select(DigestRun.channel_link_id, DigestRun.period_key).where(
                    DigestRun.id > first_id, DigestRun.target.in_([f"link:{i}" for i in ids])
                )
            )
            if i is not None
        }
    posts: Counter[int] = Counter()
    for m in fake.posted():
        key = ((m.get("metadata") or {}).get("event_payload") or {}).get("run_key")
        if key in keys:
            posts[keys[key]] += 1
    survivor_log = survivor.log.read_text()
    logs = survivor_log + victim.log.read_text()
    return Round(
        victim=victim.name.upper(),
        delay=delay,
        sent_at_kill=sent_at_kill,
        in_flight=len(orphans),
        recover=recover,
        takeover=takeover,
        lost=sum(1 for i in ids if posts[i] == 0),
        duplicated=sum(1 for i in ids if posts[i] > 1),
        found_in_history=len(FOUND.findall(survivor_log)),
        tracebacks=logs.count("Traceback"),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--url",
        default=os.environ.get(
            "CROBOT_BENCH_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test_a"
        ),
        help="SQLAlchemy URL of a generated portfolio (env CROBOT_BENCH_URL)",
    )
    p.add_argument("--channels", type=int, default=200)
    p.add_argument("--rounds", type=int, default=8, help="one kill per round")
    p.add_argument("--lease", type=float, default=8.0, help="CROBOT_OUTBOX_LEASE_SECONDS")
    p.add_argument("--sweep", type=float, default=2.0, help="CROBOT_OUTBOX_SWEEP_SECONDS")
    p.add_argument("--kill-window", type=float, default=8.0, help="kill within s of healthy")
    p.add_argument("--pace", type=float, default=0.05, help="seconds per fake Slack call")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep-runs", action="store_true", help="keep the DigestRun rows")
    args = p.parse_args(argv)

    db = Database(args.url)
    with db.read() as s:
        ids = list(s.scalars(select(ChannelLink.id).order_by(ChannelLink.id).limit(args.channels)))
        saved: dict[int, tuple[Any, ...]] = {
            link.id: tuple(getattr(link, c) for c in (*SCHEDULE, "schedule_changed_at"))
            for link in s.scalars(select(ChannelLink))
        }
        first_id = int(s.scalar(select(func.max(DigestRun.id))) or 0)
    if len(ids) < args.channels:
        raise SystemExit(f"only {len(ids)} channel links at --url: run benchmarks.generate")
    print(
        f"replica_chaos: {redact(normalise_url(args.url))}, {len(ids)} channels, "
        f"{args.rounds} rounds, 2 `crobot serve` replicas, lease {args.lease:g} s, "
        f"sweep {args.sweep:g} s, kill within {args.kill_window:g} s of healthy, "
        f"fake Slack pace {args.pace:g} s, seed {args.seed}"
    )
    print(machine_line())
    fire = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    make_due(db, ids, fire)
    rng = random.Random(args.seed)
    fake = FakeSlack().start()
    results: list[Round] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="crobot-chaos-") as tmp:
            for no in range(1, args.rounds + 1):
                r = one_round(no, args, db, fake, ids, first_id, Path(tmp), rng)
                results.append(r)
                recover = f"{r.recover:6.2f} s after" if r.recover is not None else "never after"
                if r.in_flight:
                    took = f"{r.takeover:.2f} s" if r.takeover is not None else "never"
                    recover += f" the kill (its claims: {took})"
                else:
                    recover += " the kill"
                print(
                    f"round {no}: killed {r.victim} {r.delay:4.2f} s after healthy "
                    f"({r.sent_at_kill:3d}/{len(ids)} sent, {r.in_flight} claim(s) in flight)"
                    f"; all delivered {recover}; lost {r.lost}, "
                    f"duplicated {r.duplicated}, found in history {r.found_in_history}"
                    + (f", TRACEBACKS {r.tracebacks}" if r.tracebacks else ""),
                    flush=True,
                )
    finally:
        fake.stop()
        with db.write() as s:
            for link in s.scalars(select(ChannelLink)):
                for col, value in zip(
                    (*SCHEDULE, "schedule_changed_at"), saved[link.id], strict=True
                ):
                    setattr(link, col, value)
        if not args.keep_runs:
            clear_runs(db, first_id, every=True)
        db.dispose()

    lost = sum(r.lost for r in results)
    dup = sum(r.duplicated for r in results)
    takeovers = [r.takeover for r in results if r.takeover is not None]
    every = [r.recover for r in results if r.recover is not None]
    print(
        f"channels {len(ids)} x rounds {len(results)}: kills {len(results)}, "
        f"lost {lost}, duplicated {dup}, "
        f"claims in flight at a kill {sum(r.in_flight for r in results)}, "
        f"found already posted {sum(r.found_in_history for r in results)}, "
        f"tracebacks {sum(r.tracebacks for r in results)}"
    )
    if every:
        s_all = Summary.of(every)
        print(
            f"time to recover (kill -> all delivered), every kill: "
            f"p50 {s_all.p50:.2f} s, max {max(every):.2f} s (n={s_all.n})"
        )
    if takeovers:
        s_t = Summary.of(takeovers)
        print(
            f"dead replica's claims delivered by the survivor (kill -> sent): "
            f"p50 {s_t.p50:.2f} s, max {max(takeovers):.2f} s (n={s_t.n}; "
            f"bound lease + sweep = {args.lease + args.sweep:g} s from the claim)"
        )
    print(f"total {time.perf_counter() - started:.1f} s")
    ok = lost == 0 and dup == 0 and all(r.recover is not None for r in results)
    ok = ok and all(r.takeover is not None for r in results if r.in_flight)
    print("exactly once" if ok else "NOT exactly once")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
