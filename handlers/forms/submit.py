"""Form submissions: the same service functions the slash commands call.

The ack function runs the service call in one transaction and answers at once: either
`ack()` or the inline errors (`response_action: errors`, each on the input its
`UserError.field` names), with nothing stored. Slack calls wait for the lazy listener:
the approvals surface is told about a new approval, and the user gets a confirmation.

The date a form is checked against ("in the past") is the user's today in their own
zone when crobot knows it without asking Slack — opening the form through `/cro` asked
already — else in the channel's zone: the ack has no time for `users.info`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from crobot.handlers import middleware
from crobot.handlers.approval_news import approval_awaited
from crobot.handlers.blockkit import Mrkdwn, fmt, mention, message, plain_str, section
from crobot.handlers.forms.views import ACTION_ADD, KINDS, KPI_REPORT, LAYOUTS, MILESTONE_ADD
from crobot.handlers.forms.views import VALUE as ACTION_ID
from crobot.handlers.handoff import hand_over, take_over
from crobot.handlers.middleware import Identity
from crobot.handlers.payload import DAMAGED_FORM, metadata, obj, optional_text
from crobot.services import actions, kpis, milestones
from crobot.services.actor import Actor, resolve_actor
from crobot.services.errors import UserError, msg
from crobot.services.kpi_catalog import FIELD as PERIOD
from crobot.services.kpi_catalog import iso_week_label
from crobot.services.kpi_values import shown
from crobot.services.lookup import channel_link
from crobot.services.permissions import require_known
from crobot.services.runtime import Runtime
from crobot.services.user_tz import zone_for

log = logging.getLogger(__name__)

SUBMITTED = "crobot_form_submitted"
MAX_ERROR = 150  # characters of an inline error: it shows under one input
UNAVAILABLE = "crobot's database is temporarily unavailable; try again in a minute."

# block_id (= the service input's name) -> what was entered; the service validates it.
Values = dict[str, Any]


@dataclass(frozen=True)
class Submitted:
    confirmation: Mrkdwn
    user_id: str
    channel_id: str | None
    approval_id: int | None = None


def form_values(view: dict[str, Any], fields: tuple[str, ...]) -> Values:
    """The form's own inputs that were filled in: block_id -> value, whatever the element."""
    out: Values = {}
    state = obj(obj(view.get("state")).get("values"))
    for block_id in fields:
        el = obj(obj(state.get(block_id)).get(ACTION_ID))
        if "selected_option" in el:
            value = obj(el.get("selected_option")).get("value")
        elif "selected_date" in el:
            value = el.get("selected_date")
        elif "selected_user" in el:
            value = el.get("selected_user")
        else:
            value = el.get("value")
        if isinstance(value, str) and value.strip():
            out[block_id] = value.strip()
    return out


def channel_of(view: dict[str, Any]) -> str | None:
    """The channel the form was opened from (its `private_metadata`), if it says.

    Metadata that is not what `views.build_modal` wrote is refused: nothing is stored.
    """
    meta = metadata(view)
    ok, channel = optional_text(meta or {}, "channel_id")
    if meta is None or not ok:
        raise UserError(DAMAGED_FORM)
    return channel


Stored = tuple[Mrkdwn, int | None]  # the confirmation, and the approval it awaits if any


def _milestone(s: Session, actor: Actor, v: Values, today: date) -> Stored:
    ms = milestones.add(s, actor, today=today, **v)
    text = fmt(
        "Added milestone #{} “{}” to {}, planned {}.",
        ms.id,
        ms.name,
        ms.study.code,
        ms.planned_date.isoformat(),
    )
    return text, None


def _action(s: Session, actor: Actor, v: Values, today: date) -> Stored:
    item = actions.add(s, actor, today=today, **v)
    text = fmt(
        "Added action #{} “{}” for {} on {}, due {}.",
        item.id,
        item.title,
        mention(item.owner_team_id, item.owner_user_id),
        item.study.code,
        item.due_date.isoformat(),
    )
    return text, None


def _kpi(s: Session, actor: Actor, v: Values, today: date) -> Stored:
    data = dict(v)
    if PERIOD in v:  # the datepicker names a day; the value is for that day's ISO week
        try:
            data[PERIOD] = iso_week_label(date.fromisoformat(str(v[PERIOD])))
        except ValueError:
            bad = msg("`{}` is not a date: pick a day of the week the value is for.", v[PERIOD])
            raise UserError(bad, field=PERIOD) from None
    rep = kpis.report(s, actor, today=today, **data)
    up = rep.update
    text = fmt("Reported {} {}: {}.", up.kpi.label, up.period_label, shown(up.value))
    if rep.approval_requested:
        text += Mrkdwn(" It awaits the sponsor's approval.")
    return text, rep.approval_id


_SUBMITTERS: dict[str, Callable[[Session, Actor, Values, date], Stored]] = {
    MILESTONE_ADD: _milestone,
    ACTION_ADD: _action,
    KPI_REPORT: _kpi,
}


def submit(runtime: Runtime, who: Identity, kind: str, view: dict[str, Any]) -> Submitted:
    """Run the form's service call in one transaction; a `UserError` stores nothing."""
    layout = LAYOUTS[kind]
    values = form_values(view, layout.fields)
    channel = channel_of(view)
    with runtime.db.write() as s:
        actor = resolve_actor(s, who.team_id, who.user_id)
        require_known(actor)
        link = channel_link(s, who.team_id, channel) if channel else None
        tz, _ = zone_for(s, actor, link, now=runtime.now(), default=runtime.default_tz)
        text, approval_id = _SUBMITTERS[kind](s, actor, values, runtime.today(tz))
    return Submitted(text, who.user_id, channel, approval_id)


def inline_errors(kind: str, err: UserError) -> dict[str, str]:
    """Each message on the input it is about; the rest on the form's main input."""
    layout = LAYOUTS[kind]
    messages = err.field_messages or {layout.main: err.message}
    out: dict[str, list[str]] = {}
    for name, text in messages.items():
        out.setdefault(name if name in layout.fields else layout.main, []).append(text)
    return {name: plain_str("; ".join(texts), MAX_ERROR) for name, texts in out.items()}


def on_submit(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """The ack function: store, or answer with the inline errors."""
    view = body.get("view") or {}
    kind = KINDS[str(view.get("callback_id"))]
    try:
        done = submit(middleware.runtime(context), middleware.identity(context), kind, view)
    except UserError as err:
        ack(response_action="errors", errors=inline_errors(kind, err))
        return
    except (DBAPIError, PoolTimeout) as exc:
        log.warning("database unavailable for a form: %s", type(exc).__name__)
        ack(response_action="errors", errors={LAYOUTS[kind].main: UNAVAILABLE})
        return
    hand_over(context, SUBMITTED, done)
    ack()


def after_submit(context: BoltContext, client: WebClient) -> None:
    """The lazy listener: tell the approvals surface, then confirm to the user."""
    done = take_over(context, SUBMITTED, Submitted)
    if done is None:
        return  # the ack answered with errors
    approval_awaited(middleware.runtime(context), done.approval_id)
    if not done.channel_id:
        return
    try:
        client.chat_postEphemeral(
            channel=done.channel_id,
            user=done.user_id,
            **message(done.confirmation, [section(done.confirmation)]),
        )
    except SlackApiError as exc:
        log.warning("confirmation failed: %s", exc.response.get("error"))
