"""Overdue-action nudges: one DM per owner per working day, at 09:00 in the owner's zone.

Not on the owner's Saturday or Sunday; a nudge missed while crobot was down is sent only
within `NUDGE_GRACE` of 09:00 (it still says "Good morning"). Owners whose zone is
unknown are looked up in Slack (`users.info`) before their first nudge (bot/scheduling.py).

An owner's zone is decided by `services.user_tz` (their Person time zone, else the
cached Slack `users.info` zone, else the bot's default zone), for all owners in one query.
Delivery goes through the same exactly-once DigestRun claim as digests, with target
`dm:<team>:<user>` and the owner's local date as the period key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from crobot.digests.render import environment
from crobot.handlers.blockkit import MAX_BLOCKS, Mrkdwn, context, fallback, lines_block, section
from crobot.services.user_tz import S, with_user_zone
from crobot.storage.models import ActionItem, ActionStatus, Study

NUDGE_HOUR = 9
NUDGE_GRACE = timedelta(hours=1)
MAX_ITEMS = 20
WEEKEND = (5, 6)  # Saturday, Sunday (date.weekday())


@dataclass(frozen=True)
class OverdueItem:
    id: int
    study_code: str
    title: str
    due: date
    days_overdue: int


@dataclass
class Owner:
    team_id: str
    user_id: str
    timezone: str
    items: list[OverdueItem] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"dm:{self.team_id}:{self.user_id}"


@dataclass(frozen=True)
class Nudge:
    text: str
    blocks: list[dict[str, Any]]


def _owner_zone(stmt: S, default_tz: str) -> tuple[S, ColumnElement[str]]:
    return with_user_zone(stmt, ActionItem.owner_team_id, ActionItem.owner_user_id, default_tz)


def _open_overdue_stmt(default_tz: str, latest_due: date) -> Select[Any]:
    stmt = select(
        ActionItem.id,
        ActionItem.owner_team_id,
        ActionItem.owner_user_id,
        Study.code,
        ActionItem.title,
        ActionItem.due_date,
    ).join(Study, Study.id == ActionItem.study_id)
    stmt, zone = _owner_zone(stmt, default_tz)
    return (
        stmt.add_columns(zone)
        .where(ActionItem.status == ActionStatus.OPEN, ActionItem.due_date < latest_due)
        .order_by(ActionItem.due_date, ActionItem.id)
    )


def overdue_owners(
    session: Session, now: datetime, default_tz: str, *, zone: str | None = None
) -> list[Owner]:
    """Owners with overdue open actions (as of their own local today), one query."""
    # No zone is more than a day ahead of UTC: this bound keeps the scan to candidates.
    latest_due = now.date() + timedelta(days=2)
    owners: dict[tuple[str, str], Owner] = {}
    for aid, team, user, code, title, due, tz in session.execute(
        _open_overdue_stmt(default_tz, latest_due)
    ):
        if zone is not None and tz != zone:
            continue
        today = now.astimezone(ZoneInfo(tz)).date()
        if due >= today or today.weekday() in WEEKEND:
            continue
        owner = owners.setdefault((team or "", user), Owner(team or "", user, tz))
        owner.items.append(OverdueItem(aid, code, title, due, (today - due).days))
    return list(owners.values())


def owner_zones(session: Session, default_tz: str) -> set[str]:
    """Zones of everyone who owns an open action (the zones nudge jobs are needed for)."""
    stmt, zone = _owner_zone(select(ActionItem.id), default_tz)
    zones = stmt.with_only_columns(zone).where(ActionItem.status == ActionStatus.OPEN).distinct()
    return {str(z) for z in session.scalars(zones)} | {default_tz}


def compose_nudge(
    session: Session, team_id: str, user_id: str, now: datetime, default_tz: str
) -> Nudge | None:
    for owner in overdue_owners(session, now, default_tz):
        if owner.team_id == team_id and owner.user_id == user_id:
            return render_nudge(owner)
    return None


def render_nudge(owner: Owner) -> Nudge:
    """Header, one line per item (never cut mid-line), "…and N more", then the hint."""
    tpl = environment().get_template("nudge.j2")
    items = owner.items[:MAX_ITEMS]
    lines = [Mrkdwn(line) for line in tpl.render(items=items).strip().split("\n") if line]
    count = len(owner.items)
    blocks = [section(Mrkdwn(f"*Good morning — you have {count} overdue action item(s):*"))]
    blocks += lines_block(lines, budget=MAX_BLOCKS - 3, total=count, noun="overdue items")
    blocks.append(context(Mrkdwn("Mark one done with `/cro action done ID`.")))
    summary = fallback(Mrkdwn(f"You have {count} overdue action item(s)."))
    return Nudge(summary, blocks)


def nudge_period(owner: Owner, now: datetime) -> str:
    return now.astimezone(ZoneInfo(owner.timezone)).date().isoformat()
