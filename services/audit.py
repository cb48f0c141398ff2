"""Append-only, keyed hash-chained audit trail.

Every write appends an event in the caller's transaction. Appends are serialised by
updating the single `audit_head` row first (a row lock on PostgreSQL, the write lock on
SQLite), so concurrent writers — threads or replicas — extend one chain, never fork it.

Each event's hash is an HMAC-SHA256, under a key kept outside the database
(services/audit_keys.py), of its content and the previous event's hash; the event names
its key id, so keys can rotate. Someone who can rewrite the tables but lacks the key
cannot recompute the chain. Events written before migration 0008 keep their plain
SHA-256 hashes: they are verified as such up to `audit_head.keyed_from`, and the first
keyed event's HMAC covers the last of them. The database refuses UPDATE and DELETE of
events (triggers, migration 0008); the head only moves forward.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crobot.services import audit_keys
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


def _payload(ev: AuditEvent, *, keyed: bool) -> bytes:
    fields: dict[str, Any] = {
        "prev": ev.prev_hash,
        "seq": ev.seq,
        "at": ev.at.isoformat(),
        "actor": ev.actor,
        "action": ev.action,
        "subject_type": ev.subject_type,
        "subject_id": ev.subject_id,
        "study_id": ev.study_id,
        "before": ev.before,
        "after": ev.after,
    }
    if keyed:  # events before the cut-over (migration 0008) had neither field
        fields["key_id"] = ev.key_id
        fields["operator"] = ev.operator
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def legacy_hash(ev: AuditEvent) -> str:
    """Plain SHA-256, as every event was hashed before the chain was keyed."""
    return hashlib.sha256(_payload(ev, keyed=False)).hexdigest()


def keyed_hash(ev: AuditEvent, key: bytes) -> str:
    """HMAC-SHA256 under a key the database does not hold (services/audit_keys.py)."""
    return hmac.new(key, _payload(ev, keyed=True), hashlib.sha256).hexdigest()


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
    ring = audit_keys.keyring(session, create=True)  # before any lock: it may read a file
    session.flush()  # subject ids are known and the domain write precedes its audit line
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row missing: run `crobot db upgrade`")
    seq, prev_hash = head
    ev = AuditEvent(
        seq=seq,
        # Microsecond precision round-trips through every backend we support.
        at=utcnow(),
        actor=actor.label,
        # The process's own operator (the CLI's OS account) when the actor names none.
        operator=actor.operator or session.info.get("audit_operator"),
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        study_id=study_id,
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
        prev_hash=prev_hash,
        key_id=ring.current,
    )
    ev.hash = keyed_hash(ev, ring.current_key)
    session.add(ev)
    session.flush()  # the event exists before the head names it (a trigger checks)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=ev.hash))
    return ev


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None
    # Not a verdict: no key to check with (CLI: "cannot verify", exit status 2).
    unverifiable: bool = False
    legacy: int = 0  # events before the cut-over, checked as plain SHA-256

    def describe(self) -> str:
        if self.unverifiable:
            return f"CANNOT VERIFY: {self.reason}"
        if self.ok:
            legacy = (
                f" ({self.legacy} before the key cut-over checked as plain SHA-256)"
                if self.legacy
                else ""
            )
            return f"OK: {self.checked} audit events, keyed hash chain intact{legacy}"
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
    try:
        ring = audit_keys.keyring(session, create=False, fresh=True)
    except audit_keys.AuditKeyMissing as exc:
        return VerifyResult(False, 0, reason=str(exc), unverifiable=True)
    keyed_from = session.scalar(select(AuditHead.keyed_from).where(AuditHead.id == 1))
    if keyed_from is None:
        raise RuntimeError("audit_head row missing: run `crobot db upgrade`")
    prev = GENESIS
    expected_seq = 1
    checked = legacy = 0
    for ev in iter_events(session):
        if ev.seq != expected_seq:
            return VerifyResult(False, checked, expected_seq, "event missing (sequence gap)")
        if ev.prev_hash != prev:
            return VerifyResult(False, checked, ev.seq, "prev_hash does not match previous event")
        if ev.seq < keyed_from:
            if ev.key_id is not None or legacy_hash(ev) != ev.hash:
                return VerifyResult(False, checked, ev.seq, "content does not match its hash")
            legacy += 1
        else:
            if ev.key_id is None:
                return VerifyResult(False, checked, ev.seq, "event after the cut-over has no key")
            key = ring.key(ev.key_id)
            if key is None:
                return VerifyResult(
                    False,
                    checked,
                    ev.seq,
                    f"event seq {ev.seq} is signed with key {ev.key_id!r}, which is not "
                    "configured (CROBOT_AUDIT_KEY / CROBOT_AUDIT_KEY_FILE)",
                    unverifiable=True,
                )
            if not hmac.compare_digest(keyed_hash(ev, key), ev.hash):
                return VerifyResult(
                    False, checked, ev.seq, "content does not match its HMAC (edited)"
                )
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
    return VerifyResult(True, checked, legacy=legacy)


def event_at(session: Session, seq: int) -> AuditEvent | None:
    return session.scalars(select(AuditEvent).where(AuditEvent.seq == seq)).one_or_none()
