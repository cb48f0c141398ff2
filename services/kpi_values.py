"""A reported KPI value as people type it, and whether it fits its KPI.

The one parser for `/cro kpi report`, the KPI form and the CSV import: they all hand the
raw text to `services.kpis.report`, which reads it with `parse_value` and checks it against
the KPI's definition with `check_value`. The rules (README, "KPI values"):

- ASCII digits `0-9` with `.` as the decimal point: `12`, `12.5`, `.5`, `1e3`. Nothing
  else inside a number: no `_`, no spaces, no other scripts' digits (`١٢`).
- `,` is a decimal comma only when that is unambiguous — one comma, no `.`, and not
  exactly three digits after it: `1,5` and `1,50` are 1.5.
- `,` separates thousands only with exactly three digits after each comma: `1,500` is
  1500 (never 1.5), `12,345,678`, `1,234.5`.
- Anything else with a comma (`1,5,0`, `1.500,5`, `1,50,000`, `1234,567`) is refused, and
  the message shows the reading(s) it could have had (`1234,567`: 1234.567 or 1234567),
  so the person writes it plainly instead.
- A trailing `%` only for a KPI measured in percent.
- The value lies in the KPI's range and is whole where the KPI counts things. When a
  separator could have been meant the other way (`1,500` for a score of 0-5, `1.500` for
  a count), the refusal names the other reading too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from crobot.services.errors import Msg, UserError, msg
from crobot.storage.models import KpiDefinition

FIELD = "value"
_SHAPE = re.compile(r"^[+-]?[0-9.,]+(?:e[+-]?[0-9]+)?$", re.IGNORECASE)
_PLAIN = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?$", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"^([+-]?[0-9]*),([0-9]+)$")
_THOUSANDS = re.compile(r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$")
_EUROPEAN = re.compile(r"^[+-]?[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]+$")
_DOT_THOUSAND = re.compile(r"^[+-]?[1-9][0-9]{0,2}\.[0-9]{3}$")
_COMMA_THOUSAND = re.compile(r"^[+-]?[0-9]{1,3},[0-9]{3}$")
_LAKH = re.compile(r"^[+-]?[0-9]{1,2}(?:,[0-9]{2})+,[0-9]{3}$")


@dataclass(frozen=True)
class Reading:
    """A number as read from what was typed."""

    value: float
    text: str  # as typed, white space stripped: error messages quote it
    percent: bool = False  # written with a trailing `%`
    # The other way its one separator could have been meant: `1,500` -> 1.5, `1.500` -> 1500.
    other: float | None = None


def shown(value: float) -> str:
    """A value as crobot writes it back: every digit that was given (`1234567`, `1.5`)."""
    return f"{value:.15g}"


def parse_value(raw: object, hint: str | None = None) -> Reading:
    """The number in `raw` (a string as typed, or already a number)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise UserError(msg("`{}` is not a number.", raw), hint, field=FIELD)
    if not isinstance(raw, str):
        try:
            return _finite(Reading(float(raw), shown(float(raw))), hint)
        except OverflowError:
            raise UserError(
                msg("`{}` is not a number I can store.", raw), hint, field=FIELD
            ) from None
    text = raw.strip()
    percent = text.endswith("%")
    number = text.removesuffix("%").rstrip() if percent else text
    if not number.isascii():
        raise UserError(
            msg("`{}` is not a number: write it with the digits 0-9.", text), hint, field=FIELD
        )
    if not _SHAPE.match(number) or not any(c.isdigit() for c in number):
        raise UserError(msg("`{}` is not a number.", text), hint, field=FIELD)
    value, other = _read(number, text, hint)
    return _finite(Reading(value, text, percent, other), hint)


def _read(number: str, text: str, hint: str | None) -> tuple[float, float | None]:
    """(the value, the other reading of its separator if there is one)."""
    mantissa, e, exponent = number.partition("e" if "e" in number else "E")
    power = f"e{exponent}" if e else ""  # float() of the whole text: no rounding by scaling
    if "," not in mantissa:
        if not _PLAIN.match(number):
            raise UserError(msg("`{}` is not a number.", text), hint, field=FIELD)
        if _DOT_THOUSAND.match(number):  # 1.500: 1.5, though a thousands dot is possible
            return float(number), float(number.replace(".", ""))
        return float(number), None
    if (m := _DECIMAL_COMMA.match(mantissa)) and len(m.group(2)) != 3:
        return float(f"{m.group(1)}.{m.group(2)}{power}"), None
    if _THOUSANDS.match(mantissa):
        value = float(mantissa.replace(",", "") + power)
        if _COMMA_THOUSAND.match(number):  # 1,500: 1500, though a decimal comma is possible
            return value, float(number.replace(",", "."))
        return value, None
    raise UserError(_unreadable(mantissa, text), hint, field=FIELD)


