"""Telling the approvals surface, after commit, that a submission awaits a decision."""

from __future__ import annotations

import logging

from crobot.services.runtime import Runtime

log = logging.getLogger(__name__)


def approval_awaited(runtime: Runtime, approval_id: int | None) -> None:
    """`runtime.approval_requested`, for the command and form that stored a submission.

    The submission is stored either way: what the approvals surface does with the news
    is its own concern, and a failure here is logged, never turned into an error reply.
    """
    if approval_id is None:
        return
    try:
        runtime.approval_requested(approval_id)
    except Exception:
        log.exception("approval #%s stored but its notification failed", approval_id)
