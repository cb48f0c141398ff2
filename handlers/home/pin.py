"""Setting one's signing PIN privately, from the App Home (21 CFR 11.200, 11.300).

The Home's button opens a modal (ack phase: views.open needs the click's trigger_id);
its submission stores only a salted scrypt hash (services/signatures.py). Changing a PIN
asks for the current one, and a wrong current PIN counts towards the signing lock like a
wrong PIN when signing. The refreshed Home says the PIN is set.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk import WebClient

from crobot.handlers import blockkit as bk
from crobot.handlers import middleware
from crobot.handlers.blockkit import Block, Mrkdwn, plain_str
from crobot.handlers.errors import error_text
from crobot.handlers.payload import obj, text
from crobot.services import signatures
from crobot.services.actor import resolve_actor
from crobot.services.errors import UserError
from crobot.services.permissions import require_known

SET_PIN = "home_set_signing_pin"
PIN_MODAL = "signing_pin_modal"
CURRENT, NEW, CONFIRM = "pin_current", "pin_new", "pin_confirm"
FIELD_BLOCKS = {"current": CURRENT, "pin": NEW, "confirm": CONFIRM}
NOTICE = "crobot_home_notice"  # the same key as the Home's other notices


def pin_modal(*, change: bool) -> Block:
    def field(block_id: str, label: str, hint: str = "") -> Block:
        element = bk.text_input(max_length=signatures.MAX_PIN)
        return bk.input_block(block_id, label, element, action_id="value", hint=hint)

    blocks: list[Block] = [
        bk.section(
            Mrkdwn(
                "Your signing PIN is the second component of your electronic signature in "
                "21 CFR Part 11 studies, with your Slack identity. Only you know it; crobot "
                "keeps only a salted hash of it. Slack does not hide what you type here: "
                "set it where nobody reads your screen."
            )
        )
    ]
    if change:
        blocks.append(field(CURRENT, "Current PIN", "A wrong one counts as a wrong PIN."))
    blocks += [
        field(NEW, "New PIN", f"{signatures.MIN_PIN} to {signatures.MAX_PIN} characters."),
        field(CONFIRM, "New PIN again"),
    ]
    title = "Change signing PIN" if change else "Set signing PIN"
    return bk.modal(PIN_MODAL, title, blocks, submit="Save")


def on_set_pin(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    who = middleware.identity(context)
    trigger_id = text(body.get("trigger_id"))
    try:
        with middleware.runtime(context).db.read() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            require_known(actor)
            change = signatures.has_pin(s, actor)
    except UserError as exc:
        context[NOTICE] = error_text(exc)
        ack()
        return
    ack()
    if trigger_id:
        client.views_open(trigger_id=trigger_id, view=pin_modal(change=change))


def _typed(values: dict[str, Any], block: str) -> str:
    value = obj(obj(values.get(block)).get("value")).get("value")
    return value if isinstance(value, str) else ""


def on_pin_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    who = middleware.identity(context)
    runtime = middleware.runtime(context)
    values = obj(obj(obj(body.get("view")).get("state")).get("values"))
    current = _typed(values, CURRENT) if CURRENT in values else None
    try:
        with runtime.db.write() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            signatures.set_pin(
                s, actor, _typed(values, NEW), _typed(values, CONFIRM), current=current
            )
    except signatures.PinRefused as exc:
        with runtime.db.write() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            signatures.refused(s, actor, exc, subject="signing_pin", subject_id="change")
        block = CURRENT if CURRENT in values else NEW
        ack(response_action="errors", errors={block: plain_str(exc.message, 150)})
        return
    except UserError as exc:
        block = FIELD_BLOCKS.get(exc.field or "", NEW)
        ack(response_action="errors", errors={block: plain_str(exc.message, 150)})
        return
    context[NOTICE] = Mrkdwn("Your signing PIN is set.")
    ack()
