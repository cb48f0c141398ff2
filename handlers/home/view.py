"""The App Home view: the viewer's own actions, approvals they can decide, their studies.

`services.home.home_for` (read through the visibility rule) → Block Kit → `views.publish`.
Every title, name and note in it is a person's text and goes through the builder's escape.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from slack_sdk import WebClient

from crobot.handlers import blockkit as bk
from crobot.handlers.approvals import messages
from crobot.handlers.blockkit import Block, Mrkdwn, fmt, wording
from crobot.handlers.home.pin import SET_PIN
from crobot.handlers.middleware import Identity
from crobot.handlers.qtl_news import open_line
from crobot.handlers.user_tz import user_timezone
from crobot.services.actor import resolve_actor
from crobot.services.errors import NotRegistered
from crobot.services.home import HomeModel, StudyLine, home_for
from crobot.services.permissions import require_known
from crobot.services.runtime import Runtime
from crobot.storage.models import ActionItem, Priority

DONE = "home_action_done"


def _action_line(item: ActionItem, today: date) -> Block:
    due = fmt("due {}", item.due_date.isoformat())
    if item.due_date < today:
        due += fmt(" — *{} days overdue*", (today - item.due_date).days)
    elif item.due_date == today:
        due += Mrkdwn(" — *today*")
    flag = Mrkdwn(" :small_red_triangle:" if item.priority == Priority.HIGH else "")
    return bk.section(
        fmt("*#{}* {}{}\n{} · {}", item.id, item.title, flag, item.study.code, due),
        accessory=bk.button("Done", DONE, str(item.id)),
    )


def _study_line(entry: StudyLine) -> Block:
    ms = entry.next_milestone
    if ms is None:
        nxt = Mrkdwn("no open milestones")
    else:
        when = ms.forecast_date or ms.planned_date
        nxt = fmt("next milestone: {}, {}", ms.name, when.isoformat())
        if ms.forecast_date and ms.forecast_date != ms.planned_date:
            nxt += fmt(" (planned {})", ms.planned_date.isoformat())
    return bk.section(fmt("*{}* {}\n{}", entry.study.code, entry.study.title, nxt))


def render(model: HomeModel, notice: Mrkdwn | None) -> Block:
    blocks: list[Block] = [bk.header("Your crobot")]
    if notice:
        blocks.append(bk.context(notice))
    blocks.append(bk.header("Overdue actions"))
    blocks += [_action_line(a, model.today) for a in model.overdue_actions] or [
        bk.context(Mrkdwn("Nothing overdue."))
    ]
    blocks.append(bk.header("Open actions"))
    blocks += [_action_line(a, model.today) for a in model.open_actions] or [
        bk.context(Mrkdwn("No open actions."))
    ]
    if model.approvals:
        blocks.append(bk.header("Approvals waiting for you"))
        for rec in model.approvals:
            blocks.append(
                bk.section(fmt("*{}* (#{}) ", rec.study, rec.id) + messages.describe_change(rec))
            )
            block_id = f"{messages.ACTIONS_BLOCK}:{rec.id}"
            blocks.append(messages.decide_buttons(rec.id, block_id=block_id))
    if model.breaches:
        blocks.append(bk.header("Open QTL breaches"))
        blocks += bk.lines_block([open_line(b, model.today) for b in model.breaches], budget=6)
    if model.decided:
        blocks.append(bk.header("Recent decisions"))
        for rec in model.decided:
            line = fmt("*{}* (#{}) ", rec.study, rec.id) + messages.plain_summary(rec)
            blocks.append(bk.section(line))
            blocks += messages.signature_block(rec)
    if model.signer:
        label = "Change signing PIN" if model.has_pin else "Set signing PIN"
        state = "is set" if model.has_pin else "is not set yet"
        blocks.append(
            bk.section(
                Mrkdwn(
                    f"Your signing PIN {state}. In 21 CFR Part 11 studies a decision is your "
                    "electronic signature: your Slack identity and this PIN."
                ),
                accessory=bk.button(label, SET_PIN, "pin"),
            )
        )
    blocks.append(bk.header("Your studies"))
    blocks += [_study_line(entry) for entry in model.studies] or [
        bk.context(Mrkdwn("You are not on any study yet."))
    ]
    return bk.home(blocks)


def access(err: NotRegistered) -> Block:
    """Someone crobot does not know: how to get access, and nothing else."""
    return bk.home(
        [
            bk.header("Your crobot"),
            bk.section(wording(err.message)),
            bk.context(wording(err.hint or "")),
        ]
    )


def _view(runtime: Runtime, client: WebClient, who: Identity, notice: Mrkdwn | None) -> Block:
    try:
        with runtime.db.read() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            require_known(actor)  # before anything else, users.info included
        today = runtime.today(user_timezone(runtime, client, actor))
        with runtime.db.read() as s:
            actor = resolve_actor(s, who.team_id, who.user_id)
            return render(home_for(s, actor, today=today), notice)
    except NotRegistered as err:
        return access(err)


def publish(
    runtime: Runtime, client: WebClient, who: Identity, *, notice: Mrkdwn | None = None
) -> dict[str, Any]:
    """Build the viewer's Home tab and publish it (a Slack call: lazy listeners only)."""
    view = _view(runtime, client, who, notice)
    client.views_publish(user_id=who.user_id, view=view)
    return view
