"""Append-only, keyed hash-chained audit trail.

Every write appends an event in the caller's transaction. Appends are serialised by
updating the single `audit_head` row first (a row lock on PostgreSQL, the write lock on
SQLite), so concurrent writers — threads or replicas — extend one chain, never fork it.

That lock is held until the transaction ends, so the chain is extended as late as
possible: `record` only builds the event, and the transaction's pending events are
appended, in one batch, when it commits (`before_commit`) — after everything else it
wrote, so the head is locked only for the append itself and the commit, not while the
rest of the transaction runs (issue 18: writes queued on that one row). Same
transaction, same atomicity, same chain: an event is in the chain exactly when its write
committed. A query on the audit tables inside the transaction appends its pending
events first (`do_orm_execute`), so the transaction reads what it recorded; so does
`seal`, for a caller that needs an event's sequence number at once. Events recorded
inside a savepoint that rolls back are dropped with it.

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
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql import Executable
from sqlalchemy.sql.util import find_tables

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
    """Record an event of this transaction's write; it joins the chain at commit (its
    `seq`, `at` and hashes are set then, or by `seal`)."""
    audit_keys.keyring(session, create=True)  # fail now, not at commit: it may read a file
    ev = AuditEvent(
        actor=actor.label,
        # The process's own operator (the CLI's OS account) when the actor names none.
        operator=actor.operator or session.info.get("audit_operator"),
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        study_id=study_id,
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
    )
    _chain_state(session).pending.append(_Recorded(next(_numbers), ev))
    return ev


def seal(session: Session) -> None:
    """Append this transaction's recorded events to the chain now (their `seq` is needed
    before the commit); the head stays locked until the transaction ends."""
    state = session.info.get(STATE)
    if not isinstance(state, _ChainState) or not state.pending:
        return
    recorded, state.pending = state.pending, []
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        state.sealed.append((savepoint, recorded))
    events = [r.event for r in recorded]
    ring = audit_keys.keyring(session, create=True)
    session.flush()  # the domain writes precede their audit lines
    head = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + len(events))
        .returning(AuditHead.seq, AuditHead.hash)
    ).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row missing: run `crobot db upgrade`")
    last_seq, prev_hash = head
    # Microsecond precision round-trips through every backend we support; stamped under
    # the head's lock, so `at` never goes backwards along the chain.
    at = utcnow()
    for seq, ev in enumerate(events, start=last_seq - len(events) + 1):
        ev.seq, ev.at, ev.prev_hash, ev.key_id = seq, at, prev_hash, ring.current
        ev.hash = prev_hash = keyed_hash(ev, ring.current_key)
    session.add_all(events)
    session.flush()  # the events exist before the head names the last one (a trigger checks)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev_hash))


# --- the transaction's events not yet in the chain --------------------------------------
STATE = "crobot_audit_chain"
_numbers = itertools.count()  # the order events were recorded in, process-wide


@dataclass(frozen=True)
class _Recorded:
    number: int
    event: AuditEvent


@dataclass
class _ChainState:
    """A session's recorded events: those waiting for the commit, the savepoints open
    (with the first number recorded inside each), and those appended inside a savepoint
    (a rollback of it takes them out of the chain again)."""

    pending: list[_Recorded] = field(default_factory=list)
    marks: dict[SessionTransaction, int] = field(default_factory=dict)
    sealed: list[tuple[SessionTransaction, list[_Recorded]]] = field(default_factory=list)


def _chain_state(session: Session) -> _ChainState:
    state = session.info.get(STATE)
    if not isinstance(state, _ChainState):
        state = session.info[STATE] = _ChainState()
    return state


@event.listens_for(Session, "before_commit")
def _append_at_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its events wait for the transaction's commit
    seal(session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        _chain_state(session).marks[transaction] = next(_numbers)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back: the events recorded inside it are dropped; events
    recorded before it but appended inside it (a query on the chain) were rolled back with
    it, so they wait again, as recorded. (The whole transaction: `_forget`.)"""
    state = session.info.get(STATE)
    if not isinstance(state, _ChainState) or not previous.nested:
        return
    mark = state.marks.pop(previous, -1)
    undone = [(tx, rs) for tx, rs in state.sealed if _within(tx, previous)]
    state.sealed = [(tx, rs) for tx, rs in state.sealed if not _within(tx, previous)]
    restored = [
        _Recorded(r.number, _unsealed(r.event)) for _, rs in undone for r in rs if r.number < mark
    ]
    kept = [r for r in state.pending if r.number < mark]
    state.pending = sorted(restored + kept, key=lambda r: r.number)


def _within(transaction: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False


def _unsealed(ev: AuditEvent) -> AuditEvent:
    """The same event, as recorded (its place in the chain to be given again)."""
    return AuditEvent(
        actor=ev.actor,
        operator=ev.operator,
        action=ev.action,
        subject_type=ev.subject_type,
        subject_id=ev.subject_id,
        study_id=ev.study_id,
        before=ev.before,
        after=ev.after,
    )


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    """The transaction ended (committed: its events are in the chain; rolled back or
    closed: none of them is)."""
    if transaction.parent is None:
        session.info.pop(STATE, None)


@event.listens_for(Session, "do_orm_execute")
def _append_before_reading_the_chain(orm_state: ORMExecuteState) -> None:
    """A query on the audit tables in a transaction with recorded events sees them."""
    state = orm_state.session.info.get(STATE)
    if isinstance(state, _ChainState) and state.pending and _reads_chain(orm_state.statement):
        seal(orm_state.session)


CHAIN_TABLES = frozenset({AuditEvent.__table__, AuditHead.__table__})


def _reads_chain(statement: Executable) -> bool:
    # Every table the statement names, in any clause (a count's FROM, a subquery).
    found = find_tables(statement, check_columns=True, include_aliases=True, include_joins=True)  # type: ignore[arg-type]
    return any(t in CHAIN_TABLES for t in found)


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
