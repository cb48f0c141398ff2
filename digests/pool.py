"""The digest fan-out on several processes: one interpreter per core for compose and render.

Composing and rendering a digest is Python CPU (issue 18: one core busy, the other idle
but for the database), so one process cannot go faster with more threads. `DigestPool`
keeps `processes` worker processes, started once with "spawn" (a fresh interpreter: a
fork of a process running Bolt's and the scheduler's threads could inherit a held lock,
and every worker builds its own engine and pool, never a copy of the parent's). A fan-out
splits its channels into one share per process, a study's channels in the same share (the
same study's rows, warm in that process's and the database's caches), and each process
runs the thread fan-out of `digests/fanout.py` on its share.

Exactly once does not depend on the split: every digest is claimed in the database
(`Delivery`), so two processes, or two replicas each with a pool, never both post one.
A channel's messages are all posted by the process that has its link, so its per-channel
pacing holds. With one process, nothing is started: the fan-out runs in the caller.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import select

from crobot.digests.delivery import ChannelPacer, Delivery, Outcome, delivery_client
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import ChannelLink

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def default_processes() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build its own runtime and Delivery (picklable)."""

    database_url: str
    slack_url: str
    token: str | None
    lease_seconds: float = 120.0
    threads: int = 2  # per process: one composes while another waits on the database
    pace_seconds: float = 1.0  # per channel (Slack's ~1 message per second)
    slack_timeout: int = 30
    # A fixed clock (benchmarks and tests compose as of a date); None: the wall clock.
    now: datetime | None = None


# Per worker process: its database (engine and pool), built on first use, kept for the
# pool's life.
_databases: dict[str, Database] = {}


def _deliver_share(spec: WorkerSpec, items: list[tuple[int, str]]) -> list[Outcome]:
    """A worker process's share of a fan-out."""
    return _timed_share(spec, items)[0]


def _timed_share(spec: WorkerSpec, items: list[tuple[int, str]]) -> tuple[list[Outcome], float]:
    """A worker process's share, and the CPU seconds it took there (the pool's account)."""
    cpu = time.process_time()
    db = _databases.get(spec.database_url)
    if db is None:
        db = _databases[spec.database_url] = Database(spec.database_url)
    fixed = spec.now
    runtime = Runtime(db, outbox_lease=timedelta(seconds=spec.lease_seconds))
    if fixed is not None:
        runtime.now = lambda: fixed
    client = delivery_client(
        WebClient(token=spec.token, base_url=spec.slack_url, timeout=spec.slack_timeout)
    )
    delivery = Delivery(
        runtime, client, lease=runtime.outbox_lease, pacer=ChannelPacer(spec.pace_seconds)
    )
    outcomes = delivery.send_links(items, workers=spec.threads)
    return outcomes, time.process_time() - cpu


def _die_with_parent(parent: int) -> None:
    """Worker initializer: a worker ends when its parent process does, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG), so a killed replica does not go on delivering through
    orphaned workers; elsewhere a worker ends once its current share is done."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _warm(spec: WorkerSpec) -> int:
    """Start-up work done before the first fan-out: imports, the engine, a connection."""
    db = _databases.get(spec.database_url)
    if db is None:
        db = _databases[spec.database_url] = Database(spec.database_url)
    db.ping()
    return os.getpid()


class DigestPool:
    """`processes` worker processes delivering digests; `deliver` blocks until done."""

    def __init__(
        self, spec: WorkerSpec, processes: int | None = None, *, local: Delivery | None = None
    ) -> None:
        self.spec = spec
        self.processes = max(1, processes if processes is not None else default_processes())
        # One process: the fan-out runs here, on this Delivery (the caller's runtime and
        # client) when given.
        self.local = local
        self._pool: ProcessPoolExecutor | None = None
        self.worker_cpu = 0.0  # CPU seconds the worker processes spent delivering so far

    def start(self) -> DigestPool:
        """Start the worker processes and wait until each is ready (its engine built)."""
        if self.processes > 1 and self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=ctx,
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
            futures = [self._pool.submit(_warm, self.spec) for _ in range(self.processes)]
            pids = {f.result() for f in futures}
            log.info("digest pool: %d worker processes (%d warmed)", self.processes, len(pids))
        return self

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def deliver(self, db: Database, items: list[tuple[int, str]]) -> list[Outcome]:
        """Deliver (link id, period key) digests; outcomes in `items` order."""
        if self.processes == 1 or len(items) <= 1:
            if self.local is not None:
                return self.local.send_links(items, workers=self.spec.threads)
            return _deliver_share(self.spec, items)
        self.start()
        assert self._pool is not None
        shares = split_by_study(db, items, self.processes)
        futures = [self._pool.submit(_timed_share, self.spec, share) for share in shares]
        by_item: dict[tuple[int, str], Outcome] = {}
        for share, future in zip(shares, futures, strict=True):
            outcomes, cpu = future.result()
            self.worker_cpu += cpu
            by_item.update(zip(share, outcomes, strict=True))
        return [by_item[item] for item in items]


def split_by_study(
    db: Database, items: list[tuple[int, str]], parts: int
) -> list[list[tuple[int, str]]]:
    """`items` in at most `parts` shares of about equal size, each study's channels in one
    share (largest study first into the smallest share)."""
    ids = sorted({link_id for link_id, _ in items})
    with db.read() as s:
        rows = s.execute(
            select(ChannelLink.id, ChannelLink.study_id).where(ChannelLink.id.in_(ids))
        )
        study_of: dict[int, int] = {}
        for link_id, study_id in rows:
            study_of[link_id] = study_id
    studies: dict[int | None, list[tuple[int, str]]] = defaultdict(list)
    for item in items:
        studies[study_of.get(item[0])].append(item)
    parts = max(1, parts)
    # A study with more channels than a fair share is cut: balance before locality.
    fair = -(-len(items) // parts)
    groups = [g[i : i + fair] for g in studies.values() for i in range(0, len(g), fair)]
    shares: list[list[tuple[int, str]]] = [[] for _ in range(parts)]
    for group in sorted(groups, key=len, reverse=True):
        min(shares, key=len).extend(group)
    return [share for share in shares if share]
