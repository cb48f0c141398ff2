"""Bulk inserts that know their ids without RETURNING (COPY on PostgreSQL).

An INSERT of many rows that must return their ids in order (`RETURNING … sort_by_parameter
_order`) is sent one row at a time on SQLite: SQLAlchemy cannot rely on the order of a
batch's RETURNING rows there. So the ids are taken first — on PostgreSQL from the table's
sequence (as the inserts would take them), on SQLite as the next ones after the largest
(the caller's write transaction holds SQLite's one write lock, so nobody else can take
them meanwhile) — and the rows go in with them, as one executemany.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, func, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from crobot.storage.models import Base


def reserve_ids(session: Session, model: type[Base], n: int) -> list[int]:
    """`n` unused ids of `model`'s integer primary key `id`, for this write transaction."""
    table = _table(model)
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": n},
        )
        return [int(i) for (i,) in rows]
    last = session.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(last + 1, last + 1 + n))


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """`rows` (ids included, every row the same columns) into `model`'s table, in the
    session's transaction, no ORM objects: COPY on PostgreSQL (several times an
    executemany's rate), one executemany elsewhere."""
    if not rows:
        return
    table = _table(model)
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    types = [table.c[name].type for name in columns]
    raw = session.connection().connection.driver_connection
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row([_copy_value(row[c], t) for c, t in zip(columns, types, strict=True)])


def _copy_value(value: Any, kind: TypeEngine[Any]) -> Any:
    """What COPY takes for a column: enums by their stored value, JSON as its text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(kind, JSON) and value is not None:
        return json.dumps(value)
    return value


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)
