"""The Approve / Reject message in the sponsor channel: post it, and update it in place.

Posting is triggered by `runtime.approval_requested(id)` (after the submitting
transaction committed) and runs on a small executor, never on the request path that has
to ack Slack within 3 s. Every post, update and thread notice is an audit event.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select

from crobot.handlers.user_tz import user_timezone
from crobot.services import approval_log
from crobot.services.actor import SYSTEM, Actor, resolve_actor
from crobot.services.runtime import Runtime
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AudienceKind,
    ChannelLink,
    Organization,
    Study,
)

log = logging.getLogger(__name__)

APPROVE = "approval_approve"
REJECT = "approval_reject"
ACTIONS_BLOCK = "approval_actions"
METADATA_TYPE = "crobot_approval"
POST_RETRIES, POST_RETRY_DELAY = 10, 0.1


@dataclass(frozen=True)
class ApprovalView:
    """What a message needs to say about one approval (read in one session)."""

    id: int
    study_code: str
    org_name: str
    summary: dict[str, Any]
    requested_by: str
    requested_at: datetime
    state: ApprovalState
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    channel_id: str | None
    message_ts: str | None


def load_view(runtime: Runtime, approval_id: int) -> ApprovalView | None:
    with runtime.db.read() as s:
        row = s.execute(
            select(Approval, Study.code, Organization.name)
            .join(Study, Study.id == Approval.study_id)
            .join(Organization, Organization.id == Approval.org_id)
            .where(Approval.id == approval_id)
        ).one_or_none()
        if row is None:
            return None
        a, code, org = row
        return ApprovalView(
            a.id,
            code,
            org,
            dict(a.summary or {}),
            a.requested_by,
            a.requested_at,
            a.state,
            a.decided_by,
            a.decided_at,
            a.reason,
            a.channel_id,
            a.message_ts,
        )


def _num(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return f"{value:g}"
    return str(value)


def describe_change(view: ApprovalView) -> str:
    """What changed, old → new, in one or two lines of mrkdwn."""
    s = view.summary
    if s.get("kind") == "kpi":
        unit = f" ({s['unit']})" if s.get("unit") else ""
        text = (
            f"*{s.get('label', s.get('kpi'))}*{unit} for *{view.org_name}*, "
            f"period {s.get('period')}: {_num(s.get('old'))} → *{_num(s.get('new'))}*"
        )
    else:
        text = (
            f"Milestone *{s.get('milestone')}* ({view.org_name}) reported done on "
            f"{s.get('actual')} (planned {s.get('planned')}): "
            f"{s.get('from_status', 'planned')} → *done*"
        )
    if s.get("note"):
        text += f"\n> {s['note']}"
    return text


def plain_summary(view: ApprovalView) -> str:
    s = view.summary
    if s.get("kind") == "kpi":
        return f"{s.get('label', s.get('kpi'))} {s.get('period')}: {_num(s.get('new'))}"
    return f"milestone {s.get('milestone')} done"


def when(at: datetime, tz: str) -> str:
    """`14:05 CET on 25 Nov 2026` in the given zone."""
    local = at.astimezone(ZoneInfo(tz))
    return f"{local:%H:%M} {local.tzname()} on {local.day} {local:%b %Y}"


def decision_line(view: ApprovalView, tz: str, *, icon: bool = True) -> str:
    who = f"<@{approval_log.user_of(view.decided_by)}>"
    at = when(view.decided_at, tz) if view.decided_at else "an unknown time"
    if view.state == ApprovalState.APPROVED:
        return (":white_check_mark: " if icon else "") + f"Approved by {who} at {at}"
    return (":x: " if icon else "") + f"Rejected by {who} at {at}\n*Reason:* {view.reason or '—'}"


def already_decided_text(view: ApprovalView) -> str:
    verb = "approved" if view.state == ApprovalState.APPROVED else "rejected"
    return f"This request was already {verb} by <@{approval_log.user_of(view.decided_by)}>."


def message_blocks(view: ApprovalView, decider_tz: str | None = None) -> list[dict[str, Any]]:
    submitter = approval_log.user_of(view.requested_by)
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "block_id": "approval_summary",
            "text": {
                "type": "mrkdwn",
                "text": f"*Approval needed — {view.study_code}* (#{view.id})\n"
                + describe_change(view),
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Submitted by <@{submitter}> ({view.org_name}) · "
                    f"{view.requested_at:%Y-%m-%d %H:%M} UTC",
                }
            ],
        },
    ]
    if view.state == ApprovalState.PENDING:
        blocks.append(
            {
                "type": "actions",
                "block_id": ACTIONS_BLOCK,
                "elements": [
                    approval_button("Approve", APPROVE, view.id, "primary"),
                    approval_button("Reject", REJECT, view.id, "danger"),
                ],
            }
        )
    else:
        blocks.append(
            {
                "type": "section",
                "block_id": "approval_decision",
                "text": {"type": "mrkdwn", "text": decision_line(view, decider_tz or "UTC")},
            }
        )
    return blocks


def approval_button(label: str, action_id: str, approval_id: int, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": str(approval_id),
        "style": style,
    }


def message_text(view: ApprovalView) -> str:
    state = {"pending": "Approval needed", "approved": "Approved", "rejected": "Rejected"}
    return f"{state[view.state.value]} — {view.study_code}: {plain_summary(view)}"


def post_request(runtime: Runtime, client: WebClient, approval_id: int) -> list[tuple[str, str]]:
    """Post the request to every sponsor channel of the study; returns (channel, ts) posted.

    A request already posted (its primary message recorded) is not posted again, so a
    repeated notification cannot double-post.
    """
    view = load_view(runtime, approval_id)
    if view is None or view.state != ApprovalState.PENDING or view.message_ts:
        return []
    with runtime.db.read() as s:
        study_id = s.get_one(Approval, approval_id).study_id
        channels = list(
            s.scalars(
                select(ChannelLink.channel_id)
                .where(
                    ChannelLink.study_id == study_id,
                    ChannelLink.audience == AudienceKind.SPONSOR,
                )
                .order_by(ChannelLink.id)
            )
        )
    if not channels:
        log.warning("approval %s: study %s has no sponsor channel", approval_id, view.study_code)
        return []
    posted = []
    for channel in channels:
        try:
            resp = client.chat_postMessage(
                channel=channel,
                text=message_text(view),
                blocks=message_blocks(view),
                metadata={"event_type": METADATA_TYPE, "event_payload": {"approval_id": view.id}},
            )
        except SlackApiError as exc:
            log.warning("approval %s: post to a sponsor channel failed: %s", view.id, exc)
            continue
        ts = str(resp["ts"])
        with runtime.db.write() as s:
            approval_log.message_posted(s, SYSTEM, s.get_one(Approval, approval_id), channel, ts)
        posted.append((channel, ts))
    return posted


def refresh_messages(
    runtime: Runtime,
    client: WebClient,
    approval_id: int,
    actor: Actor,
    *,
    also: tuple[str, str] | None = None,
    notify_submitter: bool = True,
) -> None:
    """Show the decision in every posted copy (and `also`), then tell the submitter."""
    view = load_view(runtime, approval_id)
    if view is None:
        return
    decider_tz = decider_timezone(runtime, client, view)
    with runtime.db.read() as s:
        locations = approval_log.message_locations(s, s.get_one(Approval, approval_id))
    if also is not None and also not in locations:
        locations.append(also)
    updated: list[tuple[str, str]] = []
    for channel, ts in locations:
        try:
            client.chat_update(
                channel=channel,
                ts=ts,
                text=message_text(view),
                blocks=message_blocks(view, decider_tz),
            )
            updated.append((channel, ts))
        except SlackApiError as exc:
            log.warning("approval %s: chat.update failed: %s", view.id, exc)
    notified: tuple[str, str] | None = None
    if notify_submitter and view.channel_id and view.message_ts:
        try:
            client.chat_postMessage(
                channel=view.channel_id,
                thread_ts=view.message_ts,
                text=f"<@{approval_log.user_of(view.requested_by)}> your submission "
                f"({plain_summary(view)}): " + decision_line(view, decider_tz, icon=False),
            )
            notified = (view.channel_id, view.message_ts)
        except SlackApiError as exc:
            log.warning("approval %s: thread notice failed: %s", view.id, exc)
    if not updated and notified is None:
        return
    with runtime.db.write() as s:
        approval = s.get_one(Approval, approval_id)
        for channel, ts in updated:
            approval_log.message_updated(s, actor, approval, channel, ts)
        if notified is not None:
            approval_log.submitter_notified(s, actor, approval, *notified)


def decider_timezone(runtime: Runtime, client: WebClient, view: ApprovalView) -> str:
    """The decision is shown in the decider's zone, whoever triggers the re-render."""
    if not view.decided_by:
        return runtime.default_tz
    team, _, user = view.decided_by.rpartition(":")
    with runtime.db.read() as s:
        decider = resolve_actor(s, team, user)
    return user_timezone(runtime, client, decider)


def register(app: App, runtime: Runtime) -> None:
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="crobot-approval-post")
    client = app.client

    def _post(approval_id: int) -> None:
        try:
            # Told after commit by contract; a caller that notifies from inside its
            # transaction would make the row invisible for a moment, so wait briefly.
            for _ in range(POST_RETRIES):
                if load_view(runtime, approval_id) is not None:
                    break
                time.sleep(POST_RETRY_DELAY)
            post_request(runtime, client, approval_id)
        except Exception:  # a background post must log, not vanish
            log.exception("posting approval request %s failed", approval_id)

    def on_requested(approval_id: int) -> None:
        executor.submit(_post, approval_id)

    runtime.approval_listeners.append(on_requested)
