"""`/cro action add | done | list`."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from crobot.handlers.blockkit import Mrkdwn, context, fmt, header, lines_block, mention, section
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
from crobot.services import actions
from crobot.services.actor import UserKey
from crobot.services.command_parser import classify, parse_id, suggest
from crobot.services.errors import UserError, msg
from crobot.services.home import studies_for
from crobot.services.lookup import person_named, study_org_ids
from crobot.services.visibility import Audience, is_visible
from crobot.storage.models import ActionItem, ActionStatus, Priority

ADD_HINT = actions.ADD_HINT
DONE_HINT = "Write it as `/cro action done ID`."
LIST_HINT = "Write it as `/cro action list [STUDY] [@owner|mine] [--overdue] [--all]`."
WRITE_VERBS = frozenset({"add", "done"})
GROUP_HINT = "Use `/cro action add`, `done` or `list` (`/cro help action`)."


def action_command(ctx: CommandContext, args: list[str]) -> Reply:
    return dispatch_verb(ctx, args, "action", VERBS, GROUP_HINT)


def line(a: ActionItem) -> Mrkdwn:
    parts = [
        fmt("#{} *{}*", a.id, a.title),
        mention(a.owner_team_id, a.owner_user_id),
        fmt("due {}", a.due_date),
    ]
    if a.priority != Priority.NORMAL:
        parts.append(fmt("{}", a.priority.value))
    if a.status.value != "open":
        parts.append(fmt("{}", a.status.value))
    if a.owner_org:
        parts.append(fmt("{}", a.owner_org.name))
    return Mrkdwn(" · ").join(parts)


def _add(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, options=("due", "priority", "milestone"), flags=("shared",), hint=ADD_HINT)
    if len(p.mentions) != 1:
        raise UserError("Name exactly one owner with @.", ADD_HINT)
    code, rest = split_study(ctx, p.positionals, full=2, hint=ADD_HINT)
    due = date_option(ctx, p.option("due"), "due date")
    if due is None:
        raise UserError("An action needs a due date (`due:YYYY-MM-DD`, `due:fri`).", ADD_HINT)
    priority = (p.option("priority") or "normal").lower()
    if priority not in {x.value for x in Priority}:
        did = suggest(priority, [x.value for x in Priority])
        raise UserError(msg("`{}` is not a priority. {}", priority, did), ADD_HINT)
    ms_raw = p.option("milestone")
    ms_id = parse_id(ms_raw, "milestone", ADD_HINT) if ms_raw else None
    owner = p.mentions[0]
    with ctx.runtime.db.write() as s:
        study = study_for(s, ctx, code, ADD_HINT)
        item = actions.add(
            s,
            ctx.actor,
            today=ctx.today(),
            study=study.code,
            title=rest[0],
            owner_user_id=owner.user_id,
            due=due,
            priority=priority,
            milestone_id=ms_id,
            shared="shared" in p.flags,
        )
        visible = is_visible(s, announce_audience(ctx, study), item)
        summary = line(item)
        owner_mention = mention(item.owner_team_id, item.owner_user_id)
    in_channel, note = shown_in_channel(visible)
    return Reply(
        fmt("{} added action #{} for {} on {}", ctx.mention, item.id, owner_mention, study.code),
        [section(fmt(":memo: {}{}", summary, note)), context(fmt("{} · {}", study.code, by(ctx)))],
        in_channel=in_channel,
    )


def _done(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, hint=DONE_HINT)
    if len(p.positionals) != 1 or p.mentions:
        raise UserError("Give exactly one action ID.", DONE_HINT)
    action_id = parse_id(p.positionals[0], "action", DONE_HINT)
    with ctx.runtime.db.write() as s:
        item = actions.complete(s, ctx.actor, action_id)
        visible = is_visible(s, announce_audience(ctx, item.study), item)
        summary = line(item)
        code = item.study.code
    in_channel, note = shown_in_channel(visible)
    return Reply(
        fmt("{} completed action #{} on {}", ctx.mention, item.id, code),
        [
            section(fmt(":white_check_mark: {}{}", summary, note)),
            context(fmt("{} · {}", code, by(ctx))),
        ],
        in_channel=in_channel,
    )


def _list(ctx: CommandContext, words: list[str]) -> Reply:
    p = classify(words, flags=("overdue", "all"), hint=LIST_HINT)
    pos = list(p.positionals)
    mine = bool(pos) and pos[-1].lower() == "mine"
    if mine:
        pos.pop()
    if p.mentions and (mine or len(p.mentions) > 1):
        raise UserError("Filter by one owner: `@owner` or `mine`.", LIST_HINT)
    named = p.mentions[0].user_id if p.mentions else None
    if len(pos) > 1:
        raise UserError("`action list` takes one study at most.", LIST_HINT)
    code = pos[0] if pos else None
    if code is None and ctx.link is None:
        return _list_everywhere(ctx, mine, named, p.flags)
    today = ctx.today()
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, LIST_HINT)
        aud = reader_audience(s, ctx, study)
        owner = _owner(s, ctx, mine, named, study_org_ids(s, study))
        rows = _rows(s, aud, today, owner, p.flags)
        lines = [_listed(a, today) for a in rows]
    who = _for(owner)
    title = f"{study.code}: {len(rows)} {_kind(p.flags)}action(s)"
    blocks = [header(title), context(audience_note(aud, study) + who)]
    blocks += lines_block(lines, budget=45) if lines else [section(Mrkdwn("_None._"))]
    return Reply(Mrkdwn("\n").join([fmt("{}{}", title, who), *lines[:20]]), blocks)


def _owner(
    s: Session, ctx: CommandContext, mine: bool, named: str | None, org_ids: set[int]
) -> UserKey | None:
    """`mine` is the reader; `@owner` the person it names (`lookup.person_named`)."""
    if mine:
        return (ctx.team_id, ctx.user_id)
    if named is None:
        return None
    person = person_named(s, ctx.team_id, named, org_ids, field="owner")
    return (person.team_id, person.slack_user_id)


def _rows(
    s: Session, aud: Audience, today: date, owner: UserKey | None, flags: set[str]
) -> list[ActionItem]:
    return actions.list_for(
        s,
        aud,
        today=today,
        owner=owner,
        overdue="overdue" in flags,
        include_closed="all" in flags,
    )


def _for(owner: UserKey | None) -> Mrkdwn:
    return fmt(" for {}", mention(*owner)) if owner else Mrkdwn("")


def _kind(flags: set[str]) -> str:
    return "overdue " if "overdue" in flags else ("" if "all" in flags else "open ")


def _listed(a: ActionItem, today: date) -> Mrkdwn:
    late = a.due_date < today and a.status == ActionStatus.OPEN
    return line(a) + Mrkdwn(" · :red_circle: overdue" if late else "")


def _list_everywhere(ctx: CommandContext, mine: bool, named: str | None, flags: set[str]) -> Reply:
    """No study and no linked channel (e.g. a DM): every study the reader belongs to."""
    today = ctx.today()
    sections: list[Mrkdwn] = []
    total = 0
    with ctx.runtime.db.read() as s:
        studies = studies_for(s, ctx.actor)
        org_ids = {o for m in studies for o in study_org_ids(s, m.study)}
        owner = _owner(s, ctx, mine, named, org_ids)
        for my in studies:
            rows = _rows(s, my.audience, today, owner, flags)
            total += len(rows)
            if rows:
                listed = [_listed(a, today) for a in rows]
                sections.append(Mrkdwn("\n").join([fmt("*{}*", my.study.code), *listed]))
    who = _for(owner)
    title = f"{total} {_kind(flags)}action(s) across your studies"
    where = Mrkdwn("No study given and this channel is not linked.")
    blocks = [header(title), context(where + who)]
    blocks += lines_block(sections, budget=45) if sections else [section(Mrkdwn("_None._"))]
    return Reply(fmt("{}{}", title, who), blocks)


VERBS: dict[str, Verb] = {"add": _add, "done": _done, "list": _list}
