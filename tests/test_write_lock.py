"""SQLite writers queue for the file's write lock (storage/write_lock.py), not in SQLite's
sleeping busy handler: with that handler switched off (busy timeout 0), concurrent
writers of one process, and of several processes, still all succeed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from crobot.services import audit, kpis
from crobot.storage import write_lock
from crobot.storage.db import Database
from crobot.storage.models import KpiUpdate
from tests.conftest import APEX_PM, TODAY, World


def no_busy_wait(db: Database) -> Database:
    """SQLite's busy handler off for `db`'s writes: a writer that finds the database
    locked fails at once instead of sleeping and retrying."""

    @event.listens_for(db.write_engine, "connect")
    def _no_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    return db


@pytest.fixture
def sqlite_world(world: World) -> Iterator[World]:
    if not world.db.is_sqlite:
        pytest.skip("PostgreSQL queues writers on its own row locks")
    db = no_busy_wait(Database(world.db.url))
    yield World(db, world.study_id, world.sponsor_id, world.apex_id, world.lab_id)
    db.dispose()


def test_threads_take_turns_without_sqlite_busy_waiting(sqlite_world: World) -> None:
    world = sqlite_world
    apex = world.actor(APEX_PM)

    def reporter(week: int) -> None:
        for kpi in ("enrollment", "query_aging", "protocol_deviations"):
            with world.db.write() as s:
                kpis.report(
                    s, apex, today=TODAY, study="ONC-301", kpi=kpi, value=week,
                    period=f"2026-W{week:02d}",
                )  # fmt: skip

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(reporter, range(30, 42)))  # re-raises the first writer's error
    with world.db.read() as s:
        assert s.scalar(select(func.count()).select_from(KpiUpdate)) == 12 * 3
        assert audit.verify(s).ok


WRITER = """
import sys
from sqlalchemy import event, text
from crobot.storage.db import Database

db = Database(sys.argv[1])

@event.listens_for(db.write_engine, "connect")
def _no_busy_timeout(dbapi_conn, _record):
    dbapi_conn.execute("PRAGMA busy_timeout=0")

for i in range(int(sys.argv[2])):
    with db.write() as s:
        n = s.execute(text("SELECT count(*) FROM studies")).scalar()
        s.execute(text("UPDATE studies SET title = title WHERE id > :n"), {"n": n})
print("done")
"""


def test_processes_take_turns_on_one_file(sqlite_world: World) -> None:
    """`crobot serve --workers` and the CLI write to one SQLite file from several processes."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, sqlite_world.db.url, "150"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    with sqlite_world.db.write() as s:  # this process too, meanwhile
        s.execute(text("UPDATE studies SET title = title"))
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0 and out.strip() == b"done", err.decode()[-2000:]


def test_a_writer_that_waits_too_long_is_told_the_database_is_locked(tmp_path: Any) -> None:
    lock = write_lock.WriteLock(str(tmp_path / "x.write-lock"), timeout=0.3)
    other = write_lock.WriteLock(str(tmp_path / "x.write-lock"), timeout=0.3)  # as another process
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock.held():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"), other.held():
        pass
    assert 0.25 <= time.monotonic() - started < 5
    with pytest.raises(OperationalError, match="database is locked"), lock.held():
        pass  # a thread of the holder's own process waits on its thread lock
    release.set()
    thread.join(10)
    with other.held():  # free again
        pass
