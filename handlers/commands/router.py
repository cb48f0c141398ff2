"""The `/cro` router, free of Bolt: text -> table entry -> subcommand -> Reply.

Two phases so the Slack listener can acknowledge within 3 seconds:

- `plan()` (on the ack path): tokenise, pick the subcommand, read who is asking, the
  channel link and the user's time zone from the database. Fast; never calls Slack.
- `finish()` (after the ack, in a lazy listener): if the user's zone is unknown, ask
  Slack (`users.info`) once and cache it; then `execute()`.

Reads whose zone is known are executed on the ack path and answered in the ack body;
writes, commands needing Slack calls, and unknown zones run in `finish()`.
Neither phase ever raises: a `UserError` becomes an ephemeral error reply, an unreachable
database a "temporarily unavailable", anything else a logged apology.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from crobot.handlers import forms
from crobot.handlers.blockkit import Mrkdwn
from crobot.handlers.commands import (
    action,
    digest,
    forecast,
    help,
    kpi,
    milestone,
    qtl,
    scorecard,
    site,
    status,
)
from crobot.handlers.commands.base import CommandContext, Reply, Subcommand
from crobot.handlers.commands.render import error_reply, notice
from crobot.handlers.errors import UNAVAILABLE
from crobot.handlers.middleware import Identity
from crobot.handlers.user_tz import fetch_timezone
from crobot.services.actor import Actor, resolve_actor
from crobot.services.command_parser import suggest, tokenize
from crobot.services.errors import UserError, msg
from crobot.services.lookup import channel_link
from crobot.services.permissions import require_known
from crobot.services.runtime import Runtime
from crobot.services.user_tz import zone_for

log = logging.getLogger(__name__)
T = TypeVar("T")

SORRY = Mrkdwn("Sorry, something went wrong on our side. Nothing was changed; please try again.")
RACE = Mrkdwn("Someone else just changed that. Nothing was changed; try again.")


@dataclass(frozen=True)
class Entry:
    fn: Subcommand
    writes: frozenset[str] = frozenset()  # verbs that change shared state
    deferred: bool = False  # always after the ack (may call the Slack API)
    needs_db: bool = True
    forms: frozenset[str] = frozenset()  # verbs that, given alone, open a form (modal)
    open_to_all: bool = False  # also for someone crobot does not know (help)

    def runs_later(self, args: list[str]) -> bool:
        return self.deferred or (bool(args) and args[0].lower() in self.writes)


TABLE: dict[str, Entry] = {
    "help": Entry(help.help_command, needs_db=False, open_to_all=True),
    "status": Entry(status.status_command),
    "milestone": Entry(
        milestone.milestone_command, writes=milestone.WRITE_VERBS, forms=frozenset({"add"})
    ),
    "action": Entry(action.action_command, writes=action.WRITE_VERBS, forms=frozenset({"add"})),
    "kpi": Entry(kpi.kpi_command, writes=kpi.WRITE_VERBS, forms=frozenset({"report"})),
    "digest": Entry(digest.digest_command, deferred=True),
    "site": Entry(site.site_command, writes=site.WRITE_VERBS),
    "qtl": Entry(qtl.qtl_command, writes=qtl.WRITE_VERBS),
    # Thousands of simulated futures: answered after the ack, never against its 3 s.
    "forecast": Entry(forecast.forecast_command, deferred=True),
    "scorecard": Entry(scorecard.scorecard_command),
}
ALIASES = {
    "milestones": "milestone",
    "actions": "action",
    "kpis": "kpi",
    "digests": "digest",
    "sites": "site",
    "scorecards": "scorecard",
}
USAGE = "Try `/cro help`."


@dataclass(frozen=True)
class CommandRequest:
    team_id: str
    user_id: str
    channel_id: str
    text: str
    trigger_id: str | None = None
    response_url: str | None = None
    # Who really typed it when not the Slack user (the console): audited with the actor.
    operator: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any], who: Identity) -> CommandRequest:
        return cls(
            team_id=who.team_id,
            user_id=who.user_id,
            channel_id=str(body.get("channel_id") or ""),
            text=str(body.get("text") or ""),
            trigger_id=body.get("trigger_id"),
            response_url=body.get("response_url"),
        )


@dataclass
class Plan:
    request: CommandRequest
    entry: Entry | None = None
    args: list[str] = field(default_factory=list)
    ctx: CommandContext | None = None
    reply: Reply | None = None  # decided already (bad input, database down)
    needs_tz: bool = False
    group: str = ""  # the table key, e.g. "milestone"

    @property
    def later(self) -> bool:
        if self.reply is not None or self.entry is None:
            return False
        return self.needs_tz or self.entry.runs_later(self.args)


def guarded(fn: Callable[[], T], on_error: Callable[[Reply], T]) -> T:
    try:
        return fn()
    except UserError as err:
        return on_error(error_reply(err))
    except (DBAPIError, PoolTimeout) as exc:
        if isinstance(exc, IntegrityError):
            # Two writers raced on a unique key; the loser changed nothing.
            log.warning("command lost a write race: %s", type(exc.orig).__name__)
            return on_error(notice(RACE))
        log.warning("database unavailable for a command: %s", type(exc).__name__)
        return on_error(notice(UNAVAILABLE))
    except Exception:
        log.exception("unhandled error in a /cro command")
        return on_error(notice(SORRY))


def open_form(ctx: CommandContext, kind: str) -> Reply:
    """`/cro milestone add` (etc.) with no arguments opens the form instead of an error.

    Silent when the form opened; otherwise a reply saying why not.
    """
    if not ctx.trigger_id:
        return notice(Mrkdwn("I could not open the form here; give the arguments instead."))
    try:
        forms.open_form(
            ctx.runtime,
            ctx.client,
            ctx.trigger_id,
            ctx.actor,
            kind,
            today=ctx.today(),
            channel_id=ctx.channel_id,
            initial_study=ctx.link.study.code if ctx.link else None,
        )
    except UserError as exc:
        return error_reply(exc)
    except SlackApiError as exc:
        log.warning("views.open failed: %s", exc.response.get("error"))
        return notice(
            Mrkdwn("Slack did not open the form (it may have timed out); please try again.")
        )
    return Reply(Mrkdwn(""), silent=True)


class CommandRouter:
    def __init__(self, runtime: Runtime, table: dict[str, Entry] | None = None) -> None:
        self.runtime = runtime
        self.table = table or TABLE

    # --- phase 1: on the ack path ---------------------------------------------------
    def plan(self, req: CommandRequest, client: WebClient) -> Plan:
        plan = Plan(req)

        def build() -> Plan:
            try:
                self._parse(plan)
            except UserError:
                # Someone crobot does not know learns how to get access, and nothing else.
                self._require_known(plan.request)
                raise
            self._context(plan, client)
            return plan

        def failed(reply: Reply) -> Plan:
            plan.reply = reply
            return plan

        return guarded(build, failed)

    def _parse(self, plan: Plan) -> None:
        words = tokenize(plan.request.text, hint=USAGE)
        if not words:
            plan.entry, plan.args = self.table["help"], []
            return
        name = words[0].lower()
        name = ALIASES.get(name, name)
        entry = self.table.get(name)
        if entry is None:
            did = suggest(name, self.table)
            raise UserError(msg("I don't know `/cro {}`. {}", words[0], did), USAGE)
        plan.entry, plan.args, plan.group = entry, list(words[1:]), name

    def _require_known(self, req: CommandRequest) -> None:
        with self.runtime.db.read() as s:
            require_known(resolve_actor(s, req.team_id, req.user_id))

    def _context(self, plan: Plan, client: WebClient) -> None:
        req = plan.request
        actor = Actor(req.team_id, req.user_id, operator=req.operator)
        link, tz = None, self.runtime.default_tz
        if plan.entry is not None and plan.entry.needs_db:
            with self.runtime.db.read() as s:
                actor = replace(resolve_actor(s, req.team_id, req.user_id), operator=req.operator)
                if not plan.entry.open_to_all:
                    require_known(actor)
                link = channel_link(s, req.team_id, req.channel_id)
                tz, own = zone_for(
                    s, actor, link, now=self.runtime.now(), default=self.runtime.default_tz
                )
            plan.needs_tz = not own
        plan.ctx = CommandContext(
            runtime=self.runtime,
            client=client,
            team_id=req.team_id,
            user_id=req.user_id,
            channel_id=req.channel_id,
            actor=actor,
            link=link,
            user_tz=tz,
            trigger_id=req.trigger_id,
        )

    # --- phase 2 ------------------------------------------------------------------
    def execute(self, plan: Plan) -> Reply:
        if plan.reply is not None:
            return plan.reply
        if plan.entry is None or plan.ctx is None:
            return notice(SORRY)
        entry, ctx, args = plan.entry, plan.ctx, plan.args
        if len(args) == 1 and args[0].lower() in entry.forms:
            kind = f"{plan.group} {args[0].lower()}"
            return guarded(lambda: open_form(ctx, kind), lambda r: r)
        return guarded(lambda: entry.fn(ctx, args), lambda r: r)

    def finish(self, plan: Plan, client: WebClient) -> Reply:
        """After the ack: learn the user's zone if needed, then run."""
        if plan.needs_tz and plan.ctx is not None:
            tz = self.fetch_timezone(client, plan.request)
            if tz is not None:
                plan.ctx.user_tz = tz
            plan.needs_tz = False
        return self.execute(plan)

    def run(self, req: CommandRequest, client: WebClient, *, tz: str | None = None) -> Reply:
        """Both phases in one go (console, tests): an explicit `tz` replaces users.info."""
        plan = self.plan(req, client)
        if plan.needs_tz and plan.ctx is not None and tz is not None:
            plan.ctx.user_tz, plan.needs_tz = tz, False
        return self.finish(plan, client) if plan.needs_tz else self.execute(plan)

    def fetch_timezone(self, client: WebClient, req: CommandRequest) -> str | None:
        return fetch_timezone(self.runtime, client, req.team_id, req.user_id)


def is_command(text: str) -> bool:
    """Whether `text` starts with a `/cro` subcommand (or one of its aliases)."""
    words = text.split()
    if not words:
        return True  # an empty line is `/cro` alone: help
    name = words[0].lower()
    return ALIASES.get(name, name) in TABLE
