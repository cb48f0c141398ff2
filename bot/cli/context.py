"""Lazily built settings and database for CLI commands; user-facing CLI errors."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from pydantic import ValidationError

from crobot.bot.settings import Settings
from crobot.services.actor import Actor
from crobot.services.errors import UserError
from crobot.storage.db import Database

T = TypeVar("T")


class CliError(Exception):
    """Printed as one line, exit status 2; never a traceback."""


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


# Audit lines name the operating-system account that ran the command.
CLI_ACTOR = Actor(team_id="cli", user_id=_os_user(), trusted=True)


class CliContext:
    @cached_property
    def settings(self) -> Settings:
        try:
            return Settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first.get("loc") else "setting"
            raise CliError(f"{name}: {first['msg']}") from None

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.database_url, audit_keys=self.settings.audit_key_source())

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()


def run_service(ctx: CliContext, fn: Callable[..., T], **data: Any) -> T:
    """Run one service call in one transaction as the CLI operator; user errors -> CliError."""
    try:
        with ctx.db.write() as session:
            return fn(session, CLI_ACTOR, **data)
    except UserError as exc:
        raise CliError(str(exc)) from None
