"""Bulk KPI import from CSV: every row validated first, then all stored or none.

Columns: study, org, kpi, period, value[, note] — any order, no others (an unknown column
would be data silently dropped), and no row with more cells than the header. Values are
read as `/cro kpi report` and the KPI form read them (`services.kpi_values`: ASCII digits,
the same comma rules, the KPI's range); every row names its organisation. Imported values
wait for a sponsor approver like any value not entered by one (services/permissions.py
`needs_approval`): the CLI operator's always wait; `--as PERSON` imports with that
person's role and organisation. A row's problems
are reported with the line of the file it starts on (the header is line 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from crobot.services import kpis
from crobot.services.actor import Actor
from crobot.services.errors import Msg, UserError, msg

REQUIRED = ("study", "org", "kpi", "period", "value")
OPTIONAL = ("note",)
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
    studies = read_rows(
        text,
        REQUIRED,
        OPTIONAL,
        lambda row: _store(session, actor, row, today),
        command_hint=kpis.REPORT_HINT,
        progress=progress,
    )
    return ImportResult(len(studies), set(studies))


T = TypeVar("T")


def read_rows(
    text: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    store: Callable[[Row], T],
    *,
    command_hint: str,
    progress: Callable[[int, int], None] | None = None,
) -> list[T]:
    """Check the header, `store` every row (each in its own savepoint, so that a failing
    row leaves nothing behind), and refuse the whole file, naming each bad row's line, if
    any row failed; the caller's transaction then rolls back. What `store` returned, per
    row. `command_hint` is the slash command's "write it as …", no help for a file."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    check_header(header, required, optional)
    rows = list(records(reader, header))
    errors: list[Msg] = []
    out: list[T] = []
    for index, (line, row) in enumerate(rows):
        try:
            if isinstance(row, UserError):
                raise row
            out.append(store(row))
        except UserError as exc:
            text_of = exc.message if exc.hint == command_hint else str(exc)
            errors.append(msg(f"line {line}: {{}}", text_of))
        if progress:
            progress(index + 1, len(rows))
    refuse_bad_rows(errors)
    if not rows:
        raise UserError("The file has no data rows.")
    return out


def refuse_bad_rows(errors: list[Msg]) -> None:
    """Every bad row (the first MAX_REPORTED of them) in one error: nothing is imported."""
    if not errors:
        return
    shown = errors[:MAX_REPORTED]
    more = f"\n… and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    lines = "\n".join("{}" for _ in shown)
    raise UserError(msg(f"{len(errors)} bad row(s); nothing was imported:\n{lines}{more}", *shown))


def _store(session: Session, actor: Actor, row: Row, today: date) -> str:
    """Report one row's value (in a savepoint: a failing row leaves nothing behind)."""
    if not row["org"]:
        # `/cro kpi report` takes the reporter's own organisation; a file names each one.
        raise UserError("The org is empty: name the organisation the value is for.")
    with session.begin_nested():
        kpis.report(
            session,
            actor,
            today=today,
            study=row["study"],
            org=row["org"],
            kpi=row["kpi"],
            value=row["value"],  # as written: the one KPI value parser reads it
            period=row["period"] or None,
            note=row.get("note") or None,
        )
    return row["study"].upper()


def check_header(header: list[str], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    hint = f"The header must name: {', '.join(required)}"
    hint += f"[, {', '.join(optional)}]." if optional else "."
    unknown = [name or "(empty)" for name in header if name not in required + optional]
    if unknown:
        raise UserError(msg("line 1: unknown column(s): {}.", ", ".join(unknown)), hint)
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise UserError(msg("line 1: column(s) named twice: {}.", ", ".join(twice)), hint)
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"line 1: missing column(s): {', '.join(missing)}.", hint)


Row = dict[str, str]


class _Records(Protocol):
    """What `csv.reader` returns: records, and the physical lines read so far."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...


def records(reader: _Records, header: list[str]) -> Iterator[tuple[int, Row | UserError]]:
    """(the line a record starts on, its cells by column — or why it cannot be read).

    A quoted cell may span lines, so a record starts one line after the previous one ended.
    """
    ended = reader.line_num
    for cells in reader:
        start, ended = ended + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue  # a blank line
        if len(cells) > len(header):
            yield (
                start,
                UserError(f"{len(cells)} cells, but the header names {len(header)} columns."),
            )
            continue
        row = {name: cells[i].strip() if i < len(cells) else "" for i, name in enumerate(header)}
        yield start, row
