"""Forms for `/cro milestone add`, `/cro action add` and `/cro kpi report` given no arguments.

Open: pickers limited to what the user may use (their studies, the KPI catalogue, dates,
people). Submit: the same service functions the slash commands call; a `UserError`
becomes an inline error on the field it is about (`response_action: errors`), with
nothing stored.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.user_tz import user_timezone
from crobot.services import actions, approvals, kpis, milestones
from crobot.services.actor import Actor, resolve_actor
from crobot.services.errors import UserError
from crobot.services.home import MyStudy, orgs_for, studies_for
from crobot.services.kpi_catalog import iso_week_label
from crobot.services.runtime import Runtime
from crobot.storage.models import KpiDefinition, Priority, SubjectType

log = logging.getLogger(__name__)

MILESTONE_ADD, ACTION_ADD, KPI_REPORT = "milestone add", "action add", "kpi report"
CALLBACKS = {
    MILESTONE_ADD: "modal_milestone_add",
    ACTION_ADD: "modal_action_add",
    KPI_REPORT: "modal_kpi_report",
}
VALUE = "value"  # every input element's action_id; the block_id names the field
MAX_OPTIONS = 100  # Slack's limit for a static_select


# --- Block Kit pieces ---------------------------------------------------------------


def _text(s: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": s[:75]}


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _text(label), "value": value}


def _input(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str = ""
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": {**element, "action_id": VALUE},
        "optional": optional,
    }
    if hint:
        block["hint"] = _text(hint)
    return block


def _select(options: list[dict[str, Any]], initial: dict[str, Any] | None) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "static_select", "options": options[:MAX_OPTIONS]}
    if initial is not None:
        el["initial_option"] = initial
    return el


def _study_block(studies: list[MyStudy], initial_code: str | None) -> dict[str, Any]:
    options = [_option(f"{m.study.code} — {m.study.title}", m.study.code) for m in studies]
    initial = next((o for o in options if o["value"] == initial_code), None)
    if initial is None and len(options) == 1:
        initial = options[0]
    return _input("study", "Study", _select(options, initial))


def _date(initial: date | None = None) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "datepicker"}
    if initial is not None:
        el["initial_date"] = initial.isoformat()
    return el


def _plain(*, multiline: bool = False, max_length: int | None = None) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline}
    if max_length:
        el["max_length"] = max_length
    return el


@dataclass(frozen=True)
class FormContext:
    studies: list[MyStudy]
    initial_study: str | None
    today: date


def _milestone_blocks(session: Session, ctx: FormContext) -> list[dict[str, Any]]:
    orgs = [_option(o.name, o.name) for o in orgs_for(session, ctx.studies)]
    blocks = [
        _study_block(ctx.studies, ctx.initial_study),
        _input("name", "Milestone", _plain(max_length=200)),
        _input("planned", "Planned date", _date()),
    ]
    if orgs:
        blocks.append(
            _input(
                "org",
                "Responsible organisation",
                _select(orgs, None),
                optional=True,
                hint="Leave empty for your own organisation.",
            )
        )
    return blocks


def _action_blocks(session: Session, ctx: FormContext) -> list[dict[str, Any]]:
    prios = [_option(p.value, p.value) for p in Priority]
    normal = next(o for o in prios if o["value"] == Priority.NORMAL.value)
    return [
        _study_block(ctx.studies, ctx.initial_study),
        _input("title", "Action", _plain(max_length=300)),
        _input("owner", "Owner", {"type": "users_select"}),
        _input("due", "Due date", _date()),
        _input("priority", "Priority", _select(prios, normal), optional=True),
    ]


def _kpi_blocks(session: Session, ctx: FormContext) -> list[dict[str, Any]]:
    defs = session.scalars(select(KpiDefinition).order_by(KpiDefinition.label)).all()
    options = [_option(f"{d.label} ({d.unit})", d.key) for d in defs]
    return [
        _study_block(ctx.studies, ctx.initial_study),
        _input("kpi", "KPI", _select(options, None)),
        _input("value", "Value", _plain(max_length=40)),
        _input(
            "period",
            "Week",
            _date(ctx.today),
            optional=True,
            hint="Any day of the ISO week the value is for; empty means this week.",
        ),
        _input("note", "Note", _plain(multiline=True, max_length=500), optional=True),
    ]


_BUILDERS: dict[str, tuple[str, str, Callable[[Session, FormContext], list[dict[str, Any]]]]] = {
    MILESTONE_ADD: ("Add a milestone", "Add", _milestone_blocks),
    ACTION_ADD: ("Add an action item", "Add", _action_blocks),
    KPI_REPORT: ("Report a KPI value", "Report", _kpi_blocks),
}


def build_modal(
    session: Session,
    actor: Actor,
    kind: str,
    *,
    today: date,
    channel_id: str | None = None,
    initial_study: str | None = None,
) -> dict[str, Any]:
    if kind not in _BUILDERS:
        raise UserError(f"There is no form for `{kind}`.", "Forms: " + ", ".join(_BUILDERS) + ".")
    studies = studies_for(session, actor)
    if not studies:
        raise UserError(
            "You are not on any study, so there is nothing to add to.",
            "Ask a crobot admin to add you (`crobot person add`).",
        )
    title, submit, blocks = _BUILDERS[kind]
    return {
        "type": "modal",
        "callback_id": CALLBACKS[kind],
        "private_metadata": json.dumps({"channel_id": channel_id}),
        "title": _text(title[:24]),
        "submit": _text(submit),
        "close": _text("Cancel"),
        "blocks": blocks(session, FormContext(studies, initial_study, today)),
    }


def open_modal(
    runtime: Runtime,
    client: WebClient,
    trigger_id: str,
    actor: Actor,
    kind: str,
    *,
    today: date,
    channel_id: str | None = None,
    initial_study: str | None = None,
) -> None:
    """Open one of the forms; raises UserError when the user has nothing to use it for."""
    with runtime.db.read() as s:
        view = build_modal(
            s, actor, kind, today=today, channel_id=channel_id, initial_study=initial_study
        )
    client.views_open(trigger_id=trigger_id, view=view)


def open_modal_for(ctx: CommandContext, kind: str) -> Reply | None:
    """`/cro milestone add` (etc.) without arguments: open the form.

    Returns None when the form opened (nothing more to say), or a Reply explaining why not.
    """
    if not ctx.trigger_id:
        return Reply("I could not open the form here; give the arguments instead.")
    try:
        open_modal(
            ctx.runtime,
            ctx.client,
            ctx.trigger_id,
            ctx.actor,
            kind,
            today=ctx.today(),
            channel_id=ctx.channel_id,
            initial_study=ctx.link.study.code if ctx.link else None,
        )
    except UserError as exc:
        return Reply(str(exc))
    except SlackApiError as exc:
        log.warning("views.open failed: %s", exc.response.get("error"))
        return Reply("Slack did not open the form (it may have timed out); please try again.")
    return None


# --- Submissions ---------------------------------------------------------------------


def _values(view: dict[str, Any]) -> dict[str, str | None]:
    """block_id → the submitted value, whatever the element type."""
    out: dict[str, str | None] = {}
    for block_id, actions_ in (view.get("state") or {}).get("values", {}).items():
        el = actions_.get(VALUE) or {}
        if "selected_option" in el:
            out[block_id] = (el.get("selected_option") or {}).get("value")
        elif "selected_date" in el:
            out[block_id] = el.get("selected_date")
        elif "selected_user" in el:
            out[block_id] = el.get("selected_user")
        else:
            val = el.get("value")
            out[block_id] = val.strip() if isinstance(val, str) and val.strip() else None
    return out


# Which form field a service's message is about: pydantic names the field ("due: ..."),
# other messages are recognised by their words; the rest goes on the form's main field.
_FIELD_NAMES = {"owner_user_id": "owner", "owner_team_id": "owner", "planned": "planned"}
_KEYWORDS: dict[str, list[tuple[str, str]]] = {
    MILESTONE_ADD: [("planned", "planned"), ("organisation", "org"), ("study", "study")],
    ACTION_ADD: [("due", "due"), ("<@", "owner"), ("assign", "owner"), ("study", "study")],
    KPI_REPORT: [
        ("period", "period"),
        ("kpi `", "kpi"),
        ("organisation", "study"),
        ("study", "study"),
    ],
}
_MAIN = {MILESTONE_ADD: "name", ACTION_ADD: "title", KPI_REPORT: "value"}


def field_for(kind: str, message: str, fields: set[str]) -> str:
    m = re.match(r"^(\w+):", message)
    if m:
        name = _FIELD_NAMES.get(m.group(1), m.group(1))
        if name in fields:
            return name
    low = message.lower()
    for word, block in _KEYWORDS[kind]:
        if word in low and block in fields:
            return block
    return _MAIN[kind]


@dataclass(frozen=True)
class Submitted:
    confirmation: str
    approval_id: int | None = None


def _submit_milestone(s: Session, actor: Actor, v: dict[str, str | None], today: date) -> Submitted:
    ms = milestones.add(
        s,
        actor,
        today=today,
        study=v.get("study"),
        name=v.get("name"),
        planned=v.get("planned"),
        org=v.get("org"),
    )
    return Submitted(
        f"Added milestone #{ms.id} “{ms.name}” to {ms.study.code}, "
        f"planned {ms.planned_date.isoformat()}."
    )


def _submit_action(s: Session, actor: Actor, v: dict[str, str | None], today: date) -> Submitted:
    item = actions.add(
        s,
        actor,
        today=today,
        study=v.get("study"),
        title=v.get("title"),
        owner_user_id=v.get("owner"),
        due=v.get("due"),
        priority=v.get("priority") or Priority.NORMAL.value,
    )
    return Submitted(
        f"Added action #{item.id} “{item.title}” for <@{item.owner_user_id}> on "
        f"{item.study.code}, due {item.due_date.isoformat()}."
    )


def _submit_kpi(s: Session, actor: Actor, v: dict[str, str | None], today: date) -> Submitted:
    raw = v.get("value")
    try:
        value = float(raw.replace(",", "")) if raw else None
    except ValueError:
        value = None
    if value is None:
        raise UserError("value: Enter a number, e.g. 12 or 3.5.")
    data: dict[str, object] = {"study": v.get("study"), "kpi": v.get("kpi"), "value": value}
    if v.get("period"):
        data["period"] = iso_week_label(date.fromisoformat(str(v["period"])))
    if v.get("note"):
        data["note"] = v["note"]
    rep = kpis.report(s, actor, today=today, **data)
    approval_id = None
    text = f"Reported {rep.update.kpi.label} {rep.update.period_label}: {rep.update.value:g}."
    if rep.approval_requested:
        approval = approvals.for_subject(s, SubjectType.KPI_UPDATE, rep.update.id)
        approval_id = approval.id if approval else None
        text += " It awaits the sponsor's approval."
    return Submitted(text, approval_id)


_SUBMITTERS: dict[str, Callable[[Session, Actor, dict[str, str | None], date], Submitted]] = {
    MILESTONE_ADD: _submit_milestone,
    ACTION_ADD: _submit_action,
    KPI_REPORT: _submit_kpi,
}


def submit(
    runtime: Runtime, client: WebClient, kind: str, team_id: str, user_id: str, view: dict[str, Any]
) -> tuple[Submitted | None, dict[str, str]]:
    """Run the form's service call in one transaction: (result, {}) or (None, field errors)."""
    values = _values(view)
    with runtime.db.read() as s:
        actor = resolve_actor(s, team_id, user_id)
    today = runtime.today(user_timezone(runtime, client, actor))
    try:
        with runtime.db.write() as s:
            actor = resolve_actor(s, team_id, user_id)
            result = _SUBMITTERS[kind](s, actor, values, today)
    except UserError as exc:
        fields = set(values) | {_MAIN[kind]}
        message = re.sub(r"^\w+: ", "", exc.message)
        return None, {field_for(kind, exc.message, fields): message[:150]}
    return result, {}


def _submission_listener(runtime: Runtime, kind: str) -> Callable[..., None]:
    def on_submit(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        user = body.get("user") or {}
        team = str(user.get("team_id") or (body.get("team") or {}).get("id") or "")
        user_id = str(user.get("id") or "")
        view = body["view"]
        result, errors = submit(runtime, client, kind, team, user_id, view)
        if result is None:
            ack(response_action="errors", errors=errors)
            return
        ack()
        if result.approval_id is not None:
            runtime.approval_requested(result.approval_id)
        channel = json.loads(view.get("private_metadata") or "{}").get("channel_id")
        if channel:
            try:
                client.chat_postEphemeral(channel=channel, user=user_id, text=result.confirmation)
            except SlackApiError as exc:
                log.warning("confirmation failed: %s", exc.response.get("error"))

    return on_submit


def register(app: App, runtime: Runtime) -> None:
    for kind, callback_id in CALLBACKS.items():
        app.view(callback_id)(_submission_listener(runtime, kind))
