"""Lazily built settings and database for CLI commands; user-facing CLI errors."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.bot.settings import Settings
from crobot.services.actor import Actor
from crobot.services.errors import UserError
from crobot.storage.db import Database
from crobot.storage.models import Person

T = TypeVar("T")


class CliError(Exception):
    """Printed as one line, exit status 2; never a traceback."""


def os_account() -> str:
    """The operating-system account running this process, from its uid: LOGNAME and USER
    are whatever the caller set and prove nothing."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (some containers)
        return f"uid{uid}"


OPERATOR = f"cli:{os_account()}"
# Audit lines name the operating-system account that ran the command.
CLI_ACTOR = Actor(team_id="cli", user_id=os_account(), trusted=True, operator=OPERATOR)


def acting_as(session: Session, spec: str, *, via: str = "cli") -> Actor:
    """A registered person named `U123` or `T1:U123`, as the CLI's operator: the person's
    own role and organisation decide, and every audit line names both
    (`cli:alice as T1:U123`)."""
    team, _, user = spec.rpartition(":")
    stmt = select(Person).where(Person.slack_user_id == user)
    if team:
        stmt = stmt.where(Person.team_id == team)
    found = session.scalars(stmt.order_by(Person.id)).all()
    if not found:
        raise CliError(f"{spec} is not a registered person (see `crobot person add`).")
    if len(found) > 1:
        teams = ", ".join(p.team_id for p in found)
        raise CliError(f"{user} is registered in several workspaces ({teams}): give TEAM:{user}.")
    person = found[0]
    return Actor(
        team_id=person.team_id,
        user_id=person.slack_user_id,
        person=person,
        operator=impersonation(via, person.team_id, person.slack_user_id),
    )


def impersonation(via: str, team_id: str, user_id: str) -> str:
    return f"{via}:{os_account()} as {team_id}:{user_id}"


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
        # Whatever this process writes is audited with the account that ran it.
        return Database(
            self.settings.database_url,
            audit_keys=self.settings.audit_key_source(),
            operator=OPERATOR,
        )

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
