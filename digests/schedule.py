"""Digest schedules: parse, validate and change them; compute fire times and period keys.

The `channel_links` schedule columns are the source of truth. The scheduler is rebuilt
from them at start and told (via `Runtime.schedule_changed`) when one changes.

Daylight-saving policy (the same for every zone):
- A local time that does not exist on a spring-forward day (e.g. 02:30 in Berlin on the
  last Sunday of March) fires once, shifted forward by the gap (03:30 local).
- A local time that happens twice on a fall-back day fires once, at its first occurrence.
- Either way the period key is the local date plus the *nominal* schedule time, so even a
  second firing would be absorbed by the DigestRun claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.directory import check_zone
from crobot.services.errors import UserError, msg, validate
from crobot.services.lookup import vendor_org_ids
from crobot.services.permissions import require_schedule_rights
from crobot.storage.models import ChannelLink, utcnow

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE_HINT = 'Write it as `/cro digest schedule "Mon,Thu 09:00" [tz:Europe/Berlin]`.'
_FIELDS = ("digest_enabled", "digest_days", "digest_time", "timezone")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _norm_days(raw: str) -> str:
    """'Mon,Thu' / 'mon-fri' / 'daily' -> canonical 'mon,thu' (week order, no repeats)."""
    text = raw.strip().lower()
    if text in ("daily", "everyday", "every day"):
        return ",".join(DAYS)
    if text == "weekdays":
        return ",".join(DAYS[:5])
    picked: set[int] = set()
    for part in re.split(r"[,\s]+", text):
        if not part:
            continue
        if "-" in part:
            a, _, b = part.partition("-")
            i, j = _day_index(a), _day_index(b)
            picked.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        else:
            picked.add(_day_index(part))
    if not picked:
        raise ValueError("name at least one day, e.g. Mon or Mon,Thu")
    return ",".join(DAYS[i] for i in sorted(picked))


def _day_index(word: str) -> int:
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    if word in DAYS:
        return DAYS.index(word)
    if word in full:
        return full.index(word)
    if word in ("tues", "thur", "thurs"):
        return DAYS.index(word[:3])
    raise ValueError(f"unknown day {word!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


class ScheduleChange(BaseModel):
    """A validated new schedule for one channel link."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    days: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    time: str
    timezone: str | None = None

    @field_validator("days")
    @classmethod
    def _days(cls, v: str) -> str:
        return _norm_days(v)

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        m = _TIME.match(v.strip())
        if not m:
            raise ValueError("use a 24-hour time like 09:00")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else check_zone(v)


def parse_spec(spec: str) -> tuple[str, str]:
    """'Mon,Thu 09:00' -> ('Mon,Thu', '09:00'); the time is the last word."""
    words = spec.strip().split()
    if len(words) < 2:
        raise UserError(msg("I could not read the schedule `{}`.", spec), SCHEDULE_HINT)
    return " ".join(words[:-1]), words[-1]


def set_schedule(
    session: Session,
    actor: Actor,
    link: ChannelLink,
    *,
    now: datetime | None = None,
    **data: object,
) -> ChannelLink:
    """Validate and store a new schedule (enables the digest). Nothing is written on error."""
    inp = validate(ScheduleChange, data, SCHEDULE_HINT)
    require_schedule_rights(actor, link, vendor_org_ids(session, link.study_id))
    before = audit.snapshot(link, *_FIELDS)
    link.schedule_changed_at = now or utcnow()
    link.digest_enabled = True
    link.digest_days = inp.days
    link.digest_time = inp.time
    if inp.timezone:
        link.timezone = inp.timezone
    session.flush()
    audit.record(
        session,
        actor,
        "digest.schedule",
        "channel_link",
        link.id,
        study_id=link.study_id,
        before=before,
        after=audit.snapshot(link, *_FIELDS),
    )
    return link


