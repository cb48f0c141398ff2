"""A reported KPI value as people type it: the one parser for `/cro kpi report`, the KPI
form and the CSV import (they all hand the raw text to `services.kpis.report`).

Accepted: `12`, `12.5`, `.5`, `-3`, `1,250` and `1_250` (thousands separators), `1e3`,
and a trailing `%` (`85%`: the unit is the KPI's, the sign only repeats it). Surrounding
white space is ignored. Not a number, or not a finite one, is a `UserError` on `value`.
"""

from __future__ import annotations

import math
import re

from crobot.services.errors import UserError, msg

FIELD = "value"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?%?$", re.IGNORECASE)


def parse_value(raw: object, hint: str | None = None) -> float:
    """The number in `raw` (a string as typed, or already a number)."""
    if isinstance(raw, bool):
        raise UserError(msg("`{}` is not a number.", raw), hint, field=FIELD)
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        text = str(raw).strip().replace(",", "").replace("_", "")
        if not _NUMBER.match(text):
            raise UserError(msg("`{}` is not a number.", raw), hint, field=FIELD)
        value = float(text.rstrip("%"))
    if not math.isfinite(value):
        raise UserError(msg("`{}` is not a number I can store.", raw), hint, field=FIELD)
    return value