def _unreadable(mantissa: str, text: str) -> Msg:
    """Why a number with commas was refused, with the readings it could have had."""
    readings: list[str] = []
    if _EUROPEAN.match(mantissa):  # 1.500,5: dots for thousands, a decimal comma
        readings.append(mantissa.replace(".", "").replace(",", "."))
    elif mantissa.count(",") == 1 and "." not in mantissa:  # 1234,567
        readings.append(mantissa.replace(",", "."))  # a decimal comma
        readings.append(mantissa.replace(",", ""))  # or loose thousands
    elif _LAKH.match(mantissa):  # 1,50,000: Indian digit grouping
        readings.append(mantissa.replace(",", ""))
    values = [shown(float(r)) for r in readings if _PLAIN.match(r)]
    rule = (
        " A comma is a decimal comma once and with no `.` (`1,5`); it separates thousands "
        "only with three digits after each comma (`1,500`)."
    )
    if len(values) == 2:
        return msg("`{}` is ambiguous: {} or {}? Write the number plainly." + rule, text, *values)
    if values:
        return msg(
            "`{}` is ambiguous: did you mean {}? Write it as `{}`." + rule, text, *values * 2
        )
    return msg("`{}` is not a number I can read." + rule, text)


def _finite(reading: Reading, hint: str | None) -> Reading:
    if not math.isfinite(reading.value):
        raise UserError(msg("`{}` is not a number I can store.", reading.text), hint, field=FIELD)
    return reading


def check_value(kpi: KpiDefinition, reading: Reading) -> float:
    """The value, if it fits the KPI: its unit, its range, whole where it counts things."""
    label = msg("{} ({})", kpi.label, kpi.unit)
    if reading.percent and kpi.unit != "%":
        raise UserError(
            msg("`{}` is a percentage, but {} is not measured in percent.", reading.text, label),
            "Leave out the `%`.",
            field=FIELD,
        )
    value = reading.value
    low, high = kpi.min_value, kpi.max_value
    problem = None
    if low is not None and value < low:
        problem = f"cannot be below {shown(low)}"
    elif high is not None and value > high:
        problem = f"cannot be above {shown(high)}"
    elif kpi.integer and value != int(value):
        problem = "is a whole number"
    if problem is None:
        return value
    given = "" if reading.text == shown(value) else f" (read as {shown(value)})"
    # The other reading goes in the message, not a hint: a form shows only the message.
    also = _other_reading(kpi, reading)
    raise UserError(
        msg(
            f"{{}} {problem} ({value_range(kpi)}); you gave `{{}}`{given}.{also}",
            label,
            reading.text,
        ),
        field=FIELD,
    )


def value_range(kpi: KpiDefinition) -> str:
    """The values a KPI takes, in words: `whole numbers from 0 to 100000`."""
    if kpi.integer:
        bounds = range_text(kpi.min_value, kpi.max_value, bounded_only=True)
        return f"whole numbers {bounds}".strip()
    return range_text(kpi.min_value, kpi.max_value)


def range_text(low: float | None, high: float | None, *, bounded_only: bool = False) -> str:
    """A range in words: `from 0 to 100`, `from 0 up`, `up to 5`, `any number` (or "" with
    `bounded_only`, when there are no bounds to name)."""
    if low is not None and high is not None:
        return f"from {shown(low)} to {shown(high)}"
    if low is not None:
        return f"from {shown(low)} up"
    if high is not None:
        return f"up to {shown(high)}"
    return "" if bounded_only else "any number"


def _other_reading(kpi: KpiDefinition, reading: Reading) -> str:
    """Name the other reading of the separator when that one would fit the KPI."""
    other = reading.other
    if other is None or not _fits(kpi, other):
        return ""
    return f" If you meant {shown(other)}, write `{shown(other)}`."


def _fits(kpi: KpiDefinition, value: float) -> bool:
    return (
        (kpi.min_value is None or value >= kpi.min_value)
        and (kpi.max_value is None or value <= kpi.max_value)
        and (not kpi.integer or value == int(value))
    )
