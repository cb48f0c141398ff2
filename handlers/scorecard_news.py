"""The message of a quarter-end scorecard outbox row (services/scorecard_posts.py writes
the rows' keys; digests/delivery.py sends them): one vendor's scorecard for the quarter
that just ended, composed when it is sent."""

from __future__ import annotations

from typing import Any

from crobot.handlers import blockkit as bk
from crobot.handlers.scorecard_blocks import scorecard_message
from crobot.services import scorecard_posts
from crobot.services.runtime import Runtime

METADATA_EVENT = "crobot_scorecard"


def payload(runtime: Runtime, target: str, key: str) -> dict[str, Any] | None:
    """chat.postMessage arguments, or None when there is nothing this channel may get."""
    with runtime.db.read() as s:
        post = scorecard_posts.compose(s, target, key, runtime.now(), runtime.default_tz)
    if post is None:
        return None
    text, blocks = scorecard_message([post.card], post.card.quarter)
    return {"channel": post.channel, **bk.message(text, blocks)}
