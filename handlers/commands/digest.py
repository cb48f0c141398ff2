"""`/cro digest show | now | preview | schedule "Mon,Thu 09:00" [tz:Asia/Kolkata] | off |
charts on|off`.

Thin: parse the words, call `digests.schedule` (rules, validation, audit) or
`digests.compose`/`render`, and answer. The running scheduler is told after commit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from crobot.digests import schedule as schedule_service
from crobot.digests.compose import compose
from crobot.digests.delivery import Delivery, delivery_client
from crobot.digests.render import render
from crobot.digests.schedule import SCHEDULE_HINT, Schedule
from crobot.handlers.blockkit import Mrkdwn, fmt
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import Verb, dispatch_verb, reader_audience
from crobot.services.errors import UserError
from crobot.services.lookup import channel_link_by_id, vendor_org_ids
from crobot.services.permissions import require_schedule_rights
from crobot.storage.models import ChannelLink

USAGE = (
    "`/cro digest show` · `/cro digest now` · `/cro digest preview` · "
    '`/cro digest schedule "Mon,Thu 09:00" [tz:Europe/Berlin]` · '
    "`/cro digest off` · `/cro digest charts on|off`"
)


def digest_command(ctx: CommandContext, args: list[str]) -> Reply:
    if ctx.link is None:
        raise UserError(
            "This channel is not linked to a study, so it has no digest.",
            "An admin links it with `crobot channel link`.",
        )
    return dispatch_verb(ctx, args, "digest", VERBS, USAGE)


def _link(ctx: CommandContext) -> ChannelLink:
    assert ctx.link is not None  # checked by digest_command
    return ctx.link


def _preview(ctx: CommandContext, rest: list[str]) -> Reply:
    with ctx.runtime.db.read() as s:
        link = channel_link_by_id(s, _link(ctx).id)
        # Ephemeral, but still never more than both the person and the channel may see.
        view = compose(s, link, ctx.runtime.now(), audience=reader_audience(s, ctx, link.study))
    out = render(view)
    # The digest renderer escapes what people typed; its fallback text is markup.
    return Reply(text=Mrkdwn(out.text), blocks=out.blocks)


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
    link_id = _link(ctx).id
    with ctx.runtime.db.write() as s:
        link = channel_link_by_id(s, link_id)
        schedule_service.set_schedule(s, ctx.actor, link, now=ctx.runtime.now(), **data)
        sched = Schedule.of(link)
    ctx.runtime.schedule_changed(link_id)
    when = _next_text(sched, ctx.runtime.now())
    return Reply(
        text=fmt("{} set this channel's digest to {}.{}", ctx.mention, sched.describe(), when),
        in_channel=True,
    )


def _next_text(sched: Schedule, now: datetime) -> str:
    nxt = sched.next_fire(now)
    if nxt is None:
        return ""
    local = nxt.astimezone(sched.zone)
    utc = nxt.astimezone(UTC)
    # The UTC time carries its own date when it falls on another day than the local one.
    utc_text = f"{utc:%H:%M}" if utc.date() == local.date() else f"{utc:%a %d %b %H:%M}"
    return f" Next: {local:%a %d %b %H:%M} {local.tzname()} ({utc_text} UTC)."


def _show(ctx: CommandContext, rest: list[str]) -> Reply:
    with ctx.runtime.db.read() as s:
        link = channel_link_by_id(s, _link(ctx).id)
        sched, enabled = Schedule.of(link), link.digest_enabled
    if not enabled:
        text = Mrkdwn(
            'This channel\'s digest is off. `/cro digest schedule "Mon 09:00"` turns it on.'
        )
    else:
        text = Mrkdwn(
            f"This channel's digest: {sched.describe()}.{_next_text(sched, ctx.runtime.now())}"
        )
    return Reply(text)


def _now(ctx: CommandContext, rest: list[str]) -> Reply:
    """The next scheduled digest, sent now instead of at its time: once (the scheduled
    fire then finds it posted). With the digest off, today's extra digest, once."""
    link_id = _link(ctx).id
    now = ctx.runtime.now()
    with ctx.runtime.db.read() as s:
        link = channel_link_by_id(s, link_id)
        require_schedule_rights(ctx.actor, link, vendor_org_ids(s, link.study_id))
        sched = Schedule.of(link)
        fire = sched.next_fire(now) if link.digest_enabled else None
        period = sched.period_key(fire) if fire else f"now:{now.astimezone(sched.zone):%Y-%m-%d}"
    delivery = Delivery(ctx.runtime, delivery_client(ctx.client), lease=ctx.runtime.outbox_lease)
    outcome = delivery.send_link(link_id, period)
    if outcome.state == "sent":
        return Reply(fmt("{} posted this channel's digest now ({}).", ctx.mention, period))
    if outcome.state == "duplicate":
        return Reply(
            Mrkdwn(f"This period's digest ({period}) is already posted; it is not sent twice.")
        )
    return Reply(
        Mrkdwn(f"The digest could not be posted ({outcome.detail or outcome.state})."),
        is_error=True,
    )


def _off(ctx: CommandContext, rest: list[str]) -> Reply:
    link_id = _link(ctx).id
    with ctx.runtime.db.write() as s:
        schedule_service.disable(
            s, ctx.actor, channel_link_by_id(s, link_id), now=ctx.runtime.now()
        )
    ctx.runtime.schedule_changed(link_id)
    return Reply(
        text=fmt("{} turned this channel's digest off. ", ctx.mention)
        + Mrkdwn('Turn it on again with `/cro digest schedule "Mon 09:00"`.'),
        in_channel=True,
    )


def _charts(ctx: CommandContext, rest: list[str]) -> Reply:
    choice = rest[0].lower() if rest else ""
    if choice not in ("on", "off"):
        raise UserError("Say `on` or `off`.", "`/cro digest charts off`")
    with ctx.runtime.db.write() as s:
        link = channel_link_by_id(s, _link(ctx).id)
        schedule_service.set_charts(s, ctx.actor, link, choice == "on")
    return Reply(
        text=Mrkdwn(f"Trend charts in this channel's digest are now {choice}."), in_channel=True
    )


VERBS: dict[str, Verb] = {
    "show": _show,
    "now": _now,
    "preview": _preview,
    "schedule": _schedule,
    "off": _off,
    "charts": _charts,
}
