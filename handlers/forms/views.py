"""The forms' views: pickers limited to what the user may use (their studies, the KPIs
their organisation reports, dates, people).

Each input's `block_id` is the name of the service input it fills (`planned`,
`owner_user_id`, …), so a submission's values go to the service as they are, and a
`UserError` about a field (`UserError.field`) goes back next to that input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from slack_sdk import WebClient
from sqlalchemy.orm import Session

from crobot.handlers.blockkit import (
    Block,
    datepicker,
    input_block,
    modal,
    option,
    static_select,
    text_input,
)
from crobot.services.actor import Actor
from crobot.services.errors import UserError, msg
from crobot.services.home import MyStudy, orgs_for, studies_for
from crobot.services.lookup import reportable_kpis
from crobot.services.permissions import require_known
from crobot.services.runtime import Runtime
from crobot.storage.models import Priority

MILESTONE_ADD, ACTION_ADD, KPI_REPORT = "milestone add", "action add", "kpi report"
VALUE = "value"  # every input element's action_id; the block_id names the field


@dataclass(frozen=True)
class FormContext:
    studies: list[MyStudy]
    initial_study: str | None
    today: date
    actor: Actor


def _study_block(studies: list[MyStudy], initial_code: str | None) -> Block:
    options = [option(f"{m.study.code} — {m.study.title}", m.study.code) for m in studies]
    initial = next((o for o in options if o["value"] == initial_code), None)
    if initial is None and len(options) == 1:
        initial = options[0]
    return input_block("study", "Study", static_select(options, initial))


def _milestone_blocks(session: Session, ctx: FormContext) -> list[Block]:
    orgs = [option(o.name, o.name) for o in orgs_for(session, ctx.studies)]
    blocks = [
        _study_block(ctx.studies, ctx.initial_study),
        input_block("name", "Milestone", text_input(max_length=200)),
        input_block("planned", "Planned date", datepicker()),
    ]
    if len(orgs) > 1:  # one choice is no choice: it is the user's own organisation
        blocks.append(
            input_block(
                "org",
                "Responsible organisation",
                static_select(orgs),
                optional=True,
                hint="Leave empty for your own organisation.",
            )
        )
    return blocks


def _action_blocks(session: Session, ctx: FormContext) -> list[Block]:
    prios = [option(p.value, p.value) for p in Priority]
    normal = next(o for o in prios if o["value"] == Priority.NORMAL.value)
    return [
        _study_block(ctx.studies, ctx.initial_study),
        input_block("title", "Action", text_input(max_length=300)),
        input_block("owner_user_id", "Owner", {"type": "users_select"}),
        input_block("due", "Due date", datepicker()),
        input_block("priority", "Priority", static_select(prios, normal), optional=True),
    ]


def _kpi_blocks(session: Session, ctx: FormContext) -> list[Block]:
    # Only what the reporter's organisation reports (its kind's and everyone's KPIs), in
    # use: a vendor is not offered another kind's KPIs, nor anyone a retired one.
    defs = sorted(reportable_kpis(session, ctx.actor), key=lambda d: d.label)
    if not defs:
        raise UserError("There is no KPI in the catalogue that your organisation reports.")
    options = [option(f"{d.label} ({d.unit})", d.key) for d in defs]
    return [
        _study_block(ctx.studies, ctx.initial_study),
        input_block("kpi", "KPI", static_select(options)),
        input_block(
            "value",
            "Value",
            text_input(max_length=40),
            hint="e.g. 12, 1.5 or 1,5; 1,500 is fifteen hundred; % only for percentages.",
        ),
        input_block(
            "period",
            "Week",
            datepicker(ctx.today.isoformat()),
            optional=True,
            hint="Any day of the ISO week the value is for; empty means this week.",
        ),
        input_block("note", "Note", text_input(multiline=True, max_length=500), optional=True),
    ]


@dataclass(frozen=True)
class Layout:
    callback_id: str
    title: str
    submit: str
    fields: tuple[str, ...]  # the block ids, in the order the form shows them
    main: str  # where a message about no particular input of this form goes
    blocks: Callable[[Session, FormContext], list[Block]]


LAYOUTS: dict[str, Layout] = {
    MILESTONE_ADD: Layout(
        "modal_milestone_add",
        "Add a milestone",
        "Add",
        ("study", "name", "planned", "org"),
        "name",
        _milestone_blocks,
    ),
    ACTION_ADD: Layout(
        "modal_action_add",
        "Add an action item",
        "Add",
        ("study", "title", "owner_user_id", "due", "priority"),
        "title",
        _action_blocks,
    ),
    KPI_REPORT: Layout(
        "modal_kpi_report",
        "Report a KPI value",
        "Report",
        ("study", "kpi", "value", "period", "note"),
        "value",
        _kpi_blocks,
    ),
}
CALLBACKS = {kind: layout.callback_id for kind, layout in LAYOUTS.items()}
KINDS = {layout.callback_id: kind for kind, layout in LAYOUTS.items()}


def build_modal(
    session: Session,
    actor: Actor,
    kind: str,
    *,
    today: date,
    channel_id: str | None = None,
    initial_study: str | None = None,
) -> Block:
    layout = LAYOUTS.get(kind)
    if layout is None:
        raise UserError(msg("There is no form for `{}`.", kind), "Forms: " + ", ".join(LAYOUTS))
    require_known(actor)
    studies = studies_for(session, actor)
    if not studies:
        raise UserError(
            "You are not on any study, so there is nothing to add to.",
            "Ask a crobot admin to add you (`crobot person add`).",
        )
    return modal(
        layout.callback_id,
        layout.title,
        layout.blocks(session, FormContext(studies, initial_study, today, actor)),
        submit=layout.submit,
        private_metadata=json.dumps({"channel_id": channel_id}),
    )


def open_form(
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
