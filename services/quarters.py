"""Calendar quarters, the period of a scorecard: `2026-Q4` is 1 October to 31 December 2026.

Typed as `2026-Q4`, `2026Q4` or `2026-q4`; shown as `2026-Q4`. Dates (a milestone's
planned date, an action's due date, the end of a KPI period) fall in a quarter as they
are; instants (an approval's decision, a forecast change) by their UTC date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from crobot.services.errors import UserError, msg

HINT = "Write the quarter as 2026-Q4 (or 2026Q4)."
_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    number: int  # 1-4

    @classmethod
    def of(cls, day: date) -> Quarter:
        return cls(day.year, (day.month - 1) // 3 + 1)

    @classmethod
    def parse(cls, raw: str, *, field: str = "period") -> Quarter:
        text = raw.strip()
        m = _QUARTER.match(text)
        if m is None:
            raise UserError(msg("I don't understand the quarter `{}`.", text), HINT, field=field)
        year = int(m.group(1))
        if not 2000 <= year <= 2100:
            raise UserError(msg("`{}` is out of range.", text), HINT, field=field)
        return cls(year, int(m.group(2)))

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def start(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """The quarter's last day."""
        return self.next().start - timedelta(days=1)

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def holds(self, at: datetime) -> bool:
        """Whether an instant falls in the quarter, by its UTC date."""
        return self.contains(at.astimezone(UTC).date())

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[first instant, first instant of the next quarter) in UTC."""
        return _midnight(self.start), _midnight(self.next().start)

    def next(self) -> Quarter:
        if self.number == 4:
            return Quarter(self.year + 1, 1)
        return Quarter(self.year, self.number + 1)

    def previous(self) -> Quarter:
        if self.number == 1:
            return Quarter(self.year - 1, 4)
        return Quarter(self.year, self.number - 1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)
