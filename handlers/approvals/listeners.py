"""Approve / Reject buttons (`block_actions`) and the reject-reason modal (`view_submission`).

Ack phase (before Slack gets its answer): parse → one service call in one transaction
(`services.approvals`, which also writes the Slack work a decision calls for to the
outbox) → `ack()`. The Reject button opens its modal there, because views.open needs the
click's trigger_id within 3 s; the modal's inline errors are the ack itself. A refused
attempt (not an approver of the study, someone crobot does not know, no such request)
writes nothing in that transaction; it is logged and audited (`approval.refused`) in one
of its own, every attempt. In a Part 11 study (services/signatures.py) Approve opens a
modal asking the signing PIN and the reject modal asks it too; a wrong PIN, and every
attempt while signing is locked, is counted and audited the same way.

Lazy phase (`follow_up`, after the answer): kick the outbox so the decision shows at once,
tell the clicker ephemerally why nothing changed, and refresh the App Home when the click
came from there. The ack phase hands its result over in the request context, which Bolt
copies for the lazy listener once the ack function has returned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from crobot.handlers import middleware
from crobot.handlers.approvals import messages
from crobot.handlers.blockkit import Mrkdwn, plain_str
from crobot.handlers.errors import error_text
from crobot.handlers.home.view import publish
from crobot.handlers.middleware import Identity
from crobot.handlers.payload import (
    DAMAGED_BUTTON,
    DAMAGED_FORM,
    button_id,
    metadata,
    obj,
    optional_text,
    positive_int,
    text,
)
from crobot.services import approval_log, approvals, signatures
from crobot.services.actor import resolve_actor
from crobot.services.approval_log import Location
from crobot.services.errors import Forbidden, NotFound, UserError
from crobot.services.runtime import Runtime
from crobot.storage.models import ApprovalState

log = logging.getLogger(__name__)

HANDOFF = "crobot_approval_handoff"
MAX_INLINE_ERROR = 150  # characters: it shows under the reason input


@dataclass(frozen=True)
class Click:
    """Where a decision was asked for: a channel message, or the clicker's App Home."""

    who: Identity
    approval_id: int | None  # None: the button carried no readable id (`DAMAGED_BUTTON`)
    channel_id: str | None = None
    message_ts: str | None = None
    from_home: bool = False
    message_has_buttons: bool = False

    @classmethod
    def from_button(cls, body: dict[str, Any], who: Identity) -> Click:
        container = obj(body.get("container"))
        message = obj(body.get("message"))
        channel = obj(body.get("channel"))
        blocks = message.get("blocks")
        return cls(
            who=who,
            approval_id=button_id(body),
            channel_id=text(container.get("channel_id")) or text(channel.get("id")),
            message_ts=text(container.get("message_ts")) or text(message.get("ts")),
            from_home=container.get("type") == "view",
            message_has_buttons=isinstance(blocks, list)
            and any(obj(b).get("block_id") == messages.ACTIONS_BLOCK for b in blocks),
        )

    @classmethod
    def from_modal(cls, meta: dict[str, Any], who: Identity) -> Click | None:
        """The click the reason modal was opened for (`modal_meta`); None when the
        metadata is not what crobot wrote."""
        channel_ok, channel = optional_text(meta, "channel_id")
        ts_ok, ts = optional_text(meta, "message_ts")
        home = meta.get("from_home", False)
        approval_id = positive_int(meta.get("approval_id"))
        if approval_id is None or not (channel_ok and ts_ok and isinstance(home, bool)):
            return None
        return cls(
            who=who,
            approval_id=approval_id,
            channel_id=channel,
            message_ts=ts,
            from_home=home,
            # The modal was opened from a copy with buttons: it is rewritten either way.
            message_has_buttons=bool(channel and ts),
        )

    @property
    def seen_at(self) -> Location | None:
        """The copy of the request the click came from, while it still offered buttons."""
        if self.channel_id and self.message_ts and self.message_has_buttons:
            return (self.channel_id, self.message_ts)
        return None

    def modal_meta(self) -> dict[str, Any]:
        return {
            "approval_id": self.approval_id,
            "channel_id": self.channel_id,
            "message_ts": self.message_ts,
            "from_home": self.from_home,
        }


