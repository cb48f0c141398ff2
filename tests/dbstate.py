"""Whole-database snapshots, to assert that a rejected input wrote nothing at all."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from crobot.storage.db import Database
from crobot.storage.models import AuditEvent, AuditHead, Base, SeenRequest

# Transport bookkeeping, not the record: every accepted request leaves its signature.
NOT_THE_RECORD = {SeenRequest.__tablename__}


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_THE_RECORD:
                continue
            pk = list(table.primary_key.columns)
            rows = s.execute(select(table).order_by(*pk)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def assert_unchanged(
    db: Database, before: dict[str, list[tuple[Any, ...]]], *, audited: Collection[str] = ()
) -> None:
    """Nothing was written; but for audit events of the `audited` actions, which a refusal
    records about itself (e.g. `approval.refused`), appended to the chain."""
    after = snapshot(db)
    chain = {AuditEvent.__tablename__, AuditHead.__tablename__} if audited else set()
    changed = [name for name in before if name not in chain and before[name] != after.get(name)]
    assert not changed, f"rejected input changed tables: {changed}"
    if audited:
        old, new = before[AuditEvent.__tablename__], after[AuditEvent.__tablename__]
        assert new[: len(old)] == old, "audit events changed"
        action = list(AuditEvent.__table__.columns.keys()).index("action")
        added = {row[action] for row in new[len(old) :]}
        assert added <= set(audited), f"rejected input recorded {added - set(audited)}"


@contextmanager
def owner_session(db: Database) -> Iterator[Session]:
    """One write transaction with the audit triggers suspended, as the database's owner
    (or an attacker holding its superuser) could: PostgreSQL skips triggers for it
    (`session_replication_role`, superuser only); SQLite's are dropped and recreated
    from their own definitions before the commit. The app's role can do neither."""
    with db.write() as s:
        if db.is_sqlite:
            triggers = s.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, _ in triggers:
                s.execute(text(f"DROP TRIGGER {name}"))
            yield s
            for _, sql in triggers:
                s.execute(text(sql))
        else:
            s.execute(text("SET LOCAL session_replication_role = replica"))
            yield s
            s.execute(text("SET LOCAL session_replication_role = origin"))
