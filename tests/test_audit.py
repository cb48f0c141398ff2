"""The audit trail: every write is chained; verify names the first broken link."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, text, update

from crobot.services import approvals, audit, audit_keys, export, kpis, milestones
from crobot.storage.models import AuditEvent, AuditHead
from tests.conftest import APEX_PM, APPROVER, SPONSOR, TODAY, World
from tests.dbstate import owner_session


def _add_some(world: World, n: int = 3) -> None:
    with world.db.write() as s:
        for i in range(n):
            milestones.add(
                s,
                world.actor(SPONSOR),
                today=TODAY,
                study="ONC-301",
                name=f"M{i}",
                planned=TODAY + timedelta(days=i),
            )


def test_chain_is_intact_and_links(world: World) -> None:
    _add_some(world)
    with world.db.read() as s:
        result = audit.verify(s)
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert result.ok and result.checked == len(events) == 17
    assert events[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    last = events[-1]
    assert last.action == "milestone.create" and last.actor == f"T1:{SPONSOR}"
    assert last.after is not None and last.after["name"] == "M2"


def test_edited_row_is_named_by_verify(world: World) -> None:
    _add_some(world)
    with owner_session(world.db) as s:  # the app's own sessions may not UPDATE (0008)
        s.execute(
            update(AuditEvent).where(AuditEvent.seq == 16).values(after={"name": "M1-forged"})
        )
    with world.db.read() as s:
        result = audit.verify(s)
    assert not result.ok and result.broken_seq == 16
    assert "edited" in result.describe()


def test_rewrite_by_script_without_the_key_fails_verify(world: World) -> None:
    """The inspector's consultant's script: on a copy of the database, change who
    approved, recompute every hash from there on, and the head. Without the key the HMACs
    cannot be recomputed: neither SHA-256 (the old scheme) nor a guessed key pass."""
    approval_id = _approve_one(world)
    for rehash in (audit.legacy_hash, lambda ev: audit.keyed_hash(ev, b"guessed" * 8)):
        _rewrite_approver(world, approval_id, rehash)
        with world.db.read() as s:
            result = audit.verify(s)
        assert not result.ok and not result.unverifiable, result.describe()
        assert "HMAC" in (result.reason or "")


def test_the_same_rewrite_with_the_key_passes_so_the_key_is_what_protects(
    world: World,
) -> None:
    """Control for the test above: it is the key, not a slip in the script, that fails it."""
    approval_id = _approve_one(world)
    with world.db.read() as s:
        key = audit_keys.keyring(s, create=False).current_key
    _rewrite_approver(world, approval_id, lambda ev: audit.keyed_hash(ev, key))
    with world.db.read() as s:
        assert audit.verify(s).ok
        forged = s.scalars(select(AuditEvent).where(AuditEvent.action == "approval.approve")).one()
    assert forged.actor == "T1:UFORGER"


def _approve_one(world: World) -> int:
    with world.db.write() as s:
        reported = kpis.report(
            s, world.actor(APEX_PM), today=TODAY, study="ONC-301", kpi="enrollment", value=7
        )
    assert reported.approval_id is not None
    with world.db.write() as s:
        approvals.decide(s, world.actor(APPROVER), reported.approval_id, approve=True)
    return reported.approval_id


def _rewrite_approver(world: World, approval_id: int, rehash: Callable[[AuditEvent], str]) -> None:
    with owner_session(world.db) as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        target = next(
            e for e in events if e.action == "approval.approve" and e.subject_id == str(approval_id)
        )
        prev = target.prev_hash
        for ev in events[events.index(target) :]:
            if ev is target:
                ev.actor = "T1:UFORGER"
            ev.prev_hash = prev
            ev.hash = prev = rehash(ev)
        s.flush()
        s.execute(update(AuditHead).values(hash=prev))


def test_deleted_middle_and_tail_rows_are_detected(world: World) -> None:
    _add_some(world)
    with owner_session(world.db) as s:
        s.execute(text("DELETE FROM audit_events WHERE seq = 17"))
    with world.db.read() as s:
        tail = audit.verify(s)
    assert not tail.ok and "head" in (tail.reason or "")
    with owner_session(world.db) as s:
        s.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    with world.db.read() as s:
        gap = audit.verify(s)
    assert not gap.ok and gap.broken_seq == 5 and "gap" in (gap.reason or "")


def test_concurrent_writers_extend_one_chain(world: World) -> None:
    apex = world.actor(APEX_PM)
    errors: list[BaseException] = []

    def worker(week: int) -> None:
        try:
            for _ in range(3):
                with world.db.write() as s:
                    kpis.report(
                        s,
                        apex,
                        today=TODAY,
                        study="ONC-301",
                        kpi="query_aging",
                        value=week,
                        period=f"2026-W{week:02d}",
                    )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(40, 46)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with world.db.read() as s:
        result = audit.verify(s)
    # 6 threads x 3 reports x (report + approval request) on top of the world's 14 events.
    assert result.ok and result.checked == 14 + 6 * 3 * 2


def test_export_carries_hashes_and_filters_by_study(world: World) -> None:
    _add_some(world, 2)
    with world.db.read() as s:
        out = io.StringIO()
        n = export.export_audit(s, out, fmt="json", study="ONC-301")
        rows = json.loads(out.getvalue())
        csv_out = io.StringIO()
        export.export_audit(s, csv_out, fmt="csv")
    # study, 2 vendors, 4 channel links, 2 milestones; org and person events carry no study
    assert n == len(rows) == 9
    assert all(r["study_id"] == world.study_id for r in rows)
    assert rows[-1]["after"]["name"] == "M1" and len(rows[-1]["hash"]) == 64
    header, *lines = csv_out.getvalue().strip().splitlines()
    assert header.startswith("seq,at,actor,action") and len(lines) == 16
