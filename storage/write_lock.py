"""One SQLite writer at a time, queued here instead of in SQLite's busy handler.

SQLite allows one write transaction per database file. A second `BEGIN IMMEDIATE` waits
in SQLite's busy handler, which sleeps and retries (1, 2, 5, … up to 100 ms between
tries): under concurrent writes most writer threads sleep past the moment the lock was
free, and a write's latency grows far beyond its own cost (issue 18: p99 2–4 s at 8
concurrent users for ~10 ms writes). So every write transaction of a process first takes
that database file's lock here: threads of one process wait on a `threading.Lock` (woken
when it is released), processes on the same file (`crobot serve --workers`, the CLI) on an
`flock` of a file beside the database. SQLite's busy timeout stays as the fallback for
writers that do not take this lock (another program, Slack's OAuth stores).

PostgreSQL needs none of this: its row locks queue writers without polling.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

LOCK_SUFFIX = ".write-lock"
# As SQLite's busy timeout (storage/db.py): after that long, "database is locked".
TIMEOUT = 30.0
# Between two tries of another process's flock: short, since the holder's transaction is
# milliseconds long, and only one thread per process polls (the others wait on the
# thread lock).
POLL = 0.0005
POLL_MAX = 0.002


class WriteLock:
    """The write lock of one SQLite database file, shared by every `Database` of this
    process on that file. `path` None (an in-memory database): threads only."""

    def __init__(self, path: str | None, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0  # the process that opened `_fd` (a forked child opens its own)
        self._owner: int | None = None  # thread id holding it

    @contextmanager
    def held(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:
            # A write opened inside another write of the same thread: SQLite's own lock
            # decides, as before (waiting here would wait for ourselves).
            yield
            return
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            raise _locked()
        try:
            if self.path is not None:
                self._lock_file(deadline)
            self._owner = me
            try:
                yield
            finally:
                self._owner = None
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self, deadline: float) -> None:
        if self._fd is None or self._fd_pid != os.getpid():
            # A descriptor inherited through fork shares its lock with the parent: a
            # process takes the lock through a descriptor of its own.
            assert self.path is not None
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # no folder yet, no rights: SQLite could not open it either
                raise _error(f"unable to open the database's write lock: {exc.strerror}") from exc
            self._fd_pid = os.getpid()
        wait = POLL
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise _locked()
            time.sleep(wait)
            wait = min(POLL_MAX, wait * 2)


def _locked() -> OperationalError:
    """What SQLite says when its own busy timeout runs out: callers already handle it."""
    return _error("database is locked")


def _error(message: str) -> OperationalError:
    # As SQLite's own errors reach callers: "database unavailable" to them.
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(message))


_locks: dict[str, WriteLock] = {}
_locks_guard = threading.Lock()


def for_database(database: str | None) -> WriteLock:
    """The process's lock for a SQLite database file (by real path), or a lock of its own
    for an in-memory database (`database` None or ":memory:")."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return WriteLock(None)
    key = os.path.realpath(database)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = WriteLock(key + LOCK_SUFFIX)
        return lock
