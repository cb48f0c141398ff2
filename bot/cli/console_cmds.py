"""`crobot console`: try `/cro` commands in a terminal, against the configured database.

Runs the same router and subcommands as the Slack listener, as a chosen Slack user in a
chosen channel, and prints the Block Kit reply as text. Nothing is sent to Slack. What it
writes is audited as that user, with the operating-system account that ran it
(`console:alice as T1:U123`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import inspect, select
from sqlalchemy.exc import DBAPIError

from crobot.bot.cli.context import CliContext, CliError, impersonation
from crobot.handlers.commands.render import to_terminal
from crobot.handlers.commands.router import CommandRequest, CommandRouter, is_command
from crobot.services import questions
from crobot.services.actor import resolve_actor
from crobot.services.runtime import Runtime
from crobot.storage.models import Person, Role

CONSOLE_CHANNEL = "DCONSOLE"  # an unlinked "direct message": give --channel for a study's
BANNER = (
    "crobot console — type /cro commands (the `/cro` is optional) or ask in plain words, "
    "`:user U123`, "
    "`:channel C123`, `:who`, or `quit`."
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "console", help="run /cro commands in the terminal as a Slack user (no Slack needed)"
    )
    p.add_argument("-c", "--command", help='one command to run, e.g. "/cro status ONC-301"')
    p.add_argument("--user", help="Slack user id to act as (default: the first approver)")
    p.add_argument("--team", help="Slack team id (default: the user's)")
    p.add_argument("--channel", default=CONSOLE_CHANNEL, help="Slack channel id to run in")
    p.add_argument("--tz", help="time zone when the user has none (default CROBOT_DEFAULT_TZ)")
    p.set_defaults(func=cmd_console)


class Console:
    def __init__(self, ctx: CliContext, args: argparse.Namespace) -> None:
        self.settings = ctx.settings
        self.runtime = Runtime(ctx.db, default_tz=ctx.settings.default_tz)
        # No Slack here: say what would have happened instead of posting it.
        self.runtime.approval_listeners.append(
            lambda approval_id: print(
                f"(approval request #{approval_id}: approvers would get Approve/Reject in Slack)"
            )
        )
        self.router = CommandRouter(self.runtime)
        self.client = WebClient(base_url=ctx.settings.slack_api_url)
        self.tz = args.tz or ctx.settings.default_tz
        self.user, self.team = self._who(ctx, args.user, args.team)
        self.channel = args.channel

    def _who(self, ctx: CliContext, user: str | None, team: str | None) -> tuple[str, str]:
        with ctx.db.read() as s:
            if user is None:
                person = s.scalars(
                    select(Person)
                    .where(Person.role.in_([Role.SPONSOR_APPROVER, Role.ADMIN]))
                    .order_by(Person.id)
                ).first()
            else:
                stmt = select(Person).where(Person.slack_user_id == user)
                if team:
                    stmt = stmt.where(Person.team_id == team)
                found = s.scalars(stmt.order_by(Person.id)).all()
                # A person is (workspace, user): the same id in two workspaces is two people.
                if len(found) > 1:
                    teams = ", ".join(p.team_id for p in found)
                    raise CliError(
                        f"{user} is registered in several workspaces ({teams}): give --team."
                    )
                person = found[0] if found else None
        if person is not None:
            return person.slack_user_id, team or person.team_id
        return user or "UCONSOLE", team or "TCONSOLE"

    def run(self, line: str) -> str:
        text = line.strip()
        if text.lower().startswith("/cro"):
            text = text[4:]
        elif not is_command(text):
            return self.ask(text)
        return self._command(text)

    def ask(self, question: str) -> str:
        """A line that is not a `/cro` command: a plain-language question, read as Slack
        reads a DM to crobot (read-only; unsure → the closest readings, nothing run)."""
        with self.router.runtime.db.read() as s:
            actor = resolve_actor(s, self.team, self.user)
            answer = questions.read(question, questions.vocabulary(s, actor))
        if answer.sure and answer.best is not None:
            out = self._command(answer.best.command)
            return f"{out}\n(I read this as `/cro {answer.best.command}`)"
        if not answer.readings:
            return "I could not read that as a question; try `/cro help`."
        options = "\n".join(f"  /cro {r.command}" for r in answer.readings[:2])
        return f"I am not sure what you mean. Did you mean:\n{options}"

    def _command(self, text: str) -> str:
        operator = impersonation("console", self.team, self.user)
        req = CommandRequest(self.team, self.user, self.channel, text.strip(), operator=operator)
        return to_terminal(self.router.run(req, self.client, tz=self.tz))

    def who(self) -> str:
        return f"as {self.user} (team {self.team}) in {self.channel}"

    def handle(self, line: str) -> bool:
        """One line of input; False when the user wants to leave."""
        word = line.strip()
        if word in ("quit", "exit", ":q"):
            return False
        if word.startswith(":user "):
            self.user = word.split(None, 1)[1].strip()
            print(self.who())
        elif word.startswith(":channel "):
            self.channel = word.split(None, 1)[1].strip()
            print(self.who())
        elif word == ":who":
            print(self.who())
        elif word:
            print(self.run(word))
        return True

    def repl(self, interactive: bool) -> None:
        if interactive:
            print(BANNER)
            print(self.who())
        while True:
            try:
                line = input("/cro> " if interactive else "")
            except EOFError:
                return
            if not self.handle(line):
                return


def _check_schema(ctx: CliContext) -> None:
    try:
        tables = set(inspect(ctx.db.engine).get_table_names())
    except DBAPIError as exc:
        raise CliError(f"cannot reach the database ({type(exc.orig).__name__}).") from None
    if "studies" not in tables:
        raise CliError("the database has no crobot schema yet: run `crobot db upgrade` first.")


def cmd_console(args: argparse.Namespace, ctx: CliContext) -> int:
    _check_schema(ctx)
    console = Console(ctx, args)
    if args.command is not None:
        print(console.run(args.command))
        return 0
    console.repl(interactive=sys.stdin.isatty())
    return 0
