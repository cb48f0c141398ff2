"""Bulk KPI import from CSV: every row validated first, then all stored or none.

Columns: study, org, kpi, period, value[, note]. Values are read as `/cro kpi report` and
the KPI form read them (`services.kpi_values`). A row's problems are reported with its
line number in the file (the header is line 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from crobot.services import kpis
from crobot.services.actor import Actor
from crobot.services.errors import Msg, UserError, msg

REQUIRED = ("study", "org", "kpi", "period", "value")
MAX_REPORTED = 20


@dataclass(frozen=True)
class ImportResult:
    rows: int
    studies: set[str]


def import_csv(
    session: Session,
    actor: Actor,
    text: str,
    *,
    today: date,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(
            f"line 1: missing column(s): {', '.join(missing)}",
            f"The header must name: {', '.join(REQUIRED)}[, note].",
        )
    reader.fieldnames = header
    rows = list(reader)
    errors: list[Msg] = []
    studies: set[str] = set()
    for index, row in enumerate(rows):
        line = index + 2
        try:
            # A savepoint per row: a row that fails leaves nothing of itself behind.
            with session.begin_nested():
                kpis.report(
                    session,
                    actor,
                    today=today,
                    study=(row.get("study") or "").strip(),
                    org=(row.get("org") or "").strip() or None,
                    kpi=(row.get("kpi") or "").strip(),
                    value=row.get("value") or "",  # parsed by the one KPI value parser
                    period=(row.get("period") or "").strip() or None,
                    note=(row.get("note") or "").strip() or None,
                )
            studies.add((row.get("study") or "").strip().upper())
        except UserError as exc:
            errors.append(msg(f"line {line}: {{}}", str(exc)))
        if progress:
            progress(index + 1, len(rows))
    if errors:
        shown = errors[:MAX_REPORTED]
        more = f"\n… and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        lines = "\n".join("{}" for _ in shown)
        raise UserError(
            msg(f"{len(errors)} bad row(s); nothing was imported:\n{lines}{more}", *shown)
        )
    if not rows:
        raise UserError("The file has no data rows.")
    return ImportResult(len(rows), studies)
