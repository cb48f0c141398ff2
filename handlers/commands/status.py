"""`/cro status [STUDY]`: the study at a glance, for what this reader may see here."""

from __future__ import annotations

from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import audience_note, reader_audience, study_for
from crobot.handlers.commands.render import (
    context,
    divider,
    esc,
    header,
    lines_block,
    reply,
    section,
)
from crobot.services.command_parser import classify
from crobot.services.errors import UserError
from crobot.services.status import study_status
from crobot.storage.models import Milestone

HINT = "Write it as `/cro status [STUDY]`."


def _ms_line(m: Milestone) -> str:
    when = m.forecast_date or m.planned_date
    org = f" · {esc(m.org.name)}" if m.org else ""
    slip = (
        f" (planned {m.planned_date})"
        if m.forecast_date and m.forecast_date != m.planned_date
        else ""
    )
    return f"#{m.id} *{esc(m.name)}* — {when}{slip}{org}"


def status_command(ctx: CommandContext, args: list[str]) -> Reply:
    parsed = classify(args, hint=HINT)
    if len(parsed.positionals) > 1 or parsed.mentions:
        raise UserError("`status` takes one study at most.", HINT)
    code = parsed.positionals[0] if parsed.positionals else None
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, HINT)
        aud = reader_audience(s, ctx, study)
        st = study_status(s, study, aud, today=ctx.today())
        blocks = [
            header(f"{study.code} — {study.title}"),
            context(audience_note(aud, study) + f" · today {st.today}"),
        ]
        late = [_ms_line(m) for m in st.late_milestones]
        nxt = [_ms_line(m) for m in st.next_milestones]
        blocks.append(
            section(f"*Late milestones ({len(late)})*" if late else "*No late milestones*")
        )
        blocks += lines_block(late, budget=8)
        blocks.append(
            section(f"*Due in 30 days ({len(nxt)})*" if nxt else "*Nothing due in 30 days*")
        )
        blocks += lines_block(nxt, budget=6)
        blocks.append(divider())
        overdue = [
            f"#{a.id} {esc(a.title)} — <@{a.owner_user_id}>, due {a.due_date}"
            for a in st.overdue_actions
        ]
        blocks.append(section(f"*Actions:* {st.open_actions} open, {st.overdue_count} overdue"))
        blocks += lines_block(overdue, budget=8, total=st.overdue_count)
        kpi_lines = []
        for d, trends in st.kpis:
            for t in trends:
                target = "" if d.target is None else f" (target {d.target:g})"
                mark = "" if t.on_target is None else (" ✓" if t.on_target else " ✗")
                pending = " ⏳" if t.latest.approval_state.value == "pending" else ""
                kpi_lines.append(
                    f"{esc(d.label)} · {esc(t.org_name)}: *{t.latest.value:g}* {esc(d.unit)} "
                    f"{t.arrow}{target}{mark}{pending} ({t.latest.period_label})"
                )
        if kpi_lines:
            blocks.append(divider())
            blocks.append(section("*KPIs (latest)*"))
            blocks += lines_block(kpi_lines, budget=10)
        if st.pending_count:
            blocks.append(context(f"{st.pending_count} submission(s) await approval."))
    text = (
        f"{study.code}: {len(late)} late milestone(s), {st.open_actions} open action(s) "
        f"({st.overdue_count} overdue), {st.pending_count} pending approval(s)"
    )
    return reply(text, blocks)
