"""When a write joins the audit chain: at its commit, after everything else it wrote.

The chain's head row serialises appends and stays locked until the transaction ends, so
`audit.record` only builds the event and the commit appends it (services/audit.py).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.services import audit, milestones
from crobot.storage.models import AuditEvent, AuditHead, Milestone
from tests.conftest import SPONSOR, TODAY, World


def _add(world: World, s: Session, name: str) -> Milestone:
    return milestones.add(
        s,
        world.actor(SPONSOR),
        today=TODAY,
        study="ONC-301",
        name=name,
        planned=TODAY + timedelta(days=7),
    )


def _events(world: World) -> list[AuditEvent]:
    with world.db.read() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_a_write_in_progress_does_not_hold_the_chain(world: World) -> None:
    """A transaction that recorded its event and goes on working does not stop another
    writer from appending and committing (on PostgreSQL; SQLite has one writer at a time
    whatever the chain does, so there the second writer waits for the first)."""
    if world.db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time")
    recorded, other_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with world.db.write() as s:
                _add(world, s, "Slow one")
                recorded.set()
                # The other writer commits while this transaction is still open.
                assert other_done.wait(10), "the other writer was blocked by this one"
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert recorded.wait(10)
    with world.db.write() as s:
        _add(world, s, "Quick one")
    other_done.set()
    thread.join(10)
    assert errors == []
    events = _events(world)
    names = [(e.after or {}).get("name") for e in events if e.action == "milestone.create"]
    assert names == ["Quick one", "Slow one"]  # in the order they committed
    with world.db.read() as s:
        assert audit.verify(s).ok


def test_events_get_their_place_at_commit_in_one_batch(world: World) -> None:
    before = len(_events(world))
    with world.db.write() as s:
        first = _add(world, s, "One")
        _add(world, s, "Two")
        ev = audit.record(s, world.actor(SPONSOR), "milestone.update", "milestone", first.id)
        assert ev.seq is None  # not in the chain yet
        head = s.scalar(select(AuditHead.seq))  # a query on the chain appends them first
        assert head == before + 3 and ev.seq == before + 3
    events = _events(world)
    assert len(events) == before + 3
    assert [e.seq for e in events] == list(range(1, before + 4))
    assert events[-3].at <= events[-2].at <= events[-1].at
    with world.db.read() as s:
        assert audit.verify(s).ok


def test_a_rolled_back_write_leaves_no_event(world: World) -> None:
    before = len(_events(world))
    with pytest.raises(RuntimeError), world.db.write() as s:
        _add(world, s, "Never")
        raise RuntimeError("changed my mind")
    with world.db.write() as s:
        _add(world, s, "Kept")
    events = _events(world)
    assert len(events) == before + 1 and (events[-1].after or {})["name"] == "Kept"
    with world.db.read() as s:
        assert audit.verify(s).ok


def test_a_rolled_back_savepoint_drops_only_its_own_events(world: World) -> None:
    before = len(_events(world))
    with world.db.write() as s:
        _add(world, s, "Outer")
        with pytest.raises(RuntimeError), s.begin_nested():
            _add(world, s, "Inner")
            # The chain is read inside the savepoint: "Outer" and "Inner" are appended
            # there, and rolled back with it; "Outer" must still reach the chain.
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == before + 2
            raise RuntimeError("row refused")
        with s.begin_nested():
            _add(world, s, "Second inner")
    names = [(e.after or {}).get("name") for e in _events(world)[before:]]
    assert names == ["Outer", "Second inner"]
    with world.db.read() as s:
        assert audit.verify(s).ok
        assert s.scalar(select(func.count()).select_from(Milestone)) == 2
