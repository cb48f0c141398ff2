"""`/cro status [STUDY]`: the study at a glance, for what this reader may see here."""

from __future__ import annotations

from crobot.handlers.blockkit import (
    Block,
    Mrkdwn,
    context,
    divider,
    fmt,
    header,
    lines_block,
    mention,
    section,
)
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import audience_note, reader_audience, study_for
from crobot.handlers.qtl_news import open_line
from crobot.services.command_parser import classify
from crobot.services.errors import UserError
from crobot.services.kpi_values import shown
from crobot.services.kpis import Trend, pending_mark
from crobot.services.status import StudyStatus, study_status
from crobot.storage.models import KpiDefinition, Milestone

HINT = "Write it as `/cro status [STUDY]`."


def _ms_line(m: Milestone) -> Mrkdwn:
    when = m.forecast_date or m.planned_date
    org = fmt(" · {}", m.org.name) if m.org else ""
    slip = (
        fmt(" (planned {})", m.planned_date)
        if m.forecast_date and m.forecast_date != m.planned_date
        else ""
    )
    return fmt("#{} *{}* — {}{}{}", m.id, m.name, when, slip, org)


def _kpi_line(d: KpiDefinition, t: Trend) -> Mrkdwn:
    # crobot's own words around the values: Mrkdwn, so their spaces are kept as written.
    # The target that applies to this study and organisation, saying which it is.
    # It may name an organisation: a value, escaped.
    target = Mrkdwn("") if t.target.value is None else fmt(" · {}", t.target.describe())
    mark = Mrkdwn("" if t.on_target is None else (" ✓" if t.on_target else " ✗"))
    return fmt(
        "{} · {}: *{}* {}{} {}{}{} ({})",
        d.label,
        t.org_name,
        shown(t.latest.value),
        d.unit,
        Mrkdwn(pending_mark(t.latest)),
        t.arrow,
        target,
        mark,
        t.latest.period_label,
    )


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
            context(audience_note(aud, study) + fmt(" · today {}", st.today)),
        ]
        blocks += _blocks(st)
        text = fmt(
            "{}: {} late milestone(s), {} open action(s) ({} overdue), {} pending approval(s)",
            study.code,
            len(st.late_milestones),
            st.open_actions,
            st.overdue_count,
            st.pending_count,
        )
    return Reply(text, blocks)


def _blocks(st: StudyStatus) -> list[Block]:
    late = [_ms_line(m) for m in st.late_milestones]
    nxt = [_ms_line(m) for m in st.next_milestones]
    blocks = [
        section(Mrkdwn(f"*Late milestones ({len(late)})*" if late else "*No late milestones*")),
        *lines_block(late, budget=8),
        section(Mrkdwn(f"*Due in 30 days ({len(nxt)})*" if nxt else "*Nothing due in 30 days*")),
        *lines_block(nxt, budget=6),
        divider(),
    ]
    overdue = [
        fmt(
            "#{} {} — {}, due {}",
            a.id,
            a.title,
            mention(a.owner_team_id, a.owner_user_id),
            a.due_date,
        )
        for a in st.overdue_actions
    ]
    actions = f"*Actions:* {st.open_actions} open, {st.overdue_count} overdue"
    blocks.append(section(Mrkdwn(actions)))
    blocks += lines_block(overdue, budget=8, total=st.overdue_count)
    kpi_lines = [_kpi_line(d, t) for d, trends in st.kpis for t in trends]
    if kpi_lines:
        blocks += [divider(), section(Mrkdwn("*KPIs (latest)*"))]
        blocks += lines_block(kpi_lines, budget=10)
    if st.open_breaches:
        lines = [open_line(b, st.today) for b in st.open_breaches]
        blocks += [divider(), section(Mrkdwn(f"*Open QTL breaches ({len(lines)})*"))]
        blocks += lines_block(lines, budget=6)
    if st.pending_count:
        blocks.append(context(Mrkdwn(f"{st.pending_count} submission(s) await approval.")))
    return blocks
