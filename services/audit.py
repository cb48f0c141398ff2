"""Append-only, SHA-256 hash-chained audit trail.

Every write appends an event in the caller's transaction. Appends are serialised by
updating the single `audit_head` row first (a row lock on PostgreSQL, the write lock on
SQLite), so concurrent writers — threads or replicas — extend one chain, never fork it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crobot.services.actor import Actor
from crobot.storage.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def snapshot(obj: Any, *fields: str) -> dict[str, Any]:
    """A JSON-safe picture of selected attributes of a model, for before/after."""
    return {f: _jsonable(getattr(obj, f)) for f in fields}


def _digest(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    study_id: int | None,
    before: Any,
    after: Any,
) -> str:
    payload = json.dumps(
        {
            "prev": prev_hash,
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "study_id": study_id,
            "before": before,
            "after": after,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def event_hash(ev: AuditEvent) -> str:
    return _digest(
        ev.prev_hash,
        ev.seq,
        ev.at,
        ev.actor,
        ev.action,
        ev.subject_type,
        ev.subject_id,
        ev.study_id,
        ev.before,
        ev.after,
    )


def record(
    session: Session,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: object | None = None,
    *,
    study_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    session.flush()  # subject ids are known and the domain write precedes its audit line
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row missing: run `crobot db upgrade`")
    seq, prev_hash = head
    # Microsecond precision round-trips through every backend we support.
    at = utcnow()
    before_j = _jsonable(before) if before is not None else None
    after_j = _jsonable(after) if after is not None else None
    sid = None if subject_id is None else str(subject_id)
    digest = _digest(
        prev_hash, seq, at, actor.label, action, subject_type, sid, study_id, before_j, after_j
    )
    ev = AuditEvent(
        seq=seq,
        at=at,
        actor=actor.label,
        action=action,
        subject_type=subject_type,
        subject_id=sid,
        study_id=study_id,
        before=before_j,
        after=after_j,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(ev)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=digest))
    session.flush()
    return ev


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"OK: {self.checked} audit events, hash chain intact"
        return f"BROKEN at event seq {self.broken_seq}: {self.reason}"


def iter_events(session: Session, batch: int = 2000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session) -> VerifyResult:
    prev = GENESIS
    expected_seq = 1
    checked = 0
    for ev in iter_events(session):
        if ev.seq != expected_seq:
            return VerifyResult(False, checked, expected_seq, "event missing (sequence gap)")
        if ev.prev_hash != prev:
            return VerifyResult(False, checked, ev.seq, "prev_hash does not match previous event")
        if event_hash(ev) != ev.hash:
            return VerifyResult(False, checked, ev.seq, "content does not match its hash (edited)")
        prev = ev.hash
        expected_seq += 1
        checked += 1
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq != checked or head.hash != prev:
        return VerifyResult(
            False,
            checked,
            checked + 1,
            "chain head does not match last event (events deleted from the end?)",
        )
    return VerifyResult(True, checked)
