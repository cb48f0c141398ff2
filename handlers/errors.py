"""The one fallback for anything a listener did not handle: log it, answer politely."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_bolt.response import BoltResponse

from crobot.services.errors import UserError
from crobot.services.runtime import Runtime

log = logging.getLogger(__name__)


def register(app: App, runtime: Runtime) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], logger: logging.Logger) -> BoltResponse:
        if isinstance(error, UserError):
            # A malformed payload (e.g. a button value that is not an id): say so, no trace.
            log.info("rejected a malformed request: %s", error)
            return BoltResponse(
                status=200, body={"response_type": "ephemeral", "text": f":warning: {error}"}
            )
        log.exception("unhandled error in listener: %s", type(error).__name__)
        return BoltResponse(
            status=200,
            body={
                "response_type": "ephemeral",
                "text": "Sorry, something went wrong on our side. Please try again.",
            },
        )
