"""`/cro kpi report | show | trend | list`."""

from __future__ import annotations

from crobot.handlers.approval_news import approval_awaited
from crobot.handlers.blockkit import Mrkdwn, context, fmt, header, lines_block, section
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import (
    Verb,
    announce_audience,
    audience_note,
    by,
    dispatch_verb,
    reader_audience,
    shown_in_channel,
    split_study,
    study_for,
)
from crobot.handlers.kpi_charts import visuals
from crobot.services import kpis
from crobot.services.command_parser import classify
from crobot.services.dates import parse_weeks
from crobot.services.errors import UserError
from crobot.services.kpi_values import shown, value_range
from crobot.services.lookup import kpi_by_key, kpi_definitions
from crobot.services.visibility import is_visible
from crobot.storage.models import KpiDefinition

REPORT_HINT = kpis.REPORT_HINT
SHOW_HINT = "Write it as `/cro kpi show STUDY KPI [last:8w]`."
TREND_HINT = "Write it as `/cro kpi trend STUDY KPI`."
WRITE_VERBS = frozenset({"report"})
GROUP_HINT = "Use `/cro kpi report`, `show`, `trend` or `list` (`/cro help kpi`)."
TREND_WEEKS = 8
NO_VALUES = Mrkdwn("_No values reported yet._")


def kpi_command(ctx: CommandContext, args: list[str]) -> Reply:
    return dispatch_verb(ctx, args, "kpi", VERBS, GROUP_HINT)


def _report(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("period", "note", "org"), hint=REPORT_HINT)
    if p.mentions:
        raise UserError("KPI reports take no mention.", REPORT_HINT)
    code, rest = split_study(ctx, p.positionals, full=3, hint=REPORT_HINT)
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, REPORT_HINT)
        done = kpis.report(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            kpi=rest[0],
            value=rest[1],  # as typed: the service reads it with the one KPI value parser
            period=p.option("period"),
            note=p.option("note"),
            org=p.option("org"),
        )
        up = done.update
        visible = is_visible(s, announce_audience(ctx, study), up)
        was = fmt(" (was {})", shown(done.previous.value)) if done.previous else Mrkdwn("")
        text = fmt(
            "{} for {} · {} · {}: *{}* {}{}",
            up.kpi.label,
            study.code,
            up.org.name,
            up.period_label,
            shown(up.value),
            up.kpi.unit,
            was,
        )
        if up.note:  # on one line: a note cannot forge a line of its own
            text += fmt("\n_{}_", up.note)
        summary = fmt(
            "{} reported {} for {}: {}", ctx.mention, up.kpi.label, study.code, shown(up.value)
        )
    approval_awaited(ctx.runtime, done.approval_id)
    waiting = Mrkdwn(" — awaits the sponsor's approval" if done.approval_requested else "")
    in_channel, note = shown_in_channel(visible)
    return Reply(
        summary + waiting,
        [section(fmt(":bar_chart: {}{}{}", text, waiting, note)), context(by(ctx))],
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
    by_org: dict[str, list[Mrkdwn]] = {}
    for pt in points:
        by_org.setdefault(pt.org_name, []).append(
            fmt("{}: *{}*{}", pt.period_label, shown(pt.value), Mrkdwn(kpis.pending_mark(pt)))
        )
    title = f"{kpi.label} — {study.code}, last {weeks} week(s)"
    lines = [fmt("*{}*\n", org) + Mrkdwn(" · ").join(vals) for org, vals in sorted(by_org.items())]
    blocks = [header(title), context(_kpi_note(kpi) + Mrkdwn(" · ") + audience_note(aud, study))]
    blocks += visuals(kpi, points)
    blocks += lines_block(lines, budget=40) if lines else [section(NO_VALUES)]
    counts = [fmt("{}: {} value(s)", org, len(vals)) for org, vals in by_org.items()]
    return Reply(fmt("{}: {}", title, Mrkdwn("; ").join(counts) or "no values"), blocks)


def _trend(ctx: CommandContext, words: list[str]) -> Reply:
    code, key, _ = _study_and_kpi(ctx, words, TREND_HINT)
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, TREND_HINT)
        kpi = kpi_by_key(s, key)
        aud = reader_audience(s, ctx, study)
        points = kpis.series(s, aud, kpi, since=kpis.since_weeks(ctx.today(), TREND_WEEKS))
    lines: list[Mrkdwn] = []
    for t in kpis.trend_of(kpi, points):
        # crobot's own words around the values: Mrkdwn, so their spaces are kept as written.
        change = Mrkdwn("" if t.change is None else f" {t.arrow} {t.change:+g}")
        verdict = Mrkdwn("" if t.good is None else (" (better)" if t.good else " (worse)"))
        target = Mrkdwn("")
        if kpi.target is not None:
            target = Mrkdwn(f" · target {shown(kpi.target)} " + ("✓" if t.on_target else "✗"))
        lines.append(
            fmt(
                "*{}*: {} {}{} in {}{}{}{}",
                t.org_name,
                shown(t.latest.value),
                kpi.unit,
                Mrkdwn(kpis.pending_mark(t.latest)),
                t.latest.period_label,
                change,
                verdict,
                target,
            )
        )
    title = f"{kpi.label} trend — {study.code}"
    blocks = [header(title), context(_kpi_note(kpi) + Mrkdwn(" · ") + audience_note(aud, study))]
    blocks += visuals(kpi, points)
    blocks += lines_block(lines, budget=40) if lines else [section(NO_VALUES)]
    return Reply(fmt("{}: {}", title, Mrkdwn("; ").join(lines) or "no values"), blocks)


def _key(kpi: KpiDefinition) -> Mrkdwn:
    """A KPI key is crobot's own word: only the shipped catalogue (`kpi_catalog.SHIPPED`)
    creates definitions, so it is shown as is (`screen_failure_rate`, not look-alikes)."""
    return Mrkdwn(f"`{kpi.key}`") if kpi.key.replace("_", "").isalnum() else fmt("`{}`", kpi.key)


def _kpi_note(kpi: KpiDefinition) -> Mrkdwn:
    better = "higher is better" if kpi.direction.value == "up" else "lower is better"
    return fmt("{} · {} · " + better, _key(kpi), kpi.unit)


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    if words:
        raise UserError("`kpi list` takes nothing more.", "Write it as `/cro kpi list`.")
    with ctx.runtime.db.read() as s:
        defs = kpi_definitions(s)
    lines = []
    for d in defs:
        target = "" if d.target is None else f", target {shown(d.target)}"
        arrow = "↑" if d.direction.value == "up" else "↓"
        valid = Mrkdwn(f", {value_range(d)}")
        lines.append(fmt("{} — {} ({}, {}{}{})", _key(d), d.label, d.unit, arrow, target, valid))
    blocks = [header("KPIs crobot tracks"), *lines_block(lines, budget=40)]
    return Reply(fmt("KPIs: {}", Mrkdwn(", ").join(_key(d) for d in defs)), blocks)


VERBS: dict[str, Verb] = {"report": _report, "show": _show, "trend": _trend, "list": _list}
