"""A signed Slack request is accepted once: the same signature again is a replay.

Slack signs `v0:{timestamp}:{body}` and Bolt refuses timestamps older than five minutes,
but within those five minutes a captured request would verify again (three identical
`action add` requests created three actions). Each accepted signature is stored, shared by
every replica, and kept a little longer than the window; a repeat is refused.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crobot.storage.models import SeenRequest

WINDOW = timedelta(minutes=5)
KEEP = WINDOW + timedelta(minutes=1)  # a little clock skew between Slack and us
# Expired signatures are deleted at most this often per process, not on every request:
# the DELETE was a third of the replay check's cost (benchmarks/RESULTS.md, section 8),
# and a signature kept a minute longer than KEEP is refused all the same.
PRUNE_EVERY = timedelta(minutes=1)


class ReplayGuard:
    """`first_sighting` for one process, pruning expired signatures every PRUNE_EVERY."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_prune: datetime | None = None

    def first_sighting(self, session: Session, signature: str, *, now: datetime) -> bool:
        with self._lock:
            prune = self._next_prune is None or now >= self._next_prune
            if prune:
                self._next_prune = now + PRUNE_EVERY
        return first_sighting(session, signature, now=now, prune=prune)


def first_sighting(session: Session, signature: str, *, now: datetime, prune: bool = True) -> bool:
    """Record `signature`; False when it was seen before (a replay). `prune`: also delete
    the signatures older than KEEP."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(SeenRequest)
        .values(signature=signature[:80], seen_at=now)
        .on_conflict_do_nothing(index_elements=["signature"])
        .returning(SeenRequest.signature)  # a row only when it was inserted (rowcount is
        # not reliable for an ORM-executed INSERT … ON CONFLICT on psycopg)
    )
    fresh = session.execute(stmt).first() is not None
    if fresh and prune:
        session.execute(delete(SeenRequest).where(SeenRequest.seen_at < now - KEEP))
    return fresh
