"""The one fallback for anything a listener (or the middleware) did not handle: log it,
answer politely."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_bolt.response import BoltResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from crobot.handlers.blockkit import Mrkdwn, fallback, fmt, wording
from crobot.services.errors import UserError

log = logging.getLogger(__name__)

UNAVAILABLE = Mrkdwn(
    ":hourglass: crobot's database is temporarily unavailable, try again in a minute. "
    "Nothing was changed."
)
SORRY = Mrkdwn("Sorry, something went wrong on our side. Please try again.")


def error_text(error: UserError) -> Mrkdwn:
    """A refusal as one line of mrkdwn: what is wrong, then how to fix it."""
    hint = wording(error.hint) if error.hint else ""
    return Mrkdwn(fmt(":warning: {} {}", wording(error.message), hint).strip())


def _answer(text: Mrkdwn) -> BoltResponse:
    return BoltResponse(status=200, body={"response_type": "ephemeral", "text": fallback(text)})


def on_error(error: Exception, body: dict[str, Any], logger: logging.Logger) -> BoltResponse:
    if isinstance(error, UserError):
        # A malformed payload (e.g. a button value that is not an id): say so, no trace.
        log.info("rejected a malformed request: %s", error)
        return _answer(error_text(error))
    if isinstance(error, DBAPIError | PoolTimeout):
        log.warning("database unavailable for a request: %s", type(error).__name__)
        return _answer(UNAVAILABLE)
    log.exception("unhandled error in listener: %s", type(error).__name__)
    return _answer(SORRY)


def register(app: App) -> None:
    app.error(on_error)
