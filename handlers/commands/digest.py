"""`/cro digest preview | schedule "Mon,Thu 09:00" [tz:Asia/Kolkata] | off | charts on|off`.

Thin: parse the words, call `digests.schedule` (rules, validation, audit) or
`digests.compose`/`render`, and answer. The running scheduler is told after commit.
"""

from __future__ import annotations

import difflib
from datetime import UTC

from crobot.digests import schedule as schedule_service
from crobot.digests.compose import compose
from crobot.digests.render import render
from crobot.digests.schedule import SCHEDULE_HINT, Schedule
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.services.errors import UserError
from crobot.services.lookup import vendor_org_ids
from crobot.services.visibility import audience_for_channel, audience_for_person, narrowest
from crobot.storage.models import ChannelLink

WORDS = ("preview", "schedule", "off", "charts")
USAGE = (
    '`/cro digest preview` · `/cro digest schedule "Mon,Thu 09:00" [tz:Europe/Berlin]` · '
    "`/cro digest off` · `/cro digest charts on|off`"
)


def digest_command(ctx: CommandContext, args: list[str]) -> Reply:
    if not args:
        raise UserError("Which digest command?", USAGE)
    word, rest = args[0].lower(), args[1:]
    if ctx.link is None:
        raise UserError(
            "This channel is not linked to a study, so it has no digest.",
            "An admin links it with `crobot channel link`.",
        )
    if word == "preview":
        return _preview(ctx)
    if word == "schedule":
        return _schedule(ctx, rest)
    if word == "off":
        return _off(ctx)
    if word == "charts":
        return _charts(ctx, rest)
    close = difflib.get_close_matches(word, WORDS, n=1)
    hint = f"Did you mean `{close[0]}`? " if close else ""
    raise UserError(f"I don't know `digest {word}`.", hint + USAGE)


def _link_id(ctx: CommandContext) -> int:
    assert ctx.link is not None  # checked by digest_command
    return ctx.link.id


def _preview(ctx: CommandContext) -> Reply:
    with ctx.runtime.db.read() as s:
        link = s.get(ChannelLink, _link_id(ctx))
        if link is None:
            raise UserError("This channel is no longer linked.")
        person = audience_for_person(ctx.actor, link.study, vendor_org_ids(s, link.study_id))
        # Ephemeral, but still never more than both the person and the channel may see.
        view = compose(
            s, link, ctx.runtime.now(), audience=narrowest(person, audience_for_channel(link))
        )
    out = render(view)
    return Reply(text=out.text, blocks=out.blocks)


def _parse_schedule(rest: list[str]) -> dict[str, object]:
    words = " ".join(rest).replace('"', " ").replace("\u201c", " ").replace("\u201d", " ").split()
    tz = None
    spec_words = []
    for w in words:
        if w.lower().startswith("tz:"):
            tz = w[3:]
        else:
            spec_words.append(w)
    days, time = schedule_service.parse_spec(" ".join(spec_words))
    data: dict[str, object] = {"days": days, "time": time}
    if tz is not None:
        data["timezone"] = tz
    return data


def _schedule(ctx: CommandContext, rest: list[str]) -> Reply:
    if not rest:
        raise UserError("Give days and a time.", SCHEDULE_HINT)
    data = _parse_schedule(rest)
    with ctx.runtime.db.write() as s:
        link = s.get(ChannelLink, _link_id(ctx))
        if link is None:
            raise UserError("This channel is no longer linked.")
        schedule_service.set_schedule(s, ctx.actor, link, **data)
        sched = Schedule.of(link)
    ctx.runtime.schedule_changed(_link_id(ctx))
    nxt = sched.next_fire(ctx.runtime.now())
    when = ""
    if nxt is not None:
        local = nxt.astimezone(sched.zone)
        when = f" Next: {local:%a %d %b %H:%M} {local.tzname()} ({nxt.astimezone(UTC):%H:%M} UTC)."
    return Reply(
        text=f"<@{ctx.user_id}> set this channel's digest to {sched.describe()}.{when}",
        in_channel=True,
    )


def _off(ctx: CommandContext) -> Reply:
    with ctx.runtime.db.write() as s:
        link = s.get(ChannelLink, _link_id(ctx))
        if link is None:
            raise UserError("This channel is no longer linked.")
        schedule_service.disable(s, ctx.actor, link)
    ctx.runtime.schedule_changed(_link_id(ctx))
    return Reply(
        text=f"<@{ctx.user_id}> turned this channel's digest off. "
        'Turn it on again with `/cro digest schedule "Mon 09:00"`.',
        in_channel=True,
    )


def _charts(ctx: CommandContext, rest: list[str]) -> Reply:
    choice = rest[0].lower() if rest else ""
    if choice not in ("on", "off"):
        raise UserError("Say `on` or `off`.", "`/cro digest charts off`")
    with ctx.runtime.db.write() as s:
        link = s.get(ChannelLink, _link_id(ctx))
        if link is None:
            raise UserError("This channel is no longer linked.")
        schedule_service.set_charts(s, ctx.actor, link, choice == "on")
    return Reply(text=f"Trend charts in this channel's digest are now {choice}.", in_channel=True)
