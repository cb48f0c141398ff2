"""Engine and session factory.

SQLite: foreign keys on, WAL, a busy timeout, and write transactions opened with
`BEGIN IMMEDIATE` so that a read-then-write transaction never fails half-way with a
stale snapshot when another thread or process wrote in between; writers queue for the
file's write lock (storage/write_lock.py) before they begin, rather than in SQLite's
sleeping busy handler. PostgreSQL: one pooled engine for both kinds of work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from crobot.storage import write_lock


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, begin: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if ":memory:" not in url and "mode=memory" not in url:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Owns the engines; hands out sessions for reading and for writing."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        audit_keys: object = None,
        operator: str | None = None,
    ) -> None:
        self.url = normalise_url(url)
        # Handed to the audit chain through each session's `info`: where its keys come
        # from (services.audit_keys.KeySource; None: the environment's), and who runs
        # this process when it is not a Slack user's request (the CLI's OS account).
        info: dict[str, object] = {}
        if audit_keys is not None:
            info["audit_keys"] = audit_keys
        if operator is not None:
            info["audit_operator"] = operator
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock: write_lock.WriteLock | None = None
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, "BEGIN", echo=echo)
            self.write_engine = _sqlite_engine(self.url, "BEGIN IMMEDIATE", echo=echo)
            self._write_lock = write_lock.for_database(make_url(self.url).database)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20
            )
            self.write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False, info=info)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception."""
        with self.write_turn(), self._write() as session, session.begin():
            yield session

    def write_turn(self) -> AbstractContextManager[object]:
        """This process's turn to write (SQLite: one writer per file); nothing to wait
        for on PostgreSQL."""
        return self._write_lock.held() if self._write_lock is not None else nullcontext()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