def disable(
    session: Session, actor: Actor, link: ChannelLink, *, now: datetime | None = None
) -> ChannelLink:
    require_schedule_rights(actor, link, vendor_org_ids(session, link.study_id))
    if not link.digest_enabled:
        raise UserError("The digest for this channel is already off.")
    before = audit.snapshot(link, *_FIELDS)
    link.schedule_changed_at = now or utcnow()
    link.digest_enabled = False
    session.flush()
    audit.record(
        session,
        actor,
        "digest.off",
        "channel_link",
        link.id,
        study_id=link.study_id,
        before=before,
        after=audit.snapshot(link, *_FIELDS),
    )
    return link


def set_charts(session: Session, actor: Actor, link: ChannelLink, enabled: bool) -> ChannelLink:
    require_schedule_rights(actor, link, vendor_org_ids(session, link.study_id))
    before = audit.snapshot(link, "charts_enabled")
    link.charts_enabled = enabled
    session.flush()
    audit.record(
        session,
        actor,
        "digest.charts",
        "channel_link",
        link.id,
        study_id=link.study_id,
        before=before,
        after=audit.snapshot(link, "charts_enabled"),
    )
    return link


# --- fire times -----------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    days: str  # "mon,thu"
    time: str  # "09:00"
    timezone: str

    @classmethod
    def of(cls, link: ChannelLink) -> Schedule:
        return cls(link.digest_days, link.digest_time, link.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        days = ",".join(d.capitalize() for d in self.days.split(","))
        return f"{days} {self.time} ({self.timezone})"

    def trigger(self) -> LocalCronTrigger:
        hour, minute = (int(x) for x in self.time.split(":"))
        return LocalCronTrigger(day_of_week=self.days, hour=hour, minute=minute, timezone=self.zone)

    def period_key(self, fire: datetime) -> str:
        """Local date of the firing plus the nominal time: stable across DST oddities."""
        local = fire.astimezone(UTC).astimezone(self.zone)
        return f"{local.date().isoformat()}T{self.time}"

    def next_fire(self, after: datetime) -> datetime | None:
        nxt = self.trigger().get_next_fire_time(None, after)
        return nxt.astimezone(UTC) if nxt else None

    def last_fire(self, now: datetime) -> datetime | None:
        """The most recent fire time at or before `now` (looks back up to 8 days)."""
        trig = self.trigger()
        cursor = now - timedelta(days=8)
        prev: datetime | None = None
        last: datetime | None = None
        while True:
            nxt = trig.get_next_fire_time(prev, cursor)
            if nxt is None or nxt > now:
                return last.astimezone(UTC) if last else None
            last, prev, cursor = nxt, nxt, _after(nxt)

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        trig = self.trigger()
        out: list[datetime] = []
        prev: datetime | None = None
        cursor = start
        while True:
            nxt = trig.get_next_fire_time(prev, cursor)
            if nxt is None or nxt >= end:
                return out
            out.append(nxt.astimezone(UTC))
            prev, cursor = nxt, _after(nxt)


class LocalCronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """CronTrigger that fires a wall-clock time once even when DST repeats it.

    APScheduler 3 fires a repeated local time (fall-back day) at both occurrences; we skip
    the second, keeping the first. Non-existent times already fire once, after the gap.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        nxt: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while nxt is not None and previous_fire_time is not None:
            zone: tzinfo = self.timezone
            if _wall(nxt, zone) != _wall(previous_fire_time, zone):
                break
            prev = nxt
            # Step in UTC: aware local arithmetic drops `fold` and would loop back.
            nxt = super().get_next_fire_time(prev, _after(prev))
        return nxt


def _wall(dt: datetime, zone: tzinfo) -> datetime:
    # Via UTC: APScheduler may hand back a non-normalised local time (e.g. 02:30+01:00 on a
    # spring-forward day), and astimezone() to the same zone would not normalise it.
    return dt.astimezone(UTC).astimezone(zone).replace(tzinfo=None, fold=0)


def _after(dt: datetime) -> datetime:
    return dt.astimezone(UTC) + timedelta(microseconds=1)
