"""A QTL breach's buttons and modals: Assign owner (the evaluation's owner) and Evaluate
(the evaluation, and the closure: a sponsor approver's decision).

Ack phase: the button opens its modal (views.open needs the click's trigger_id within
3 s), or tells the clicker ephemerally why not; a submission runs one service call in one
transaction and answers refusals as field errors in the modal (`response_action:
errors`). Lazy phase: deliver the closure's outbox rows at once (the sweep would, later).
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from crobot.handlers import blockkit as bk
from crobot.handlers import middleware
from crobot.handlers.blockkit import Block, fmt
from crobot.handlers.errors import error_text
from crobot.handlers.middleware import Identity
from crobot.handlers.payload import DAMAGED_BUTTON, DAMAGED_FORM, button_id, metadata, obj
from crobot.handlers.qtl_news import ASSIGN, EVALUATE, breach_text
from crobot.services import qtl, signatures
from crobot.services.actor import resolve_actor
from crobot.services.errors import UserError
from crobot.services.permissions import is_sponsor, require_breach_closer
from crobot.services.runtime import Runtime
from crobot.storage.models import BreachStatus, SignatureMode

log = logging.getLogger(__name__)

ASSIGN_MODAL = "qtl_assign_modal"
EVALUATE_MODAL = "qtl_evaluate_modal"
OWNER = "owner"
FIELDS = ("systemic", "root_cause", "impact", "action_needed", "remedial")
ACTION_FIELDS = ("action_title", "action_owner", "action_due")
PIN = "pin"
# services/actions.py's field names, as the modal's inputs for the linked action item
ACTION_ITEM_FIELDS = {"title": "action_title", "owner_user_id": "action_owner", "due": "action_due"}
VALUE = "value"
CLOSED = "crobot_qtl_closed"
MAX_ERROR = 150


def _yes_no() -> Block:
    return bk.static_select([bk.option("Yes", "yes"), bk.option("No", "no")])


def evaluate_modal(breach_text_: bk.Mrkdwn, breach_id: int, *, part11: bool) -> Block:
    blocks: list[Block] = [
        bk.section(breach_text_),
        bk.input_block("systemic", "Is the issue systemic?", _yes_no(), action_id=VALUE),
        bk.input_block(
            "root_cause",
            "Root cause",
            bk.text_input(multiline=True, max_length=3000),
            action_id=VALUE,
        ),
        bk.input_block(
            "impact",
            "Impact on participants' safety or data reliability",
            bk.text_input(multiline=True, max_length=3000),
            action_id=VALUE,
        ),
        bk.input_block("action_needed", "Is action needed?", _yes_no(), action_id=VALUE),
        bk.input_block(
            "remedial",
            "Remedial actions",
            bk.text_input(multiline=True, max_length=3000),
            action_id=VALUE,
        ),
        bk.input_block(
            "action_title",
            "Action item (optional)",
            bk.text_input(max_length=300),
            action_id=VALUE,
            optional=True,
            hint="Creates a linked crobot action item; give its owner and due date too.",
        ),
        bk.input_block(
            "action_owner",
            "Action owner",
            {"type": "users_select"},
            action_id=VALUE,
            optional=True,
        ),
        bk.input_block("action_due", "Action due", bk.datepicker(), action_id=VALUE, optional=True),
    ]
    if part11:
        blocks += [
            bk.context(fmt("Signing means: _{}_.", qtl.CLOSED_MEANING)),
            bk.input_block(
                PIN,
                "Your signing PIN",
                bk.text_input(max_length=signatures.MAX_PIN),
                action_id=VALUE,
            ),
        ]
    return bk.modal(
        EVALUATE_MODAL,
        "Evaluate QTL breach",
        blocks,
        submit="Sign and close" if part11 else "Close breach",
        private_metadata=json.dumps({"breach_id": breach_id}),
    )


def assign_modal(breach_text_: bk.Mrkdwn, breach_id: int) -> Block:
    return bk.modal(
        ASSIGN_MODAL,
        "Assign evaluation",
        [
            bk.section(breach_text_),
            bk.input_block(OWNER, "Evaluation owner", {"type": "users_select"}, action_id=VALUE),
        ],
        submit="Assign",
        private_metadata=json.dumps({"breach_id": breach_id}),
    )


def _ephemeral(client: WebClient, body: dict[str, Any], who: Identity, said: bk.Mrkdwn) -> None:
    channel = obj(body.get("channel")).get("id") or obj(body.get("container")).get("channel_id")
    if not isinstance(channel, str):
        return
    try:
        client.chat_postEphemeral(
            channel=channel, user=who.user_id, **bk.message(said, [bk.section(said)])
        )
    except SlackApiError as exc:
        log.warning("ephemeral reply failed: %s", exc.response.get("error"))


def _open(
    ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient, *, evaluate: bool
) -> None:
    who = middleware.identity(context)
    runtime = middleware.runtime(context)
    breach_id = button_id(body)
    trigger = body.get("trigger_id")
    ack()
    try:
        if breach_id is None or not isinstance(trigger, str):
            raise UserError(DAMAGED_BUTTON)
        with runtime.db.read() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            breach = qtl.reachable_breach(s, actor, breach_id)
            if breach.status == BreachStatus.CLOSED:
                raise UserError(f"QTL breach #{breach.id} is already closed.")
            if evaluate:
                require_breach_closer(actor, breach.study)
            elif not is_sponsor(actor, breach.study):
                raise UserError("Only the sponsor's staff can assign a breach's evaluation.")
            part11 = signatures.mode(s, breach.study_id) == SignatureMode.PART11
            text = breach_text(breach)
    except UserError as exc:
        _ephemeral(client, body, who, error_text(exc))
        return
    view = (
        evaluate_modal(text, breach_id, part11=part11)
        if evaluate
        else assign_modal(text, breach_id)
    )
    client.views_open(trigger_id=trigger, view=view)


def on_assign(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    _open(ack, body, context, client, evaluate=False)


def on_evaluate(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    _open(ack, body, context, client, evaluate=True)


def _values(view: dict[str, Any]) -> dict[str, str]:
    """Each input's value (text, option, date or user), stripped; empty ones left out."""
    state = obj(obj(view.get("state")).get("values"))
    out: dict[str, str] = {}
    for block_id, actions in state.items():
        el = obj(obj(actions).get(VALUE))
        if "selected_option" in el:
            value = obj(el.get("selected_option")).get("value")
        elif "selected_date" in el:
            value = el.get("selected_date")
        elif "selected_user" in el:
            value = el.get("selected_user")
        else:
            value = el.get("value")
        if isinstance(value, str) and value.strip():
            out[str(block_id)] = value.strip()
    return out


