"""`/cro kpi report | show | trend | list`."""

from __future__ import annotations

from sqlalchemy import select

from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import (
    Verb,
    announce_audience,
    audience_note,
    dispatch_verb,
    notify_approval,
    reader_audience,
    shown_in_channel,
    split_study,
    study_for,
)
from crobot.handlers.commands.render import context, esc, header, lines_block, reply, section
from crobot.services import approvals, kpis
from crobot.services.command_parser import classify, parse_number
from crobot.services.dates import parse_weeks
from crobot.services.errors import UserError
from crobot.services.lookup import kpi_by_key
from crobot.services.visibility import is_visible
from crobot.storage.models import KpiDefinition, SubjectType

REPORT_HINT = kpis.REPORT_HINT
SHOW_HINT = "Write it as `/cro kpi show STUDY KPI [last:8w]`."
TREND_HINT = "Write it as `/cro kpi trend STUDY KPI`."
WRITE_VERBS = frozenset({"report"})
GROUP_HINT = "Use `/cro kpi report`, `show`, `trend` or `list` (`/cro help kpi`)."
TREND_WEEKS = 8


def kpi_command(ctx: CommandContext, args: list[str]) -> Reply:
    return dispatch_verb(ctx, args, "kpi", VERBS, GROUP_HINT)


def _report(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("period", "note", "org"), hint=REPORT_HINT)
    if p.mentions:
        raise UserError("KPI reports take no mention.", REPORT_HINT)
    code, rest = split_study(ctx, p.positionals, full=3, hint=REPORT_HINT)
    value = parse_number(rest[1], REPORT_HINT)
    approval_id: int | None = None
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, REPORT_HINT)
        done = kpis.report(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            kpi=rest[0],
            value=value,
            period=p.option("period"),
            note=p.option("note"),
            org=p.option("org"),
        )
        up = done.update
        if done.approval_requested:
            approval = approvals.for_subject(s, SubjectType.KPI_UPDATE, up.id)
            approval_id = approval.id if approval else None
        visible = is_visible(s, announce_audience(ctx, study), up)
        was = f" (was {done.previous.value:g})" if done.previous else ""
        text = (
            f"{esc(up.kpi.label)} for {study.code} · {esc(up.org.name)} · {up.period_label}: "
            f"*{up.value:g}* {esc(up.kpi.unit)}{was}"
        )
        if up.note:
            text += f"\n_{esc(up.note)}_"
    notify_approval(ctx, approval_id)
    waiting = " — awaits the sponsor's approval" if done.approval_requested else ""
    in_channel, note = shown_in_channel(visible)
    return reply(
        f"<@{ctx.user_id}> reported {up.kpi.label} for {study.code}: {up.value:g}{waiting}",
        [section(f":bar_chart: {text}{waiting}{note}"), context(f"by <@{ctx.user_id}>")],
        in_channel=in_channel,
    )


def _study_and_kpi(
    ctx: CommandContext, words: list[str], hint: str, options: tuple[str, ...] = ()
) -> tuple[str | None, str, dict[str, str]]:
    p = classify(words, options=options, hint=hint)
    if p.mentions:
        raise UserError("This takes no mention.", hint)
    code, rest = split_study(ctx, p.positionals, full=2, hint=hint)
    return code, rest[0], p.options


def _show(ctx: CommandContext, words: list[str]) -> Reply:
    code, key, opts = _study_and_kpi(ctx, words, SHOW_HINT, options=("last",))
    weeks = parse_weeks(opts["last"]) if "last" in opts else TREND_WEEKS
    since = kpis.since_weeks(ctx.today(), weeks)
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, SHOW_HINT)
        kpi = kpi_by_key(s, key)
        aud = reader_audience(s, ctx, study)
        points = kpis.series(s, aud, kpi, since=since)
    by_org: dict[str, list[str]] = {}
    for pt in points:
        mark = {"pending": " ⏳", "rejected": " ✗"}.get(pt.approval_state.value, "")
        by_org.setdefault(pt.org_name, []).append(f"{pt.period_label}: *{pt.value:g}*{mark}")
    title = f"{kpi.label} — {study.code}, last {weeks} week(s)"
    lines = [f"*{esc(org)}*\n" + " · ".join(vals) for org, vals in sorted(by_org.items())]
    blocks = [header(title), context(_kpi_note(kpi) + " · " + audience_note(aud, study))]
    blocks += lines_block(lines, budget=40) if lines else [section("_No values reported yet._")]
    return reply(
        title
        + ": "
        + ("; ".join(f"{o}: {len(v)} value(s)" for o, v in by_org.items()) or "no values"),
        blocks,
    )


def _trend(ctx: CommandContext, words: list[str]) -> Reply:
    code, key, _ = _study_and_kpi(ctx, words, TREND_HINT)
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, TREND_HINT)
        kpi = kpi_by_key(s, key)
        aud = reader_audience(s, ctx, study)
        points = kpis.series(s, aud, kpi, since=kpis.since_weeks(ctx.today(), TREND_WEEKS))
    lines = []
    for t in kpis.trend_of(kpi, points):
        change = "" if t.change is None else f" {t.arrow} {t.change:+g}"
        verdict = "" if t.good is None else (" (better)" if t.good else " (worse)")
        target = ""
        if kpi.target is not None:
            target = f" · target {kpi.target:g} " + ("✓" if t.on_target else "✗")
        lines.append(
            f"*{esc(t.org_name)}*: {t.latest.value:g} {esc(kpi.unit)} in {t.latest.period_label}"
            f"{change}{verdict}{target}"
        )
    title = f"{kpi.label} trend — {study.code}"
    blocks = [header(title), context(_kpi_note(kpi) + " · " + audience_note(aud, study))]
    blocks += lines_block(lines, budget=40) if lines else [section("_No values reported yet._")]
    return reply(title + (": " + "; ".join(lines) if lines else ": no values"), blocks)


def _kpi_note(kpi: KpiDefinition) -> str:
    better = "higher is better" if kpi.direction.value == "up" else "lower is better"
    return f"`{kpi.key}` · {esc(kpi.unit)} · {better}"


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    if words:
        raise UserError("`kpi list` takes nothing more.", "Write it as `/cro kpi list`.")
    with ctx.runtime.db.read() as s:
        defs = list(s.scalars(select(KpiDefinition).order_by(KpiDefinition.key)))
    lines = []
    for d in defs:
        target = "" if d.target is None else f", target {d.target:g}"
        arrow = "↑" if d.direction.value == "up" else "↓"
        lines.append(f"`{d.key}` — {esc(d.label)} ({esc(d.unit)}, {arrow}{target})")
    blocks = [header("KPIs crobot tracks")]
    blocks += lines_block(lines, budget=40)
    return reply("KPIs: " + ", ".join(d.key for d in defs), blocks)


VERBS: dict[str, Verb] = {"report": _report, "show": _show, "trend": _trend, "list": _list}
