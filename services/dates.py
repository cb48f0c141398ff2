"""Dates and spans as people type them, relative to *their* today (their time zone).

- ISO `2026-12-01`; `today`, `tomorrow`, `yesterday`;
- weekday names (`fri`, `friday`): the first such day from today on (today counts);
- `next fri`: that weekday in the next calendar week (Monday-based), so on a Wednesday
  `fri` is in 2 days and `next fri` in 9;
- offsets `+3d`, `+2w`, `-1w` (days, weeks).

The caller passes `today` already resolved in the user's zone; nothing here knows Slack.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from crobot.services.errors import UserError, msg

DATE_HINT = (
    "Write dates as YYYY-MM-DD, `today`, `tomorrow`, a weekday (`fri`, `next fri`) "
    "or an offset (`+3d`, `+2w`)."
)
WEEKDAYS = {
    "mon": 0,
    "monday": 0,
    "tue": 1,
    "tues": 1,
    "tuesday": 1,
    "wed": 2,
    "wednesday": 2,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "thursday": 3,
    "fri": 4,
    "friday": 4,
    "sat": 5,
    "saturday": 5,
    "sun": 6,
    "sunday": 6,
}
_OFFSET = re.compile(r"^([+-])(\d{1,4})([dw])$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SPAN = re.compile(r"^(\d{1,3})([dw]?)$")
MAX_OFFSET_DAYS = 3660  # ten years: further is a typo, not a plan


def parse_date(text: str, today: date, *, what: str = "date") -> date:
    word = " ".join(text.strip().lower().replace("next-", "next ").split())
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word == "yesterday":
        return today - timedelta(days=1)
    if _ISO.match(word):
        try:
            return date.fromisoformat(word)
        except ValueError:
            raise UserError(msg(f"`{{}}` is not a real {what}.", text), DATE_HINT) from None
    if m := _OFFSET.match(word):
        sign, amount, unit = m.groups()
        days = int(amount) * (7 if unit == "w" else 1)
        if days > MAX_OFFSET_DAYS:
            raise UserError(msg(f"`{{}}` is too far away for a {what}.", text), DATE_HINT)
        return today + timedelta(days=days if sign == "+" else -days)
    nxt = word.startswith("next ")
    name = word.removeprefix("next ").strip()
    if name in WEEKDAYS:
        wd = WEEKDAYS[name]
        if nxt:
            next_monday = today + timedelta(days=7 - today.weekday())
            return next_monday + timedelta(days=wd)
        return today + timedelta(days=(wd - today.weekday()) % 7)
    raise UserError(msg(f"I don't understand the {what} `{{}}`.", text), DATE_HINT)


def parse_weeks(text: str, *, default_unit: str = "w") -> int:
    """A look-back span for `last:`: `8w`, `8` (weeks) or `30d` (rounded up to weeks)."""
    word = text.strip().lower()
    m = _SPAN.match(word)
    if m is None:
        raise UserError(msg("I don't understand the span `{}`.", text), "Write it like `last:8w`.")
    amount, unit = int(m.group(1)), m.group(2) or default_unit
    weeks = amount if unit == "w" else -(-amount // 7)
    if not 1 <= weeks <= 156:
        raise UserError(msg("`{}` is out of range.", text), "Look back between 1 and 156 weeks.")
    return weeks
