"""`/cro kpi report | show | trend | list | target`.

The catalogue itself (`define`, `update`, `retire`) is the operator's, on the server
(`crobot kpi …`): asked for here, crobot says so and changes nothing."""

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
from crobot.services import kpi_targets, kpis
from crobot.services.command_parser import classify
from crobot.services.dates import parse_weeks
from crobot.services.errors import UserError
from crobot.services.kpi_targets import AppliedTarget, TargetBook
from crobot.services.kpi_values import shown, value_range
from crobot.services.lookup import kpi_by_key, kpi_definitions, reportable_kpis
from crobot.services.permissions import reportable_kinds, require_catalogue_editor
from crobot.services.visibility import Audience, is_visible
from crobot.storage.models import KpiDefinition, KpiKind

REPORT_HINT = kpis.REPORT_HINT
SHOW_HINT = "Write it as `/cro kpi show STUDY KPI [last:8w]`."
TREND_HINT = "Write it as `/cro kpi trend STUDY KPI`."
LIST_HINT = "Write it as `/cro kpi list [STUDY]`."
TARGET_HINT = kpi_targets.TARGET_HINT
WRITE_VERBS = frozenset({"report", "target"})
GROUP_HINT = "Use `/cro kpi report`, `show`, `trend`, `list` or `target` (`/cro help kpi`)."
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
        book = kpi_targets.targets_for_study(s, study.id)
    targets = _targets(book, kpi, points)
    by_org: dict[str, list[Mrkdwn]] = {}
    for pt in points:
        by_org.setdefault(pt.org_name, []).append(
            fmt("{}: *{}*{}", pt.period_label, shown(pt.value), Mrkdwn(kpis.pending_mark(pt)))
        )
    title = f"{kpi.label} — {study.code}, last {weeks} week(s)"
    lines = [fmt("*{}*\n", org) + Mrkdwn(" · ").join(vals) for org, vals in sorted(by_org.items())]
    blocks = [header(title), context(_kpi_note(kpi) + Mrkdwn(" · ") + audience_note(aud, study))]
    blocks.append(context(_targets_note(kpi, book, aud, targets)))
    blocks += visuals(kpi, points, targets)
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
        book = kpi_targets.targets_for_study(s, study.id)
    lines: list[Mrkdwn] = []
    trends = kpis.trend_of(kpi, points, lambda org_id: book.get(kpi.key, org_id, kpi.target))
    for t in trends:
        # crobot's own words around the values: Mrkdwn, so their spaces are kept as written.
        change = Mrkdwn("" if t.change is None else f" {t.arrow} {t.change:+g}")
        verdict = Mrkdwn("" if t.good is None else (" (better)" if t.good else " (worse)"))
        target = Mrkdwn("")
        if t.target.value is not None:  # this study's and organisation's, saying whose
            target = fmt(" · {} ", t.target.describe()) + Mrkdwn("✓" if t.on_target else "✗")
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
    targets = {t.org_name: t.target for t in trends}
    blocks = [header(title), context(_kpi_note(kpi) + Mrkdwn(" · ") + audience_note(aud, study))]
    blocks.append(context(_targets_note(kpi, book, aud, targets)))
    blocks += visuals(kpi, points, targets)
    blocks += lines_block(lines, budget=40) if lines else [section(NO_VALUES)]
    return Reply(fmt("{}: {}", title, Mrkdwn("; ").join(lines) or "no values"), blocks)


def _targets(
    book: TargetBook, kpi: KpiDefinition, points: list[kpis.Point]
) -> dict[str, AppliedTarget]:
    """The target that applies to each organisation shown, by its name."""
    return {p.org_name: book.get(kpi.key, p.org_id, kpi.target) for p in points}


def _targets_note(
    kpi: KpiDefinition, book: TargetBook, aud: Audience, targets: dict[str, AppliedTarget]
) -> Mrkdwn:
    """Which target each organisation shown is measured against, and whose it is."""
    if targets:
        parts = [fmt("{}: {}", org, t.describe()) for org, t in sorted(targets.items())]
        return Mrkdwn("Targets · ") + Mrkdwn("; ").join(parts)
    # No values yet: the target this reader's organisation (or the study) would meet.
    return fmt("Target: {}", book.get(kpi.key, aud.org_id, kpi.target).describe())


def _key(kpi: KpiDefinition) -> Mrkdwn:
    """A KPI key is crobot's own word (checked by `services.kpi_admin.check_key`: letters,
    digits and `_`), so it is shown as is (`screen_failure_rate`, not look-alikes)."""
    return Mrkdwn(f"`{kpi.key}`") if kpi.key.replace("_", "").isalnum() else fmt("`{}`", kpi.key)