def _breach_of(view: dict[str, Any]) -> int | None:
    meta = metadata(view)
    value = (meta or {}).get("breach_id")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _errors(errors: dict[str, str]) -> dict[str, str]:
    return {k: bk.plain_str(v, MAX_ERROR) for k, v in errors.items()}


def _yes(raw: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(raw or "")


def evaluation(v: dict[str, str], team_id: str) -> qtl.Evaluation:
    """The modal's answers; the linked action item only when its three fields say one."""
    action = None
    given = [f for f in ACTION_FIELDS if f in v]
    if given:
        missing = {
            f: "Give the action's title, owner and due date together."
            for f in ACTION_FIELDS
            if f not in v
        }
        if missing:
            raise UserError("The action item is incomplete.", field_messages=missing)
        try:
            due = date.fromisoformat(v["action_due"])
        except ValueError:
            raise UserError("Not a date.", field_messages={"action_due": "Not a date."}) from None
        action = qtl.RemedialAction(v["action_title"], team_id, v["action_owner"], due)
    return qtl.Evaluation(
        systemic=_yes(v.get("systemic")),
        root_cause=v.get("root_cause"),
        impact=v.get("impact"),
        action_needed=_yes(v.get("action_needed")),
        remedial=v.get("remedial"),
        action=action,
    )


def on_evaluate_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    view = obj(body.get("view"))
    breach_id = _breach_of(view)
    if breach_id is None:
        ack(response_action="errors", errors={"systemic": DAMAGED_FORM})
        return
    who = middleware.identity(context)
    runtime = middleware.runtime(context)
    v = _values(view)
    try:
        with runtime.db.write() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            ev = evaluation(v, who.team_id)
            qtl.close(s, actor, breach_id, ev, today=runtime.today(), pin=v.get(PIN))
    except signatures.PinRefused as exc:
        ack(response_action="errors", errors=_errors({PIN: str(exc)}))
        return
    except UserError as exc:
        fields = {ACTION_ITEM_FIELDS.get(k, k): m for k, m in exc.field_messages.items()}
        known = {k: m for k, m in fields.items() if k in FIELDS + ACTION_FIELDS}
        ack(response_action="errors", errors=_errors(known or {"systemic": exc.message}))
        return
    context[CLOSED] = breach_id
    ack()


def on_assign_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    view = obj(body.get("view"))
    breach_id = _breach_of(view)
    owner = _values(view).get(OWNER)
    if breach_id is None or owner is None:
        ack(response_action="errors", errors={OWNER: DAMAGED_FORM if owner else "Pick a person."})
        return
    who = middleware.identity(context)
    runtime = middleware.runtime(context)
    try:
        with runtime.db.write() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            qtl.assign(s, actor, breach_id, team_id=who.team_id, user_id=owner)
    except UserError as exc:
        ack(response_action="errors", errors=_errors({OWNER: exc.message}))
        return
    ack()


def deliver_closure(context: BoltContext, client: WebClient) -> None:
    """After the ack: post the closure at once (the sweep would deliver it later)."""
    breach_id = context.get(CLOSED)
    if not isinstance(breach_id, int):
        return
    from crobot.digests.delivery import Delivery, delivery_client

    runtime: Runtime = middleware.runtime(context)
    try:
        Delivery(runtime, delivery_client(client), lease=runtime.outbox_lease).resume_pending(
            f"{qtl.BREACH_PREFIX}{breach_id}"
        )
    except Exception:  # the rows stay pending for the sweep
        log.exception("delivering QTL breach %s's closure failed", breach_id)


def register(app: App) -> None:
    app.action(ASSIGN)(ack=on_assign, lazy=[])
    app.action(EVALUATE)(ack=on_evaluate, lazy=[])
    app.view(EVALUATE_MODAL)(ack=on_evaluate_submit, lazy=[deliver_closure])
    app.view(ASSIGN_MODAL)(ack=on_assign_submit, lazy=[])
