"""Refuse a Slack request whose signature was already accepted (replay within 5 minutes).

Runs after Bolt's own signature check, so only genuine Slack requests are remembered.
Socket Mode requests carry no signature (the connection is authenticated) and pass.
If the database cannot be reached the request goes on: it cannot change anything then,
and its listener answers "temporarily unavailable".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse
from sqlalchemy.exc import DBAPIError

from crobot.services.replay import ReplayGuard
from crobot.services.runtime import Runtime

log = logging.getLogger(__name__)


def install(app: App, runtime: Runtime) -> None:
    guard = ReplayGuard()

    def refuse_replays(req: BoltRequest, next: Callable[[], BoltResponse]) -> BoltResponse:
        signature = req.headers.get("x-slack-signature", [""])[0]
        if req.mode == "http" and signature and not req.lazy_only:
            try:
                with runtime.db.write() as s:
                    fresh = guard.first_sighting(s, signature, now=runtime.now())
            except DBAPIError as exc:
                log.warning("replay check skipped, database unavailable: %s", type(exc).__name__)
                fresh = True
            if not fresh:
                log.warning("refused a replayed Slack request")
                return BoltResponse(status=401, body='{"error":"replayed request"}')
        return next()

    app.middleware(refuse_replays)
