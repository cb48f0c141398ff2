"""Approve / Reject buttons (`block_actions`) and the reject-reason modal (`view_submission`).

Parse → `services.approvals.decide` (one locked transaction with its audit event) →
render. The state machine decides who wins a double click or two approvers at once; the
others are told who decided, ephemerally. Slack work (chat.update, thread notice) happens
after `ack()`, except in the modal, whose inline errors must be the ack itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from crobot.handlers import approval_messages as msgs
from crobot.handlers import home
from crobot.services import approvals
from crobot.services.actor import Actor, resolve_actor
from crobot.services.approvals import MAX_REASON
from crobot.services.command_parser import parse_id
from crobot.services.errors import UserError
from crobot.services.permissions import require_approver
from crobot.services.runtime import Runtime
from crobot.storage.models import Approval, ApprovalState, Study

log = logging.getLogger(__name__)

REJECT_MODAL = "approval_reject_modal"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"


@dataclass(frozen=True)
class Click:
    """Where a button was clicked: a channel message, or the clicker's App Home."""

    team_id: str
    user_id: str
    approval_id: int
    channel_id: str | None
    message_ts: str | None
    from_home: bool
    message_has_buttons: bool

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Click:
        user = body.get("user") or {}
        container = body.get("container") or {}
        message = body.get("message") or {}
        blocks = message.get("blocks") or []
        return cls(
            team_id=str(user.get("team_id") or (body.get("team") or {}).get("id") or ""),
            user_id=str(user.get("id") or ""),
            approval_id=_button_id(body, "approval request"),
            channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
            message_ts=container.get("message_ts") or message.get("ts"),
            from_home=container.get("type") == "view",
            message_has_buttons=any(b.get("block_id") == msgs.ACTIONS_BLOCK for b in blocks),
        )

    @property
    def message(self) -> tuple[str, str] | None:
        if self.channel_id and self.message_ts:
            return (self.channel_id, self.message_ts)
        return None


def _button_id(body: dict[str, Any], what: str) -> int:
    """The id a button carries in its value; a malformed one is a UserError, not a crash."""
    acts = body.get("actions") or [{}]
    return parse_id(str((acts[0] or {}).get("value") or ""), what)


@dataclass(frozen=True)
class Outcome:
    actor: Actor
    changed: bool = False
    error: str | None = None


def decide(
    runtime: Runtime, team_id: str, user_id: str, approval_id: int, *, approve: bool, reason: str
) -> Outcome:
    """The decision and its audit event in one transaction; a refusal writes nothing."""
    actor = Actor(team_id, user_id)
    try:
        with runtime.db.write() as s:
            actor = resolve_actor(s, team_id, user_id)
            decision = approvals.decide(s, actor, approval_id, approve=approve, reason=reason)
            return Outcome(actor, changed=decision.changed)
    except UserError as exc:
        return Outcome(actor, error=exc.message)


def ephemeral(client: WebClient, channel_id: str | None, user_id: str, text: str) -> None:
    if not channel_id:
        return
    try:
        client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
    except SlackApiError as exc:
        log.warning("ephemeral reply failed: %s", exc.response.get("error"))


def follow_up(runtime: Runtime, client: WebClient, click: Click, outcome: Outcome) -> None:
    """After the ack: show the decision everywhere, or tell the clicker who decided."""
    notice: str | None = None
    if outcome.error:
        notice = outcome.error
        ephemeral(client, click.channel_id, click.user_id, outcome.error)
    elif outcome.changed:
        msgs.refresh_messages(runtime, client, click.approval_id, outcome.actor, also=click.message)
    else:
        view = msgs.load_view(runtime, click.approval_id)
        if view is not None:
            notice = msgs.already_decided_text(view)
            ephemeral(client, click.channel_id, click.user_id, notice)
            if click.message_has_buttons:
                # A stale copy still offers buttons: bring it up to date (no new notice).
                msgs.refresh_messages(
                    runtime,
                    client,
                    click.approval_id,
                    outcome.actor,
                    also=click.message,
                    notify_submitter=False,
                )
    if click.from_home:
        home.publish(runtime, client, click.team_id, click.user_id, notice=notice)


def reject_modal(approval: msgs.ApprovalView, click: Click) -> dict[str, Any]:
    meta = {
        "approval_id": approval.id,
        "channel_id": click.channel_id,
        "message_ts": click.message_ts,
        "from_home": click.from_home,
        "team_id": click.team_id,
    }
    return {
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": "Reject submission"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*{approval.study_code}* (#{approval.id})\n"
                    + msgs.describe_change(approval),
                },
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "hint": {
                    "type": "plain_text",
                    "text": "Say what is wrong so the vendor can fix it.",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": MAX_REASON,
                },
            },
        ],
    }


def register(app: App, runtime: Runtime) -> None:
    @app.action(msgs.APPROVE)
    def on_approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = Click.from_body(body)
        outcome = decide(
            runtime, click.team_id, click.user_id, click.approval_id, approve=True, reason=""
        )
        follow_up(runtime, client, click, outcome)

    @app.action(msgs.REJECT)
    def on_reject(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = Click.from_body(body)
        error: str | None = None
        pending = False
        with runtime.db.read() as s:
            actor = resolve_actor(s, click.team_id, click.user_id)
            approval = s.get(Approval, click.approval_id)
            try:
                if approval is None:
                    raise UserError(f"There is no approval request #{click.approval_id}.")
                require_approver(actor, s.get_one(Study, approval.study_id))
                pending = approval.state == ApprovalState.PENDING
            except UserError as exc:
                error = exc.message
        if error is not None:
            follow_up(runtime, client, click, Outcome(actor, error=error))
            return
        if not pending:
            follow_up(runtime, client, click, Outcome(actor, changed=False))
            return
        view = msgs.load_view(runtime, click.approval_id)
        if view is not None:
            client.views_open(trigger_id=body["trigger_id"], view=reject_modal(view, click))

    @app.view(REJECT_MODAL)
    def on_reject_submit(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        view = body["view"]
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view["state"]["values"]
        reason = (values.get(REASON_BLOCK, {}).get(REASON_INPUT, {}) or {}).get("value") or ""
        user = body.get("user") or {}
        click = Click(
            team_id=str(user.get("team_id") or meta.get("team_id") or ""),
            user_id=str(user.get("id") or ""),
            approval_id=parse_id(str(meta.get("approval_id", "")), "approval request"),
            channel_id=meta.get("channel_id"),
            message_ts=meta.get("message_ts"),
            from_home=bool(meta.get("from_home")),
            message_has_buttons=False,
        )
        outcome = decide(
            runtime, click.team_id, click.user_id, click.approval_id, approve=False, reason=reason
        )
        if outcome.error:
            # Nothing was stored; the modal stays open with the message on the field.
            ack(response_action="errors", errors={REASON_BLOCK: outcome.error})
            return
        ack()
        follow_up(runtime, client, click, outcome)
