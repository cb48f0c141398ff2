"""A Slack user's IANA time zone: Person.timezone, then the cache, then `users.info`.

`users.info` answers are cached in `user_tz_cache` for a while (DESIGN: cache it), so a
burst of clicks costs at most one Slack call per user.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.actor import Actor
from services.runtime import Runtime
from storage.models import UserTimezoneCache

log = logging.getLogger(__name__)
CACHE_FOR = timedelta(hours=12)


def _known(tz: str | None) -> str | None:
    if not tz:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return tz


def user_timezone(runtime: Runtime, client: WebClient, actor: Actor) -> str:
    if actor.person is not None and (tz := _known(actor.person.timezone)):
        return tz
    now = runtime.now()
    with runtime.db.read() as s:
        cached = s.scalars(
            select(UserTimezoneCache).where(
                UserTimezoneCache.team_id == actor.team_id,
                UserTimezoneCache.user_id == actor.user_id,
            )
        ).first()
    if cached is not None and now - cached.fetched_at < CACHE_FOR and _known(cached.timezone):
        return cached.timezone
    try:
        info = client.users_info(user=actor.user_id)
        tz = _known(str((info.get("user") or {}).get("tz") or ""))
    except SlackApiError as exc:
        log.warning("users.info failed for a user: %s", exc.response.get("error"))
        tz = None
    if tz is None:
        return runtime.default_tz
    _store(runtime, actor, tz, now)
    return tz


def _store(runtime: Runtime, actor: Actor, tz: str, now: datetime) -> None:
    try:
        with runtime.db.write() as s:
            row = s.scalars(
                select(UserTimezoneCache).where(
                    UserTimezoneCache.team_id == actor.team_id,
                    UserTimezoneCache.user_id == actor.user_id,
                )
            ).first()
            if row is None:
                s.add(
                    UserTimezoneCache(
                        team_id=actor.team_id, user_id=actor.user_id, timezone=tz, fetched_at=now
                    )
                )
            else:
                row.timezone, row.fetched_at = tz, now
    except IntegrityError:
        # Another thread cached the same user first; its answer is as good as ours.
        pass
