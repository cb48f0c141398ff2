"""Lazily built settings and database for CLI commands; user-facing CLI errors."""

from __future__ import annotations

from functools import cached_property

from pydantic import ValidationError

from bot.settings import Settings
from services.actor import Actor
from storage.db import Database


class CliError(Exception):
    """Printed as one line, exit status 2; never a traceback."""


CLI_ACTOR = Actor(team_id="cli", user_id="admin")


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
        return Database(self.settings.database_url)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
