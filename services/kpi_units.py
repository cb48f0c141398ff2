"""The units a KPI may be measured in: a closed set, so that `12 days` and a target of
`80 %` mean one thing in every view, and a typo (`dyas`) is refused, not stored.

Families, each with the range a value naturally takes (a definition's default bounds
when it gives none):

- percent: `%`, 0 to 100;
- time: `days`, `hours`, `weeks`, from 0;
- counts (whole things): `count`, `patients`, `subjects`, `sites`, `visits`,
  `deviations`, `queries`, `batches`, `samples`, `findings`, `people`, from 0;
- money: an ISO 4217 code of `CURRENCIES` (`EUR`), or thousands (`kEUR`) or millions
  (`MEUR`) of it, from 0;
- `score`: a rating whose scale the definition must give (`--min 0 --max 5`).
"""

from __future__ import annotations

from dataclasses import dataclass

from crobot.services.errors import UserError, msg

PERCENT = "%"
TIME = ("days", "hours", "weeks")
COUNTS = (
    "count",
    "patients",
    "subjects",
    "sites",
    "visits",
    "deviations",
    "queries",
    "batches",
    "samples",
    "findings",
    "people",
)
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY", "CNY", "CAD", "AUD", "SEK", "DKK", "NOK", "INR")
SCORE = "score"
# Upper bounds a definition gets when it gives none: ten years, a million things.
TIME_MAX = {"days": 3650.0, "hours": 87_600.0, "weeks": 520.0}
COUNT_MAX = 1_000_000.0
MONEY_MAX = 1_000_000_000.0

ALLOWED = (
    "`%` · time: `days`, `hours`, `weeks` · counts: "
    + ", ".join(f"`{u}`" for u in COUNTS)
    + " · money: a currency code ("
    + ", ".join(f"`{c}`" for c in CURRENCIES)
    + "), `kEUR` for thousands, `MEUR` for millions · `score`"
)


@dataclass(frozen=True)
class Unit:
    text: str  # as stored and shown: `%`, `days`, `kUSD`
    family: str  # percent | time | count | money | score
    low: float | None  # the natural range, when the definition gives none
    high: float | None

    @property
    def counts_things(self) -> bool:
        return self.family == "count"


def parse_unit(raw: str) -> Unit:
    """The unit `raw` names, spelt as crobot stores it, or a UserError listing the units."""
    text = raw.strip()
    lower = text.lower()
    if lower in (PERCENT, "percent", "pct"):
        return Unit(PERCENT, "percent", 0.0, 100.0)
    if lower in TIME:
        return Unit(lower, "time", 0.0, TIME_MAX[lower])
    if lower in COUNTS:
        return Unit(lower, "count", 0.0, COUNT_MAX)
    if lower == SCORE:
        return Unit(SCORE, "score", None, None)
    money = _money(text)
    if money is not None:
        return money
    raise UserError(
        msg("`{}` is not a unit crobot knows.", text),
        "Units: " + ALLOWED + ".",
        field="unit",
    )


def _money(text: str) -> Unit | None:
    scale, code = "", text.upper()
    if len(text) == 4 and text[0] in "kM":
        scale, code = text[0], text[1:].upper()
    if code not in CURRENCIES:
        return None
    return Unit(scale + code, "money", 0.0, MONEY_MAX)


def natural_bounds(unit: str) -> tuple[float | None, float | None]:
    """The natural range of a stored unit (computed measures have no definition row)."""
    try:
        u = parse_unit(unit)
    except UserError:
        return None, None
    return u.low, u.high
