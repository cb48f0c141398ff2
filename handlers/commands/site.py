"""`/cro site add | report | list`: a study's sites and their enrolment."""

from __future__ import annotations

from crobot.handlers.approval_news import approval_awaited
from crobot.handlers.blockkit import Mrkdwn, context, fmt, header, lines_block, section
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import (
    Verb,
    audience_note,
    by,
    date_option,
    dispatch_verb,
    reader_audience,
    split_study,
    study_for,
)
from crobot.services import sites
from crobot.services.command_parser import classify
from crobot.services.countries import COUNTRIES
from crobot.services.errors import UserError, msg
from crobot.storage.models import Site

ADD_HINT = sites.ADD_HINT
REPORT_HINT = sites.REPORT_HINT
LIST_HINT = "Write it as `/cro site list [STUDY]`."
UPDATE_HINT = sites.UPDATE_HINT
WRITE_VERBS = frozenset({"add", "update", "report"})
GROUP_HINT = "Use `/cro site add`, `update`, `report` or `list` (`/cro help site`)."


def site_command(ctx: CommandContext, args: list[str]) -> Reply:
    return dispatch_verb(ctx, args, "site", VERBS, GROUP_HINT)


def _add(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("country", "org", "planned", "activated"), hint=ADD_HINT)
    if p.mentions:
        raise UserError("Sites have no owner mention.", ADD_HINT)
    code, rest = split_study(ctx, p.positionals, full=3, hint=ADD_HINT)
    if p.option("country") is None:
        raise UserError("Which country? Give `country:` (ISO code, e.g. DE).", ADD_HINT)
    planned = date_option(ctx, p.option("planned"), "planned activation date")
    activated = date_option(ctx, p.option("activated"), "activation date")
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, ADD_HINT)
        site = sites.add(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            code=rest[0],
            name=rest[1],
            country=p.option("country"),
            org=p.option("org"),
            planned=planned,
            activated=activated,
        )
        when = (
            fmt("activated {}", site.activated_on)
            if site.activated_on
            else fmt("planned {}", site.planned_activation or "—")
        )
        text = fmt(
            "Site *{}* {} added to {} — {} · {} · {}",
            site.code,
            site.name,
            study.code,
            COUNTRIES[site.country],
            site.org.name,
            when,
        )
        summary = fmt("{} added site {} to {}", ctx.mention, site.code, study.code)
    # Sites follow their organisation's visibility: the answer is the person's own.
    return Reply(summary, [section(fmt(":hospital: {}", text)), context(by(ctx))])


def _update(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("planned", "activated", "closed"), hint=UPDATE_HINT)
    if p.mentions:
        raise UserError("Site updates take no mention.", UPDATE_HINT)
    code, rest = split_study(ctx, p.positionals, full=2, hint=UPDATE_HINT)
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, UPDATE_HINT)
        site = sites.update(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            site=rest[0],
            planned=date_option(ctx, p.option("planned"), "planned activation date"),
            activated=date_option(ctx, p.option("activated"), "activation date"),
            closed=date_option(ctx, p.option("closed"), "closing date"),
        )
        text = _site_line(site)
        summary = fmt("{} updated site {} on {}", ctx.mention, site.code, study.code)
    return Reply(summary, [section(fmt(":hospital: {}", text)), context(by(ctx))])


def _site_line(site: Site) -> Mrkdwn:
    when = (
        fmt("activated {}", site.activated_on)
        if site.activated_on
        else fmt("planned {}", site.planned_activation or "—")
    )
    if site.closed_on:
        when += fmt(", closed {}", site.closed_on)
    return fmt(
        "*{}* {} · {} · {} · {} · {}",
        site.code,
        site.name,
        site.country,
        site.org.name,
        site.status.value,
        when,
    )


def _report(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("period",), hint=REPORT_HINT)
    if p.mentions:
        raise UserError("Site reports take no mention.", REPORT_HINT)
    code, rest = split_study(ctx, p.positionals, full=4, hint=REPORT_HINT)
    if rest[1].lower() != "enrolled":
        raise UserError(msg("I don't understand `{}`.", rest[1]), REPORT_HINT)
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, REPORT_HINT)
        done = sites.report(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            site=rest[0],
            enrolled=rest[2],  # as typed: the service reads it
            period=p.option("period"),
        )
        r = done.report
        was = fmt(" (was {})", done.previous.enrolled) if done.previous else Mrkdwn("")
        text = fmt(
            "Enrolment for {} · site {} · {}: *{}* patient(s){}",
            study.code,
            r.site.code,
            r.period_label,
            r.enrolled,
            was,
        )
        summary = fmt(
            "{} reported enrolment at site {} on {}", ctx.mention, r.site.code, study.code
        )
    approval_awaited(ctx.runtime, done.approval_id)
    waiting = Mrkdwn(" — awaits the sponsor's approval" if done.approval_requested else "")
    return Reply(
        summary + waiting,
        [section(fmt(":busts_in_silhouette: {}{}", text, waiting)), context(by(ctx))],
    )


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, hint=LIST_HINT)
    if len(p.positionals) > 1 or p.mentions:
        raise UserError("`site list` takes one study at most.", LIST_HINT)
    code = p.positionals[0] if p.positionals else None
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, LIST_HINT)
        aud = reader_audience(s, ctx, study)
        rows = sites.list_for(s, aud)
        roll = sites.rollup(rows)
        lines = []
        for r in rows:
            pending = fmt(" ({} pending approval)", r.pending) if r.pending else Mrkdwn("")
            lines.append(_site_line(r.site) + fmt(" · {} enrolled{}", r.enrolled, pending))
    title = f"{study.code}: {roll.sites} site(s), {roll.enrolled} enrolled"
    first = roll.first_activated.isoformat() if roll.first_activated else "—"
    last = roll.all_activated.isoformat() if roll.all_activated else "not yet"
    rolled = fmt(
        "{} active · first site activated {} · all sites activated {}", roll.active, first, last
    )
    blocks = [header(title), context(audience_note(aud, study)), section(rolled)]
    blocks += lines_block(lines, budget=40) if lines else [section(Mrkdwn("_No sites._"))]
    return Reply(Mrkdwn("\n").join([title, *lines[:20]]), blocks)


VERBS: dict[str, Verb] = {"add": _add, "update": _update, "report": _report, "list": _list}
