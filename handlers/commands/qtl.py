"""`/cro qtl set | list | off`: a study's quality tolerance limits and open breaches."""

from __future__ import annotations

from crobot.handlers.blockkit import (
    Mrkdwn,
    context,
    fmt,
    header,
    lines_block,
    mention,
    section,
)
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import (
    Verb,
    audience_note,
    by,
    dispatch_verb,
    reader_audience,
    split_study,
    study_for,
)
from crobot.services import qtl
from crobot.services.command_parser import classify, parse_id
from crobot.services.errors import UserError
from crobot.services.kpi_values import shown
from crobot.storage.models import QualityLimit

SET_HINT = qtl.SET_HINT
LIST_HINT = "Write it as `/cro qtl list [STUDY]`."
OFF_HINT = "Write it as `/cro qtl off ID` (the id `/cro qtl list` shows)."
WRITE_VERBS = frozenset({"set", "off"})
GROUP_HINT = "Use `/cro qtl set`, `list` or `off` (`/cro help qtl`)."


def qtl_command(ctx: CommandContext, args: list[str]) -> Reply:
    return dispatch_verb(ctx, args, "qtl", VERBS, GROUP_HINT)


def limit_line(lim: QualityLimit) -> Mrkdwn:
    warn = (
        fmt(" · warning {}", qtl.limit_text(lim.bound, lim.warn_value))
        if lim.warn_value is not None
        else Mrkdwn("")
    )
    who = lim.org.name if lim.org is not None else "trial level"
    text = fmt(
        "#{} *{}* {} · {}{}",
        lim.id,
        lim.kpi.label,
        qtl.limit_text(lim.bound, lim.limit_value),
        who,
        warn,
    )
    if lim.rationale:
        text += fmt(" — _{}_", lim.rationale)
    return text


def _set(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("max", "min", "warn", "org", "rationale"), hint=SET_HINT)
    if p.mentions:
        raise UserError("Limits take no mention.", SET_HINT)
    code, rest = split_study(ctx, p.positionals, full=2, hint=SET_HINT)
    given = [b for b in ("max", "min") if p.option(b) is not None]
    if len(given) != 1:
        raise UserError("Give the limit as `max:N` or `min:N` (one of them).", SET_HINT)
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, SET_HINT)
        lim = qtl.set_limit(
            s,
            ctx.actor,
            study=study.code,
            kpi=rest[0],
            bound=given[0],
            limit=p.option(given[0]),
            warn=p.option("warn"),
            org=p.option("org"),
            rationale=p.option("rationale"),
        )
        text = limit_line(lim)
        summary = fmt("{} set a quality tolerance limit on {}", ctx.mention, study.code)
    return Reply(summary, [section(fmt(":straight_ruler: {}", text)), context(by(ctx))])


def _off(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, hint=OFF_HINT)
    if len(p.positionals) != 1 or p.mentions:
        raise UserError("Name one limit by its id.", OFF_HINT)
    limit_id = parse_id(p.positionals[0], "limit", OFF_HINT)
    with ctx.runtime.db.write() as s:
        lim = qtl.turn_off(s, ctx.actor, limit_id)
        text = fmt("Limit #{} ({}) is withdrawn.", lim.id, lim.kpi.label)
        summary = fmt("{} withdrew a quality tolerance limit", ctx.mention)
    return Reply(summary, [section(text), context(by(ctx))])


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, hint=LIST_HINT)
    if len(p.positionals) > 1 or p.mentions:
        raise UserError("`qtl list` takes one study at most.", LIST_HINT)
    code = p.positionals[0] if p.positionals else None
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, LIST_HINT)
        aud = reader_audience(s, ctx, study)
        lines = [limit_line(lim) for lim in qtl.limits(s, study.id, aud)]
        open_lines = [
            fmt(
                "#{} *{}* {} · {}: {} (limit {}) · owner {}",
                b.id,
                b.kpi.label,
                b.org.name,
                b.period_label,
                shown(b.observed),
                qtl.limit_text(b.bound, b.limit_value),
                mention(b.owner_team_id, b.owner_user_id) if b.owner_user_id else "none",
            )
            for b in qtl.breaches(s, aud, open_only=True)
        ]
    title = f"{study.code}: {len(lines)} quality tolerance limit(s)"
    blocks = [header(title), context(audience_note(aud, study))]
    blocks += lines_block(lines, budget=20) if lines else [section(Mrkdwn("_No limits._"))]
    if open_lines:
        blocks.append(section(Mrkdwn(f"*Open breaches ({len(open_lines)})*")))
        blocks += lines_block(open_lines, budget=20)
    return Reply(Mrkdwn("\n").join([title, *lines[:20], *open_lines[:20]]), blocks)


VERBS: dict[str, Verb] = {"set": _set, "off": _off, "list": _list}