@dataclass(frozen=True)
class Result:
    changed: bool = False
    error: Mrkdwn | None = None  # why nothing changed, for the clicker


@dataclass(frozen=True)
class Handoff:
    click: Click
    result: Result


def _decide(
    runtime: Runtime,
    click: Click,
    *,
    approve: bool,
    reason: str = "",
    via: str = "button",
    pin: str | None = None,
) -> bool:
    """The decision, its audit event and its outbox rows in one transaction; whether it
    changed anything. A refusal (`UserError`) changes nothing; one of the decider leaves
    a trace first (`_refused`)."""
    if click.approval_id is None:
        raise UserError(DAMAGED_BUTTON)
    try:
        with runtime.db.write() as s:
            actor = resolve_actor(s, click.who.team_id, click.who.user_id)
            decision = approvals.decide(
                s,
                actor,
                click.approval_id,
                approve=approve,
                reason=reason,
                seen_at=click.seen_at,
                pin=pin,
                today=runtime.today(),
            )
            return decision.changed
    except UserError as exc:
        _refused(runtime, click, exc, decision="approve" if approve else "reject", via=via)
        raise


def _refused(runtime: Runtime, click: Click, exc: UserError, *, decision: str, via: str) -> None:
    """Leave a trace of an attempt refused for who made it (not an approver, someone crobot
    does not know, no such request) or for its signing PIN (wrong, or signing locked: it
    counts towards the lock); the attempt's own transaction wrote nothing."""
    if click.approval_id is None:
        return
    if isinstance(exc, signatures.PinRefused):
        with runtime.db.write() as s:
            actor = resolve_actor(s, click.who.team_id, click.who.user_id)
            signatures.refused(s, actor, exc, subject="approval", subject_id=click.approval_id)
        return
    if not isinstance(exc, Forbidden | NotFound):
        return
    with runtime.db.write() as s:
        actor = resolve_actor(s, click.who.team_id, click.who.user_id)
        approval_log.refused(
            s, actor, click.approval_id, decision=decision, via=via, reason=str(exc.message)
        )


def _part11(runtime: Runtime, approval_id: int | None) -> bool:
    """Whether the request's study decides by Part 11 signature (a modal asks the PIN)."""
    if approval_id is None:
        return False
    with runtime.db.read() as s:
        rec = approval_log.record(s, approval_id)
        return rec is not None and rec.part11


