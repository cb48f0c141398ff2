"""Working days per country: weekends and public holidays (the `holidays` package), so
that reminders and digests respect the people who get them.

A person's or a channel's country is the one recorded for them (ISO 3166 alpha-2), else
the country of their IANA time zone (tzdata's zone.tab: `Asia/Kolkata` → IN) — a default
only: a CRO team in Berlin working to an Indian calendar records IN.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from importlib.resources import files

import holidays

SAT_SUN = frozenset({5, 6})
LOOKAHEAD_DAYS = 31  # no country has a month of consecutive days off


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    out: dict[str, str] = {}
    text = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            code, _, zone = line.split("\t")[:3]
            out.setdefault(zone, code)
    return out


def zone_country(zone: str | None) -> str | None:
    """The country of a time zone (None for UTC and zones without one)."""
    return _zone_countries().get(zone or "")


def country_of(recorded: str | None, zone: str | None) -> str | None:
    return (recorded or "").upper() or zone_country(zone)


@lru_cache(maxsize=512)
def _calendar(country: str, year: int) -> holidays.HolidayBase | None:
    try:
        return holidays.country_holidays(country, years=year)
    except NotImplementedError:  # a country the package has no calendar for
        return None


def holiday(day: date, country: str | None) -> str | None:
    """The public holiday `day` is in `country`, if any."""
    cal = _calendar(country, day.year) if country else None
    return cal.get(day) if cal is not None else None


def is_weekend(day: date, country: str | None) -> bool:
    cal = _calendar(country, day.year) if country else None
    return day.weekday() in frozenset(getattr(cal, "weekend", SAT_SUN) or SAT_SUN)


def is_working_day(day: date, country: str | None) -> bool:
    cal = _calendar(country, day.year) if country else None
    return not is_weekend(day, country) and (cal is None or day not in cal)


def next_working_day(day: date, country: str | None) -> date:
    """`day` itself when it is a working day, else the first working day after it."""
    for offset in range(LOOKAHEAD_DAYS):
        candidate = day + timedelta(days=offset)
        if is_working_day(candidate, country):
            return candidate
    return day
