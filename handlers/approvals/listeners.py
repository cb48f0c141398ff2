"""Approve / Reject buttons (`block_actions`) and the reject-reason modal (`view_submission`).

Ack phase (before Slack gets its answer): parse → one service call in one transaction
(`services.approvals`, which also writes the Slack work a decision calls for to the
outbox) → `ack()`. The Reject button opens its modal there, because views.open needs the
click's trigger_id within 3 s; the modal's inline errors are the ack itself. A refused
attempt (not an approver of the study, someone crobot does not know, no such request)
writes nothing in that transaction; it is logged and audited (`approval.refused`) in one
of its own, every attempt.

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
from crobot.services import approval_log, approvals
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
    runtime: Runtime, click: Click, *, approve: bool, reason: str = "", via: str = "button"
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
                today=runtime.today(),
            )
            return decision.changed
    except UserError as exc:
        _refused(runtime, click, exc, decision="approve" if approve else "reject", via=via)
        raise


def _refused(runtime: Runtime, click: Click, exc: UserError, *, decision: str, via: str) -> None:
    """Leave a trace of an attempt refused for who made it (not an approver, someone crobot
    does not know, no such request); the attempt's own transaction wrote nothing."""
    if click.approval_id is None or not isinstance(exc, Forbidden | NotFound):
        return
    with runtime.db.write() as s:
        actor = resolve_actor(s, click.who.team_id, click.who.user_id)
        approval_log.refused(
            s, actor, click.approval_id, decision=decision, via=via, reason=str(exc.message)
        )


def on_approve(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    click = Click.from_button(body, middleware.identity(context))
    try:
        result = Result(changed=_decide(middleware.runtime(context), click, approve=True))
    except UserError as exc:
        result = Result(error=error_text(exc))
    context[HANDOFF] = Handoff(click, result)
    ack()


def on_reject(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Open the reason modal for a pending approval; anything else is told after the ack."""
    click = Click.from_button(body, middleware.identity(context))
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
    except UserError as exc:
        _refused(runtime, click, exc, decision="reject", via="button")
        context[HANDOFF] = Handoff(click, Result(error=error_text(exc)))
        ack()
        return
    if rec is None:
        context[HANDOFF] = Handoff(click, Result(changed=False))
        ack()
        return
    client.views_open(trigger_id=trigger_id, view=messages.reject_modal(rec, click.modal_meta()))
    ack()


def _refuse(ack: Ack, message: str) -> None:
    """Nothing was stored; the modal stays open with the message on its one field."""
    ack(
        response_action="errors",
        errors={messages.REASON_BLOCK: plain_str(message, MAX_INLINE_ERROR)},
    )


def on_reject_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    view = obj(body.get("view"))
    meta = metadata(view)
    click = None if meta is None else Click.from_modal(meta, middleware.identity(context))
    if click is None:
        _refuse(ack, DAMAGED_FORM)
        return
    values = obj(obj(view.get("state")).get("values"))
    reason = obj(obj(values.get(messages.REASON_BLOCK)).get(messages.REASON_INPUT)).get("value")
    try:
        changed = _decide(
            middleware.runtime(context),
            click,
            approve=False,
            reason=reason if isinstance(reason, str) else "",
            via="form",
        )
    except UserError as exc:
        _refuse(ack, exc.message)
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