def on_approve(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Approve at once; in a Part 11 study open the signing modal (the PIN) instead."""
    click = Click.from_button(body, middleware.identity(context))
    runtime = middleware.runtime(context)
    if _part11(runtime, click.approval_id):
        _open_modal(ack, body, context, client, click, approve=True)
        return
    try:
        result = Result(changed=_decide(runtime, click, approve=True))
    except UserError as exc:
        result = Result(error=error_text(exc))
    context[HANDOFF] = Handoff(click, result)
    ack()


def on_reject(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Open the reason modal for a pending approval; anything else is told after the ack."""
    click = Click.from_button(body, middleware.identity(context))
    _open_modal(ack, body, context, client, click, approve=False)


def _open_modal(
    ack: Ack,
    body: dict[str, Any],
    context: BoltContext,
    client: WebClient,
    click: Click,
    *,
    approve: bool,
) -> None:
    """The decision's modal for a pending approval the clicker may decide: the reason
    (rejections), the signing PIN (Part 11 studies), or how to set a PIN (none set)."""
    runtime = middleware.runtime(context)
    trigger_id = text(body.get("trigger_id"))
    try:
        if click.approval_id is None or trigger_id is None:
            raise UserError(DAMAGED_BUTTON)  # no modal can be opened without a trigger
        with runtime.db.write() as s:
            actor = resolve_actor(s, click.who.team_id, click.who.user_id)
            approval = approvals.decidable(s, actor, click.approval_id, seen_at=click.seen_at)
            pending = approval.state == ApprovalState.PENDING
            rec = approval_log.record(s, approval.id) if pending else None
            has_pin = signatures.has_pin(s, actor)
    except UserError as exc:
        _refused(runtime, click, exc, decision="approve" if approve else "reject", via="button")
        context[HANDOFF] = Handoff(click, Result(error=error_text(exc)))
        ack()
        return
    if rec is None:
        context[HANDOFF] = Handoff(click, Result(changed=False))
        ack()
        return
    if rec.part11 and not has_pin:
        view = messages.no_pin_modal()
    elif approve:
        view = messages.sign_modal(rec, click.modal_meta())
    else:
        view = messages.reject_modal(rec, click.modal_meta())
    client.views_open(trigger_id=trigger_id, view=view)
    ack()


def _refuse(ack: Ack, message: str, block: str) -> None:
    """Nothing was stored; the modal stays open with the message on one of its fields."""
    ack(response_action="errors", errors={block: plain_str(message, MAX_INLINE_ERROR)})


def _typed(values: dict[str, Any], block: str, action: str) -> str | None:
    value = obj(obj(values.get(block)).get(action)).get("value")
    return value if isinstance(value, str) else None


def on_reject_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    _on_submit(ack, body, context, approve=False)


def on_sign_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    _on_submit(ack, body, context, approve=True)


def _on_submit(ack: Ack, body: dict[str, Any], context: BoltContext, *, approve: bool) -> None:
    """A decision's modal submitted: the reason (rejections) and, in a Part 11 study, the
    signing PIN; a refusal is shown on the field it is about."""
    view = obj(body.get("view"))
    values = obj(obj(view.get("state")).get("values"))
    has_pin_field = messages.PIN_BLOCK in values
    fallback = messages.REASON_BLOCK if not approve else messages.PIN_BLOCK
    meta = metadata(view)
    click = None if meta is None else Click.from_modal(meta, middleware.identity(context))
    if click is None:
        _refuse(ack, DAMAGED_FORM, fallback)
        return
    try:
        changed = _decide(
            middleware.runtime(context),
            click,
            approve=approve,
            reason=_typed(values, messages.REASON_BLOCK, messages.REASON_INPUT) or "",
            via="form",
            pin=_typed(values, messages.PIN_BLOCK, messages.PIN_INPUT),
        )
    except UserError as exc:
        if isinstance(exc, signatures.PinRefused):  # with how many tries are left, or why
            _refuse(ack, str(exc), messages.PIN_BLOCK if has_pin_field else fallback)
        else:
            _refuse(ack, exc.message, fallback)
        return
    context[HANDOFF] = Handoff(click, Result(changed=changed))
    ack()


def follow_up(context: BoltContext, client: WebClient) -> None:
    """After the ack: show the decision everywhere, or tell the clicker why not."""
    handoff = context.get(HANDOFF)
    if not isinstance(handoff, Handoff):
        return  # the ack phase answered everything itself (a modal, an inline error)
    click, result = handoff.click, handoff.result
    runtime = middleware.runtime(context)
    notice: Mrkdwn | None = None
    if result.error is not None:
        notice = result.error
        _ephemeral(client, click, notice)
    elif click.approval_id is not None:
        # Deliver the decision's outbox rows, or a stale copy's refresh, right away.
        runtime.approval_decided(click.approval_id)
        if not result.changed:
            with runtime.db.read() as s:
                rec = approval_log.record(s, click.approval_id)
            if rec is not None:
                notice = messages.already_decided_text(rec)
                _ephemeral(client, click, notice)
    if click.from_home:
        publish(runtime, client, click.who, notice=notice)


def _ephemeral(client: WebClient, click: Click, said: Mrkdwn) -> None:
    if not click.channel_id:
        return
    try:
        client.chat_postEphemeral(
            channel=click.channel_id, user=click.who.user_id, **messages.text_message(said)
        )
    except SlackApiError as exc:
        log.warning("ephemeral reply failed: %s", exc.response.get("error"))
