"""Where a Slack user is: their registered zone, else the cached `users.info` answer.

The Slack call itself lives in the Slack surface; this module only reads and writes
the cache table, so the rule "Person.timezone, then cache, then Slack" has one home.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services.actor import Actor
from crobot.storage.models import UserTimezoneCache

CACHE_TTL = timedelta(hours=24)  # people rarely move; users.info is still worth sparing


def valid_zone(name: str | None) -> str | None:
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def known_timezone(session: Session, actor: Actor, *, now: datetime) -> str | None:
    """The zone we can use without asking Slack, or None."""
    if actor.person is not None and valid_zone(actor.person.timezone):
        return actor.person.timezone
    row = session.scalars(
        select(UserTimezoneCache).where(
            UserTimezoneCache.team_id == actor.team_id,
            UserTimezoneCache.user_id == actor.user_id,
        )
    ).first()
    if row is not None and now - row.fetched_at < CACHE_TTL:
        return valid_zone(row.timezone)
    return None


def remember_timezone(
    session: Session, team_id: str, user_id: str, tz: str, *, now: datetime
) -> None:
    row = session.scalars(
        select(UserTimezoneCache).where(
            UserTimezoneCache.team_id == team_id, UserTimezoneCache.user_id == user_id
        )
    ).first()
    if row is None:
        session.add(
            UserTimezoneCache(team_id=team_id, user_id=user_id, timezone=tz, fetched_at=now)
        )
    else:
        row.timezone, row.fetched_at = tz, now
    session.flush()
