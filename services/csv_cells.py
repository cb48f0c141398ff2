"""CSV cells that a spreadsheet cannot run: OWASP's CSV-injection rule, in one place.

Text a person or a file supplied (a milestone name, a KPI note, a reject reason, an
audit actor) may start with `=`, `+`, `-`, `@`, a tab or a carriage return; Excel,
LibreOffice and Google Sheets read such a cell as a formula (`=HYPERLINK(…)`,
`=cmd|' /C calc'!A0`). Every CSV export writes through `SafeWriter`, which prefixes such
text with a single quote — shown as the value itself, never evaluated. Numbers, dates and
enums are crobot's own values and are written as they are (a negative number stays a
number).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(v) for v in row])
