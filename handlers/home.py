"""App Home: the viewer's own actions, approvals they can decide, and their studies.

`app_home_opened` → `services.home.home_for` (read through the visibility rule) →
Block Kit → `views.publish`. Every action taken from the Home tab publishes it again.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import select

from crobot.handlers import approval_messages as msgs
from crobot.handlers.user_tz import user_timezone
from crobot.services import actions
from crobot.services.actor import resolve_actor
from crobot.services.command_parser import parse_id
from crobot.services.errors import UserError
from crobot.services.home import HomeModel, home_for
from crobot.services.runtime import Runtime
from crobot.storage.models import ActionItem, Organization, Priority

log = logging.getLogger(__name__)

DONE = "home_action_done"
MAX_BLOCKS = 100  # Slack's limit for Home views


def _section(text: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
    if accessory:
        block["accessory"] = accessory
    return block


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _action_line(item: ActionItem, today: date) -> dict[str, Any]:
    due = f"due {item.due_date.isoformat()}"
    if item.due_date < today:
        due += f" — *{(today - item.due_date).days} days overdue*"
    elif item.due_date == today:
        due += " — *today*"
    flag = " :small_red_triangle:" if item.priority == Priority.HIGH else ""
    done = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Done"},
        "action_id": DONE,
        "value": str(item.id),
    }
    return _section(f"*#{item.id}* {item.title}{flag}\n{item.study.code} · {due}", done)


def render(model: HomeModel, org_names: dict[int, str], notice: str | None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [_header("Your crobot")]
    if notice:
        blocks.append(_context(notice))
    if not model.registered:
        blocks.append(
            _section(
                "You are not registered with crobot yet, so there is nothing of yours to show. "
                "Ask a crobot admin to add you (`crobot person add`)."
            )
        )
        return {"type": "home", "blocks": blocks}
    blocks.append(_header("Overdue actions"))
    blocks += [_action_line(a, model.today) for a in model.overdue_actions] or [
        _context("Nothing overdue.")
    ]
    blocks.append(_header("Open actions"))
    blocks += [_action_line(a, model.today) for a in model.open_actions] or [
        _context("No open actions.")
    ]
    if model.approvals:
        blocks.append(_header("Approvals waiting for you"))
        for approval, study in model.approvals:
            view = msgs.ApprovalView(
                approval.id,
                study.code,
                org_names.get(approval.org_id, "?"),
                dict(approval.summary or {}),
                approval.requested_by,
                approval.requested_at,
                approval.state,
                None,
                None,
                None,
                approval.channel_id,
                approval.message_ts,
            )
            blocks.append(
                _section(f"*{study.code}* (#{approval.id}) " + msgs.describe_change(view))
            )
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"{msgs.ACTIONS_BLOCK}:{approval.id}",
                    "elements": [
                        msgs.approval_button("Approve", msgs.APPROVE, approval.id, "primary"),
                        msgs.approval_button("Reject", msgs.REJECT, approval.id, "danger"),
                    ],
                }
            )
    blocks.append(_header("Your studies"))
    for line in model.studies:
        ms = line.next_milestone
        if ms is None:
            nxt = "no open milestones"
        else:
            when = ms.forecast_date or ms.planned_date
            nxt = f"next milestone: {ms.name}, {when.isoformat()}"
            if ms.forecast_date and ms.forecast_date != ms.planned_date:
                nxt += f" (planned {ms.planned_date.isoformat()})"
        blocks.append(_section(f"*{line.study.code}* {line.study.title}\n{nxt}"))
    if not model.studies:
        blocks.append(_context("You are not on any study yet."))
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[: MAX_BLOCKS - 1] + [_context("More items than fit here; use `/cro`.")]
    return {"type": "home", "blocks": blocks}


def publish(
    runtime: Runtime, client: WebClient, team_id: str, user_id: str, *, notice: str | None = None
) -> dict[str, Any]:
    with runtime.db.read() as s:
        actor = resolve_actor(s, team_id, user_id)
    today = runtime.today(user_timezone(runtime, client, actor))
    with runtime.db.read() as s:
        actor = resolve_actor(s, team_id, user_id)
        model = home_for(s, actor, today=today)
        ids = {a.org_id for a, _ in model.approvals}
        rows = s.execute(select(Organization.id, Organization.name).where(Organization.id.in_(ids)))
        names: dict[int, str] = dict(rows.all())
        view = render(model, names, notice)
    client.views_publish(user_id=user_id, view=view)
    return view


def register(app: App, runtime: Runtime) -> None:
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        team = str(body.get("team_id") or event.get("team") or "")
        publish(runtime, client, team, str(event["user"]))

    @app.action(DONE)
    def on_done(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body.get("user") or {}
        team = str(user.get("team_id") or (body.get("team") or {}).get("id") or "")
        user_id = str(user.get("id") or "")
        notice = None
        try:
            with runtime.db.write() as s:
                actor = resolve_actor(s, team, user_id)
                acts = body.get("actions") or [{}]
                item_id = parse_id(str((acts[0] or {}).get("value") or ""), "action")
                item = actions.complete(s, actor, item_id)
                notice = f"Marked #{item.id} done."
        except UserError as exc:
            notice = exc.message
        publish(runtime, client, team, user_id, notice=notice)
