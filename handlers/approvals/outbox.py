"""Deliver an approval's outbox rows right after the commit that wrote them (the kick).

The rows themselves are durable (services/approval_log.py); this only saves waiting for
the scheduler's sweep. `runtime.approval_requested(id)` / `approval_decided(id)` submit
the approval to a small private pool, never Bolt's listener workers nor the caller's
thread, so a slow Slack never delays an ack. Whatever is still pending afterwards (Slack
down, rate limited, this process killed) is left to the sweep (bot/scheduling.py).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_sdk import WebClient

from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.services import qtl
from crobot.services.approval_log import outbox_target
from crobot.services.runtime import Runtime

log = logging.getLogger(__name__)


class ApprovalOutbox:
    def __init__(self, runtime: Runtime, client: WebClient, *, workers: int = 2) -> None:
        # A request, its decision's notice and a neighbour's request may come close
        # together in one sponsor channel: a short burst is within Slack's limits.
        self.delivery = Delivery(
            runtime,
            delivery_client(client),
            lease=runtime.outbox_lease,
            pacer=ChannelPacer(burst=3),
        )
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crobot-outbox")

    def kick(self, approval_id: int) -> None:
        self.pool.submit(self.deliver, approval_id)

    def deliver(self, approval_id: int) -> None:
        """Deliver the approval's pending rows, and the rows that delivering them adds (a
        request that lands after the decision needs rewriting), until none is left."""
        try:
            while self._deliver_once(approval_id):
                pass
            # A value approved beyond a quality tolerance limit: its breach or warning too.
            with self.delivery.runtime.db.read() as s:
                targets = qtl.outbox_targets(s, approval_id)
            for target in targets:
                self.delivery.resume_pending(target)
        except Exception:  # the rows stay pending for the sweep; say why here
            log.exception("delivering approval %s's Slack messages failed", approval_id)

    def _deliver_once(self, approval_id: int) -> bool:
        """One pass over the pending rows; True if any of them was finished."""
        finished = False
        for outcome in self.delivery.resume_pending(outbox_target(approval_id)):
            if outcome.state == "failed":
                log.warning(
                    "approval %s: outbox row %s failed: %s",
                    approval_id,
                    outcome.run_id,
                    outcome.detail,
                )
            elif outcome.state == "pending" and outcome.detail != "leased":
                log.info(
                    "approval %s: outbox row %s still pending (%s); the sweep retries it",
                    approval_id,
                    outcome.run_id,
                    outcome.detail,
                )
            finished |= outcome.state in ("sent", "skipped")
        return finished


def attach(runtime: Runtime, client: WebClient) -> ApprovalOutbox:
    """Kick delivery whenever an approval is requested or decided in this process."""
    outbox = ApprovalOutbox(runtime, client)
    runtime.approval_listeners.append(outbox.kick)
    return outbox
