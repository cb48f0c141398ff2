"""Whole-database snapshots, to assert that a rejected input wrote nothing at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crobot.storage.db import Database
from crobot.storage.models import Base, SeenRequest

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


def assert_unchanged(db: Database, before: dict[str, list[tuple[Any, ...]]]) -> None:
    after = snapshot(db)
    changed = [name for name in before if before[name] != after.get(name)]
    assert not changed, f"rejected input changed tables: {changed}"
