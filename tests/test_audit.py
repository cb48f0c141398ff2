"""The audit trail: every write is chained; verify names the first broken link."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta

from sqlalchemy import select, text, update

from crobot.services import audit, export, kpis, milestones
from crobot.storage.models import AuditEvent
from tests.conftest import APEX_PM, SPONSOR, TODAY, World


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
    with world.db.write() as s:
        s.execute(
            update(AuditEvent).where(AuditEvent.seq == 16).values(after={"name": "M1-forged"})
        )
    with world.db.read() as s:
        result = audit.verify(s)
    assert not result.ok and result.broken_seq == 16
    assert "edited" in result.describe()


def test_deleted_middle_and_tail_rows_are_detected(world: World) -> None:
    _add_some(world)
    with world.db.write() as s:
        s.execute(text("DELETE FROM audit_events WHERE seq = 17"))
    with world.db.read() as s:
        tail = audit.verify(s)
    assert not tail.ok and "head" in (tail.reason or "")
    with world.db.write() as s:
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
