"""The App Home tab: published when opened, and again after every action taken from it.

Ack phase: the Done button's service call (one transaction), then `ack()`. Lazy phase:
`views.publish` (and, for the viewer's time zone, possibly `users.info`).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from crobot.handlers import middleware
from crobot.handlers.blockkit import Mrkdwn, fmt
from crobot.handlers.errors import error_text
from crobot.handlers.home import pin
from crobot.handlers.home.view import DONE, publish
from crobot.handlers.payload import DAMAGED_BUTTON, button_id
from crobot.services import actions
from crobot.services.actor import resolve_actor
from crobot.services.errors import UserError

NOTICE = pin.NOTICE


def ack_event(ack: Ack) -> None:
    ack()


def on_home_opened(event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    if event.get("tab", "home") != "home":
        return
    who = middleware.identity(context)
    if who.known:
        publish(middleware.runtime(context), client, who)


def on_done(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Mark an action done from the Home tab; the refreshed tab says what happened."""
    who = middleware.identity(context)
    notice: Mrkdwn
    try:
        item_id = button_id(body)
        if item_id is None:
            raise UserError(DAMAGED_BUTTON)
        with middleware.runtime(context).db.write() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            item = actions.complete(s, actor, item_id)
            notice = fmt("Marked #{} done.", item.id)
    except UserError as exc:
        notice = error_text(exc)
    context[NOTICE] = notice
    ack()


def republish(context: BoltContext, client: WebClient) -> None:
    notice = context.get(NOTICE)
    if isinstance(notice, Mrkdwn):
        publish(middleware.runtime(context), client, middleware.identity(context), notice=notice)


def register(app: App) -> None:
    app.event("app_home_opened")(ack=ack_event, lazy=[on_home_opened])
    app.action(DONE)(ack=on_done, lazy=[republish])
    app.action(pin.SET_PIN)(ack=pin.on_set_pin, lazy=[republish])
    app.view(pin.PIN_MODAL)(ack=pin.on_pin_submit, lazy=[republish])