def _kpi_note(kpi: KpiDefinition) -> Mrkdwn:
    better = "higher is better" if kpi.direction.value == "up" else "lower is better"
    retired = (
        f" · retired {kpi.retired_at.date().isoformat()}: no new values" if kpi.retired_at else ""
    )
    return fmt("{} · {} · " + better + retired, _key(kpi), kpi.unit)


KIND_NAMES = {
    KpiKind.CRO: "CROs",
    KpiKind.CMO: "CMOs",
    KpiKind.LAB: "labs",
    KpiKind.ANY: "everyone",
    KpiKind.SPONSOR: "the sponsor",
}


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, hint=LIST_HINT)
    if len(p.positionals) > 1 or p.mentions:
        raise UserError("`kpi list` takes one study at most.", LIST_HINT)
    with ctx.runtime.db.read() as s:
        defs = reportable_kpis(s, ctx.actor)
        everything = reportable_kinds(ctx.actor) is None
        retired = [d for d in kpi_definitions(s) if d.retired_at] if everything else []
        study = study_for(s, ctx, p.positionals[0], LIST_HINT) if p.positionals else None
        aud = reader_audience(s, ctx, study) if study else None
        book = kpi_targets.targets_for_study(s, study.id) if study else None
    lines = []
    for d in defs:
        # The study's target for the reader's own organisation (a vendor) or study-wide.
        t = book.get(d.key, aud.org_id if aud else None, d.target) if book else None
        target = (
            fmt(", {}", t.describe())
            if t is not None and t.value is not None
            else Mrkdwn("" if d.target is None else f", target {shown(d.target)}")
        )
        arrow = "↑" if d.direction.value == "up" else "↓"
        valid = Mrkdwn(f", {value_range(d)}, reported by {KIND_NAMES[d.kind]}")
        lines.append(fmt("{} — {} ({}, {}{}{})", _key(d), d.label, d.unit, arrow, target, valid))
    who = "The KPI catalogue" if everything else f"KPIs {_org_name(ctx)} reports"
    title = f"{who} — targets for {study.code}" if study else who
    note = (
        "↑ higher is better, ↓ lower is better. A study may set its own targets "
        "(`/cro kpi target`); `/cro kpi list STUDY` shows them."
    )
    blocks = [header(title), *lines_block(lines, budget=40), context(Mrkdwn(note))]
    if retired:
        keys = Mrkdwn(", ").join(_key(d) for d in retired)
        blocks.append(context(Mrkdwn("Retired (history kept, no new values): ") + keys))
    return Reply(fmt("KPIs: {}", Mrkdwn(", ").join(_key(d) for d in defs)), blocks)


def _org_name(ctx: CommandContext) -> str:
    person = ctx.actor.person
    return person.org.name if person is not None else "you"


def _target(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("org",), flags=("clear",), hint=TARGET_HINT)
    if p.mentions:
        raise UserError("Targets take no mention.", TARGET_HINT)
    clear = "clear" in p.flags
    code, rest = split_study(ctx, p.positionals, full=2 if clear else 3, hint=TARGET_HINT)
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, TARGET_HINT)
        if clear:
            change = kpi_targets.clear_target(
                s, ctx.actor, study=study.code, kpi=rest[0], org=p.option("org")
            )
        else:
            change = kpi_targets.set_target(
                s, ctx.actor, study=study.code, kpi=rest[0], value=rest[1], org=p.option("org")
            )
        whom = fmt(" for {}", change.org.name) if change.org else Mrkdwn(" study-wide")
        if change.value is None:
            was = fmt(" (was {})", shown(change.previous)) if change.previous is not None else ""
            text = fmt(
                "{} for {}{}: target cleared{}.", change.subject.label, study.code, whom, was
            )
        else:
            was = fmt(" (was {})", shown(change.previous)) if change.previous is not None else ""
            text = fmt(
                "{} for {}{}: {}{}.", change.subject.label, study.code, whom, change.describe(), was
            )
        summary = fmt("{} set a KPI target on {}", ctx.mention, study.code)
    return Reply(summary, [section(fmt(":dart: {}", text)), context(by(ctx))])


def _operator_only(ctx: CommandContext, words: list[str]) -> Reply:
    """`define`, `update`, `retire`: the catalogue is changed on the server only."""
    require_catalogue_editor(ctx.actor)
    raise UserError("KPI definitions are changed with `crobot kpi …` on the server.")


VERBS: dict[str, Verb] = {
    "report": _report,
    "show": _show,
    "trend": _trend,
    "list": _list,
    "target": _target,
    "define": _operator_only,
    "update": _operator_only,
    "retire": _operator_only,
}
