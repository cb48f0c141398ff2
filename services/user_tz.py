"""Where a Slack user is: their registered zone, else the cached `users.info` answer.

The Slack call itself lives in the Slack surface; this module only reads and writes
the cache table, so the rule "Person.timezone, then cache, then Slack" has one home —
for one user (`known_timezone`) and, in SQL, for every user a query names
(`with_user_zone`, for background jobs such as nudges).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from crobot.services.actor import Actor
from crobot.storage.models import ChannelLink, Person, UserTimezoneCache

S = TypeVar("S", bound=Select[*tuple[Any, ...]])

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


def recorded_timezone(session: Session, actor: Actor) -> str | None:
    """The zone last recorded for this user, however old: their registered one, else
    Slack's last answer. What is left when Slack will not tell (a Slack Connect
    stranger's profile carries no zone)."""
    if actor.person is not None and valid_zone(actor.person.timezone):
        return actor.person.timezone
    row = session.scalars(
        select(UserTimezoneCache.timezone).where(
            UserTimezoneCache.team_id == actor.team_id,
            UserTimezoneCache.user_id == actor.user_id,
        )
    ).first()
    return valid_zone(row)


def zone_for(
    session: Session, actor: Actor, link: ChannelLink | None, *, now: datetime, default: str
) -> tuple[str, bool]:
    """The zone to read this user's dates in, and whether it is their own.

    Their own zone when known without asking Slack; else the channel's (a linked
    channel's zone is where its people mostly are), else `default`.
    """
    own = known_timezone(session, actor, now=now)
    if own is not None:
        return own, True
    return (link.timezone if link is not None else None) or default, False


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


def with_user_zone(
    stmt: S,
    team_id: SQLColumnExpression[str | None],
    user_id: SQLColumnExpression[str],
    default_tz: str,
) -> tuple[S, ColumnElement[str]]:
    """`stmt` joined to what decides the zone of the user in (`team_id`, `user_id`), and
    that zone as a column: Person.timezone, else the cached `users.info` zone, else
    `default_tz`.

    A cached zone counts here whatever its age: `CACHE_TTL` says when to ask Slack again,
    and a background job has nobody to ask, so the last answer is still the best guess.
    """
    joined, zone, _ = with_user_place(stmt, team_id, user_id, default_tz)
    return joined, zone


def with_user_place(
    stmt: S,
    team_id: SQLColumnExpression[str | None],
    user_id: SQLColumnExpression[str],
    default_tz: str,
) -> tuple[S, ColumnElement[str], SQLColumnExpression[str | None]]:
    """As `with_user_zone`, with the person's recorded country as a column too (None:
    nobody recorded one; `services.workdays.country_of` then uses the zone's)."""
    person = aliased(Person)
    cache = aliased(UserTimezoneCache)
    joined = stmt.outerjoin(
        person, and_(person.team_id == team_id, person.slack_user_id == user_id)
    ).outerjoin(cache, and_(cache.team_id == team_id, cache.user_id == user_id))
    return joined, func.coalesce(person.timezone, cache.timezone, default_tz), person.country


def owners_to_ask(session: Session, *, now: datetime, limit: int = 200) -> list[tuple[str, str]]:
    """(team, user) of open-action owners whose zone nobody told us, or whose cached
    `users.info` answer is older than `CACHE_TTL`: ask Slack before their next nudge, so
    nobody is nudged at the default zone's 09:00 forever."""
    from crobot.storage.models import ActionItem, ActionStatus

    person = aliased(Person)
    cache = aliased(UserTimezoneCache)
    stmt = (
        select(ActionItem.owner_team_id, ActionItem.owner_user_id)
        .outerjoin(
            person,
            and_(
                person.team_id == ActionItem.owner_team_id,
                person.slack_user_id == ActionItem.owner_user_id,
            ),
        )
        .outerjoin(
            cache,
            and_(
                cache.team_id == ActionItem.owner_team_id,
                cache.user_id == ActionItem.owner_user_id,
            ),
        )
        .where(
            ActionItem.status == ActionStatus.OPEN,
            person.timezone.is_(None),
            or_(cache.id.is_(None), cache.fetched_at < now - CACHE_TTL),
        )
        .distinct()
        .limit(limit)
    )
    return [(str(team or ""), str(user)) for team, user in session.execute(stmt)]
