"""Helpers shared by the digest tests: a controllable clock, contexts, data, query counting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from sqlalchemy import event, select

from crobot.bot.settings import Settings
from crobot.digests.delivery import Outcome
from crobot.handlers.commands.base import CommandContext
from crobot.services import actions, kpis, milestones
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import ChannelLink, Milestone
from tests.conftest import TODAY, World


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.at

    def set(self, at: datetime) -> None:
        with self._lock:
            self.at = at

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.at += delta


def bot_test_settings(db: Database, slack_url: str = "http://127.0.0.1:9/api/") -> Settings:
    return Settings(
        CROBOT_DATABASE_URL=db.url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-test-token"),
        SLACK_SIGNING_SECRET=SecretStr("secret"),
        CROBOT_SLACK_API_URL=slack_url,
    )


def ctx_for(world: World, runtime: Runtime, user: str, channel: str) -> CommandContext:
    with world.db.read() as s:
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == channel)).first()
    return CommandContext(
        runtime=runtime,
        client=WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/"),
        team_id="T1",
        user_id=user,
        channel_id=channel,
        actor=world.actor(user),
        link=link,
        user_tz="UTC",
    )


@dataclass
class RecordingDelivery:
    sent: list[tuple[int, str]] = field(default_factory=list)

    def send_link(self, link_id: int, period_key: str) -> Outcome:
        self.sent.append((link_id, period_key))
        return Outcome(len(self.sent), "sent", "1.0")


def link_id(db: Database, channel: str) -> int:
    with db.read() as s:
        return int(s.scalars(select(ChannelLink.id).where(ChannelLink.channel_id == channel)).one())


def seed(world: World, scale: int, *, names: dict[str, str] | None = None) -> None:
    """`scale` milestones, actions and KPI periods per vendor, plus shared sponsor items.

    Names carry the owning org (APEXDATA / LABDATA / SPONSORDATA) so a rendered digest can
    be searched for another vendor's data.
    """
    names = names or {"UAPEX": "APEXDATA", "ULAB": "LABDATA", "USPONSOR": "SPONSORDATA"}
    sponsor = world.actor("USPONSOR")
    with world.db.write() as s:
        for user, tag in names.items():
            actor = world.actor(user)
            for i in range(scale):
                ms = milestones.add(
                    s,
                    actor,
                    today=TODAY,
                    study="ONC-301",
                    name=f"{tag} milestone {i}",
                    planned=TODAY + timedelta(days=1 + i % 12),
                )
                if i % 3 == 1:
                    ms.forecast_date = ms.planned_date + timedelta(days=5)
                actions.add(
                    s,
                    actor,
                    today=TODAY,
                    allow_past=True,
                    study="ONC-301",
                    title=f"{tag} action {i}",
                    owner_user_id=user,
                    due=TODAY + timedelta(days=(i % 7) - 3),
                )
            # Enrolment is a CRO's KPI: the sponsor enters the lab's on its behalf.
            reporter, org = (sponsor, "CentraLab") if user == "ULAB" else (actor, None)
            for week in range(40, 48):
                kpis.report(
                    s,
                    reporter,
                    today=TODAY,
                    study="ONC-301",
                    org=org,
                    kpi="enrollment",
                    value=float(week - 30 + len(tag)),
                    period=f"2026-W{week}",
                    note=f"{tag} note",
                )
            s.flush()


def approve_half(world: World) -> None:
    """Approve KPI updates of even ids, and leave the others pending (joint must hide them)."""
    from crobot.services.approvals import decide
    from crobot.storage.models import Approval, ApprovalState

    with world.db.write() as s:
        approver = world.actor("UAPPROVER")
        ids = list(s.scalars(select(Approval.id).where(Approval.state == ApprovalState.PENDING)))
        for aid in ids[::2]:
            decide(s, approver, aid, approve=True)


@contextmanager
def count_queries(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engines = {db.engine, db.write_engine}
    for eng in engines:
        event.listen(eng, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        for eng in engines:
            event.remove(eng, "before_cursor_execute", before)


def milestone_count(db: Database) -> int:
    with db.read() as s:
        return len(list(s.scalars(select(Milestone.id))))


WORKING_SOMEWHERE = ("US", "DE", "IN", "IR", "IL")  # between them, every day works somewhere


def working_country(day: date) -> str:
    """A country where `day` is a working day: tests that fire a digest "this minute" in
    real time set it as the channel's, so a weekend or holiday CI run still fires."""
    from crobot.services.workdays import is_working_day

    return next(c for c in WORKING_SOMEWHERE if is_working_day(day, c))
