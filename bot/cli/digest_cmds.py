"""`crobot digest preview | send | list | schedule`: inspect, schedule and deliver digests
from a shell."""

from __future__ import annotations

import argparse
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select

from crobot.bot.app import build_web_client
from crobot.bot.cli.context import CLI_ACTOR, CliContext, CliError
from crobot.digests import schedule as schedule_service
from crobot.digests.compose import compose
from crobot.digests.delivery import Delivery, delivery_client
from crobot.digests.render import render
from crobot.digests.runner import DigestRunner
from crobot.digests.schedule import Schedule
from crobot.services.errors import UserError
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("digest", help="scheduled channel digests")
    dsub = p.add_subparsers(dest="digest_command", required=True)
    prev = dsub.add_parser("preview", help="print a channel's digest as it would post now")
    prev.add_argument("--channel", required=True, help="Slack channel id, e.g. C0123")
    prev.add_argument("--team", help="Slack team id (when a channel id is linked in several)")
    prev.set_defaults(func=cmd_preview)
    send = dsub.add_parser("send", help="send a channel's digest (exactly once per period)")
    send.add_argument("--channel", required=True)
    send.add_argument("--team")
    send.add_argument(
        "--now",
        action="store_true",
        help="send an extra digest now instead of the current scheduled period's",
    )
    send.set_defaults(func=cmd_send)
    lst = dsub.add_parser("list", help="every channel's schedule and next fire time")
    lst.set_defaults(func=cmd_list)
    sch = dsub.add_parser("schedule", help='set a channel\'s digest, e.g. "Mon,Thu 09:00"')
    sch.add_argument("--channel", required=True)
    sch.add_argument("--team")
    sch.add_argument("spec", help='days and a local time, e.g. "Mon,Thu 09:00" or "daily 08:30"')
    sch.add_argument("--tz", help="the channel's IANA time zone, e.g. Europe/Berlin")
    sch.set_defaults(func=cmd_schedule)


def _runtime(ctx: CliContext) -> Runtime:
    return Runtime(
        ctx.db,
        default_tz=ctx.settings.default_tz,
        outbox_lease=timedelta(seconds=ctx.settings.outbox_lease_seconds),
    )


def _link(ctx: CliContext, channel: str, team: str | None) -> ChannelLink:
    with ctx.db.read() as s:
        stmt = select(ChannelLink).where(ChannelLink.channel_id == channel)
        if team:
            stmt = stmt.where(ChannelLink.team_id == team)
        links = list(s.scalars(stmt))
    if not links:
        raise CliError(f"channel {channel} is not linked to a study")
    if len(links) > 1:
        raise CliError(f"channel {channel} is linked in several workspaces; add --team")
    return links[0]


def cmd_preview(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = _runtime(ctx)
    link = _link(ctx, args.channel, args.team)
    with ctx.db.read() as s:
        fresh = s.get(ChannelLink, link.id)
        assert fresh is not None
        view = compose(s, fresh, runtime.now())
    print(render(view).full_text)
    return 0


def cmd_send(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = _runtime(ctx)
    link = _link(ctx, args.channel, args.team)
    token = ctx.settings.slack_bot_token
    if ctx.settings.oauth:  # posted with the linking workspace's installation token
        from crobot.bot.workspaces import Workspaces

        runtime.bot_token = Workspaces(ctx.settings, ctx.db).bot_token
    elif token is None or not token.get_secret_value():
        raise CliError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...).")
    client = delivery_client(build_web_client(ctx.settings))
    runner = DigestRunner(runtime, Delivery(runtime, client, lease=runtime.outbox_lease))
    outcome = runner.send(link.id, now=args.now)
    print(f"{args.channel}: {outcome.state}" + (f" ts={outcome.ts}" if outcome.ts else ""))
    if outcome.detail:
        print(f"  ({outcome.detail})")
    return 0 if outcome.state in ("sent", "duplicate", "skipped") else 1


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = _runtime(ctx)
    now = runtime.now()
    with ctx.db.read() as s:
        links = list(s.scalars(select(ChannelLink).order_by(ChannelLink.id)))
    if not links:
        print("no linked channels")
        return 0
    print(f"{'channel':<14} {'study':<10} {'audience':<9} {'schedule':<40} next (local / UTC)")
    for link in links:
        sched = Schedule.of(link)
        audience = link.audience.value
        if not link.digest_enabled:
            nxt = "off"
        else:
            fire = sched.next_fire(now)
            if fire is None:
                nxt = "never"
            else:
                local = fire.astimezone(sched.zone)
                nxt = (
                    f"{local:%a %Y-%m-%d %H:%M} {local.tzname()} / "
                    f"{fire.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                )
        print(
            f"{link.channel_id:<14} {link.study.code:<10} {audience:<9} "
            f"{sched.describe():<40} {nxt}"
        )
    return 0


def cmd_schedule(args: argparse.Namespace, ctx: CliContext) -> int:
    """As `/cro digest schedule`, by an operator (audited as the CLI's account)."""
    runtime = _runtime(ctx)
    link = _link(ctx, args.channel, args.team)
    try:
        days, time = schedule_service.parse_spec(args.spec)
        data: dict[str, object] = {"days": days, "time": time}
        if args.tz:
            data["timezone"] = args.tz
        with ctx.db.write() as s:
            fresh = s.get_one(ChannelLink, link.id)
            schedule_service.set_schedule(s, CLI_ACTOR, fresh, now=runtime.now(), **data)
            sched = Schedule.of(fresh)
    except UserError as exc:
        raise CliError(str(exc)) from None
    fire = sched.next_fire(runtime.now())
    nxt = (
        f"; next {fire.astimezone(sched.zone):%a %Y-%m-%d %H:%M %Z} / "
        f"{fire.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if fire
        else ""
    )
    print(f"{args.channel}: {sched.describe()}{nxt}")
    return 0
