"""The router's ack -> lazy handoff, independent of Slack."""

from __future__ import annotations


def test_pending_plans_handoff_waits_and_prunes() -> None:
    import threading
    import time as _time

    from crobot.handlers.commands.router import CommandRequest, PendingPlans, Plan

    pending = PendingPlans(wait=2.0, ttl=0.05)
    req = CommandRequest("T1", "U1", "C1", "status")
    got: list[Plan | None] = []
    t = threading.Thread(target=lambda: got.append(pending.take(req.key)))
    t.start()  # the lazy phase may start before the ack phase has settled
    _time.sleep(0.05)
    plan = Plan(req)
    pending.settle(req.key, plan)
    t.join(timeout=2)
    assert got == [plan] and len(pending) == 0
    pending.settle("orphan", None)  # nobody takes it...
    _time.sleep(0.1)
    pending.settle("other", None)  # ...and it is dropped on the next settle
    assert len(pending) == 1
