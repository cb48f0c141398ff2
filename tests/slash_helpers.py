"""Drive `/cro` through the real HTTP stack and read the answer as Slack would see it.

A read is answered in the HTTP ack body; a write (or a user whose time zone must first
be asked of Slack) gets an empty ack and its answer is POSTed to the `response_url`,
which points at the fake Slack server so the test can read it.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import (
    ActionItem,
    Approval,
    AuditEvent,
    AuditHead,
    KpiUpdate,
    Milestone,
    UserTimezoneCache,
)
from tests.bot_server import RunningBot, bot_settings, running_bot
from tests.conftest import TODAY
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post_signed

NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def snapshot(db: Database, *, light: bool = False) -> dict[str, Any]:
    """Everything a command could write: row counts and the audit chain head.

    `light` skips the per-row states: every service write also appends to the audit
    chain, so an unchanged head plus unchanged counts already means nothing was written.
    """
    with db.read() as s:
        counts: dict[str, Any] = {
            m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (Milestone, ActionItem, KpiUpdate, Approval, AuditEvent)
        }
        head = s.get(AuditHead, 1)
        counts["audit_head"] = (head.seq, head.hash) if head else None
        if light:
            return counts
        counts["milestone_state"] = sorted(
            (m.id, m.status.value, str(m.forecast_date), str(m.actual_date))
            for m in s.scalars(select(Milestone))
        )
        counts["action_state"] = sorted(
            (a.id, a.status.value) for a in s.scalars(select(ActionItem))
        )
    return counts


def tz_cache_rows(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(UserTimezoneCache)) or 0)


@dataclass
class Answer:
    status: int
    payload: dict[str, Any]
    deferred: bool  # answered through response_url rather than in the ack
    ack_seconds: float

    @property
    def text(self) -> str:
        blocks = json.dumps(self.payload.get("blocks") or [], ensure_ascii=False)
        return str(self.payload.get("text", "")) + "\n" + blocks

    @property
    def in_channel(self) -> bool:
        return self.payload.get("response_type") == "in_channel"


@dataclass
class SlashClient:
    bot: RunningBot
    fake: FakeSlack
    approvals_seen: list[tuple[int, bool]] = field(default_factory=list)

    @property
    def respond_root(self) -> str:
        return self.fake.base_url.removesuffix("api/")

    def send(self, text: str, user: str, channel: str, team: str = "T1") -> Answer:
        path = f"/respond/{next(_ids)}"
        body = command_body(
            text,
            user_id=user,
            channel_id=channel,
            team_id=team,
            response_url=self.respond_root.rstrip("/") + path,
        )
        started = time.perf_counter()
        status, raw = post_signed(self.bot.events_url, body)
        elapsed = time.perf_counter() - started
        if raw.strip():
            return Answer(status, json.loads(raw), False, elapsed)
        calls = self.fake.wait_for(path, timeout=10)
        return Answer(status, calls[0].params, True, elapsed)


def settle(bot: RunningBot) -> None:
    """Wait until every listener and lazy listener the bot started has finished.

    The final state a test can then assert on ("nothing more was sent"); the bot takes
    no further listener work afterwards.
    """
    bot.app.listener_runner.listener_executor.shutdown(wait=True)


@contextmanager
def slash_bot(db: Database, fake: FakeSlack) -> Iterator[SlashClient]:
    runtime = Runtime(db, now=lambda: NOW)
    with running_bot(bot_settings(db.url, fake.base_url), runtime) as bot:
        client = SlashClient(bot, fake)

        def on_approval(approval_id: int) -> None:
            # Record whether the approval was already committed when we were told.
            with db.read() as s:
                client.approvals_seen.append(
                    (approval_id, s.get(Approval, approval_id) is not None)
                )

        runtime.approval_listeners.append(on_approval)
        yield client
