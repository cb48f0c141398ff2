"""`/cro milestone add | update | list`."""

from __future__ import annotations

from crobot.handlers.approval_news import approval_awaited
from crobot.handlers.blockkit import Mrkdwn, context, fmt, header, lines_block, section
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import (
    Verb,
    announce_audience,
    audience_note,
    by,
    date_option,
    dispatch_verb,
    reader_audience,
    shown_in_channel,
    split_study,
    study_for,
)
from crobot.services import milestones
from crobot.services.command_parser import classify, parse_id, suggest
from crobot.services.errors import UserError, msg
from crobot.services.lookup import org_by_name
from crobot.services.visibility import is_visible
from crobot.storage.models import Milestone, MilestoneStatus

ADD_HINT = milestones.ADD_HINT
UPDATE_HINT = milestones.UPDATE_HINT
LIST_HINT = "Write it as `/cro milestone list [STUDY] [--open|--late] [org:ORG]`."
WRITE_VERBS = frozenset({"add", "update"})
GROUP_HINT = "Use `/cro milestone add`, `update` or `list` (`/cro help milestone`)."


def milestone_command(ctx: CommandContext, args: list[str]) -> Reply:
    return dispatch_verb(ctx, args, "milestone", VERBS, GROUP_HINT)


def line(m: Milestone) -> Mrkdwn:
    parts = [fmt("#{} *{}*", m.id, m.name), fmt("planned {}", m.planned_date)]
    if m.forecast_date:
        parts.append(fmt("forecast {}", m.forecast_date))
    if m.actual_date:
        parts.append(fmt("actual {}", m.actual_date))
    if m.target_count:
        parts.append(fmt("{} patients", m.target_count))
    status = fmt("{}", m.status.value.replace("_", " "))
    if m.status_pinned:
        status += Mrkdwn(" (pinned)")
    parts.append(status)
    if m.risk_reason:
        parts.append(fmt("_{}_", m.risk_reason))
    if m.org:
        parts.append(fmt("{}", m.org.name))
    return Mrkdwn(" · ").join(parts)


def _add(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("planned", "org", "count"), flags=("shared",), hint=ADD_HINT)
    if p.mentions:
        raise UserError("Milestones have no owner mention.", ADD_HINT)
    code, rest = split_study(ctx, p.positionals, full=2, hint=ADD_HINT)
    planned = date_option(ctx, p.option("planned"), "planned date")
    if planned is None:
        raise UserError("A milestone needs a planned date (`planned:YYYY-MM-DD`).", ADD_HINT)
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, ADD_HINT)
        ms = milestones.add(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            name=rest[0],
            planned=planned,
            org=p.option("org"),
            shared="shared" in p.flags,
            count=p.option("count"),
        )
        visible = is_visible(s, announce_audience(ctx, study), ms)
        text = fmt(
            "Milestone #{} *{}* added to {} — planned {}",
            ms.id,
            ms.name,
            study.code,
            ms.planned_date,
        )
        if ms.org:
            text += fmt(" ({})", ms.org.name)
        summary = fmt("{} added milestone #{} {} to {}", ctx.mention, ms.id, ms.name, study.code)
    in_channel, note = shown_in_channel(visible)
    return Reply(
        summary,
        [section(fmt(":round_pushpin: {}{}", text, note)), context(by(ctx))],
        in_channel=in_channel,
    )


def _update(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("forecast", "status", "actual", "count"), hint=UPDATE_HINT)
    if p.mentions:
        raise UserError("Milestone updates take no mention.", UPDATE_HINT)
    if not p.positionals:
        raise UserError("Which milestone? Give its ID.", UPDATE_HINT)
    ms_id = parse_id(p.positionals[0], "milestone", UPDATE_HINT)
    extra = [w.lower() for w in p.positionals[1:]]
    if extra not in ([], ["done"]):
        raise UserError(msg("I don't understand `{}`.", " ".join(p.positionals[1:])), UPDATE_HINT)
    status_word = p.option("status")
    if extra == ["done"]:
        if status_word is not None:
            raise UserError("Give either `done` or `status:`, not both.", UPDATE_HINT)
        status_word = "done"
    status = None
    unpin = status_word is not None and status_word.lower() == "auto"
    if unpin:
        status_word = None
    if status_word is not None:
        allowed = ("planned", "at_risk", "done", "cancelled")
        key = status_word.lower().replace("-", "_").replace(" ", "_")
        if key not in allowed:
            did = suggest(key, allowed)
            bad = msg("`{}` is not a milestone status. {}", status_word, did)
            raise UserError(bad, UPDATE_HINT)
        status = MilestoneStatus(key)
    forecast = date_option(ctx, p.option("forecast"), "forecast date")
    actual = date_option(ctx, p.option("actual"), "actual date")
    with ctx.runtime.db.write() as s:
        change = milestones.update(
            s,
            ctx.actor,
            today=ctx.today(),
            id=ms_id,
            forecast=forecast,
            status=status,
            actual=actual,
            count=p.option("count"),
            unpin=unpin,
        )
        ms = change.milestone
        visible = is_visible(s, announce_audience(ctx, ms.study), ms)
        summary = line(ms)
        code = ms.study.code
    approval_awaited(ctx.runtime, change.approval_id)
    waiting = Mrkdwn(
        " — completion awaits the sponsor's approval" if change.approval_requested else ""
    )
    in_channel, note = shown_in_channel(visible)
    return Reply(
        fmt("{} updated milestone #{} on {}{}", ctx.mention, ms.id, code, waiting),
        [
            section(fmt(":pencil2: {}{}{}", summary, waiting, note)),
            context(fmt("{} · {}", code, by(ctx))),
        ],
        in_channel=in_channel,
    )


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("org",), flags=("open", "late"), hint=LIST_HINT)
    if len(p.positionals) > 1 or p.mentions:
        raise UserError("`milestone list` takes one study at most.", LIST_HINT)
    code = p.positionals[0] if p.positionals else None
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, LIST_HINT)
        aud = reader_audience(s, ctx, study)
        org_name = p.option("org")
        org = org_by_name(s, org_name) if org_name else None
        rows = milestones.list_for(
            s,
            aud,
            today=ctx.today(),
            open_only="open" in p.flags,
            late_only="late" in p.flags,
            org_id=org.id if org else None,
        )
        lines = [line(m) for m in rows]
    which = "late " if "late" in p.flags else ("open " if "open" in p.flags else "")
    title = f"{study.code}: {len(rows)} {which}milestone(s)" + (f" of {org.name}" if org else "")
    blocks = [header(title), context(audience_note(aud, study))]
    blocks += lines_block(lines, budget=45) if lines else [section(Mrkdwn("_None._"))]
    return Reply(Mrkdwn("\n").join([title, *lines[:20]]), blocks)


VERBS: dict[str, Verb] = {"add": _add, "update": _update, "list": _list}
