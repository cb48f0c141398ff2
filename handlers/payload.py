"""Parts of Slack interaction payloads, read without trusting their shape.

A correctly signed request can still carry a malformed part (a crafted payload, a
client bug, metadata from an older version): a button value that is no id, metadata
that is not a JSON object, an element that is not an object. Each reader here returns
"nothing usable" (`None`, `{}`) instead of raising, and the listener answers the user
with `DAMAGED_BUTTON` or `DAMAGED_FORM`: never a traceback, never a partial write.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse

from crobot.services.command_parser import parse_id
from crobot.services.errors import UserError

log = logging.getLogger(__name__)

DAMAGED_BUTTON = (
    "That button's data is damaged, so nothing was changed. Reload the message or the Home "
    "tab and try again."
)
DAMAGED_FORM = "This form's data is damaged, so nothing was stored. Close it and open it again."


def obj(value: object) -> dict[str, Any]:
    """A part that should be an object; anything else counts as empty."""
    return value if isinstance(value, dict) else {}


def text(value: object) -> str | None:
    """A part that should be a non-empty string."""
    return value if isinstance(value, str) and value else None


def button_id(body: dict[str, Any]) -> int | None:
    """The id the clicked button carries as its value, or None if it carries none."""
    acts = body.get("actions")
    first = obj(acts[0]) if isinstance(acts, list) and acts else {}
    value = text(first.get("value"))
    if value is None:
        return None
    try:
        return parse_id(value, "button")
    except UserError:
        return None


def metadata(view: dict[str, Any]) -> dict[str, Any] | None:
    """A view's `private_metadata` as the JSON object crobot wrote; `{}` when it is empty,
    None when it is anything but a JSON object."""
    raw = view.get("private_metadata")
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def optional_text(meta: dict[str, Any], key: str) -> tuple[bool, str | None]:
    """(well formed, value) of an optional string field of crobot's own metadata."""
    value = meta.get(key)
    return (value is None or isinstance(value, str)), (value or None)


def positive_int(value: object) -> int | None:
    """An id crobot wrote into metadata as a JSON number (never a bool, never ≤ 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def routable(body: dict[str, Any]) -> bool:
    """Whether an interaction names a listener at all: a click carries a list of actions
    whose first is an object with an `action_id`, a form submission a view object with a
    `callback_id`, and a `view` is an object wherever there is one. Bolt's own routing
    (and its log line for a payload nobody handles) assumes all three and would raise."""
    if "view" in body and not isinstance(body["view"], dict):
        return False
    kind = body.get("type")
    if kind == "block_actions":
        acts = body.get("actions")
        first = acts[0] if isinstance(acts, list) and acts else None
        return isinstance(first, dict) and isinstance(first.get("action_id"), str)
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        return isinstance(view, dict) and isinstance(view.get("callback_id"), str)
    return True


def install(app: App) -> None:
    """Acknowledge an interaction that names no listener (nothing to answer it with: it
    names no button or form) before Bolt tries to route it; nothing is written."""

    def check_shape(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
        if routable(body):
            return next()
        log.info("ignored a %s payload that names no button or form", body.get("type"))
        return BoltResponse(status=200, body="")

    app.middleware(check_shape)
