"""Bulk KPI import from CSV: every row validated first, then all stored or none.

Columns: study, org, kpi, period, value[, note] — any order, no others (an unknown column
would be data silently dropped), and no row with more cells than the header. Values are
read as `/cro kpi report` and the KPI form read them (`services.kpi_values`: ASCII digits,
the same comma rules, the KPI's range); every row names its organisation. Imported values
wait for a sponsor approver like any value not entered by one (services/permissions.py
`needs_approval`): the CLI operator's always wait; `--as PERSON` imports with that
person's role and organisation. A row's problems
are reported with the line of the file it starts on (the header is line 1).

Speed (issue 18: 10,000 rows in 26 s before, ~2.7 ms of Python a row): every row passes
the same rules as a `/cro kpi report` (`kpis.check_report`, with the studies, KPIs and
organisations it names read once), then the values go in with bulk inserts, in chunks:
the values a row corrects are read once per study, a key given twice in the file is a
correction of the earlier row (inserted after it), and the approvals and their posts,
and the quality-limit checks of values approved at once, are done for the whole batch.

Audit: one `kpi.import` event per study of the file, not one per row. It names the file
(name and SHA-256 of its bytes, which an inspector can match against the file kept as the
source record), the rows it stored for that study (their ids, as ranges, and how many
correct an earlier value or wait for an approver), the approvals it requested, and a
SHA-256 over those rows' content as stored (`rows_digest`: id, study, organisation, KPI,
period, value, note, submitter, the row corrected). `crobot audit verify` recomputes
that digest from the table (`verify_imports`), so a changed, added or deleted imported
value fails verification as a changed event does; the per-row events of before did not
protect the rows themselves. A per-row hash list is not needed for that: the digest
proves every row at once, and the file (whose hash is chained) shows which row differs.
Per-row events would cost more than storing the rows and say no more: who imported what,
when, is the event, and each row's own content is in the table it protects.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from crobot.services import approvals, audit, kpis, qtl
from crobot.services.actor import Actor
from crobot.services.errors import Msg, UserError, msg
from crobot.storage import bulk
from crobot.storage.models import ApprovalState, AuditEvent, KpiUpdate, SubjectType, utcnow

REQUIRED = ("study", "org", "kpi", "period", "value")
OPTIONAL = ("note",)
MAX_REPORTED = 20
IMPORTED = "kpi.import"
CHUNK = 1000  # rows a bulk insert (and a progress step)


@dataclass(frozen=True)
class CsvFile:
    """An imported file: its name, its text, and the SHA-256 of its bytes."""

    name: str
    text: str
    sha256: str

    @classmethod
    def of(cls, name: str, raw: bytes) -> CsvFile:
        try:
            # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"The file is not UTF-8 text (byte {exc.start} cannot be read).",
                "Save it as CSV UTF-8.",
            ) from None
        return cls(name, text, hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class ImportResult:
    rows: int
    studies: set[str]


Progress = Callable[[int, int], None]


def import_csv(
    session: Session,
    actor: Actor,
    file: CsvFile,
    *,
    today: date,
    progress: Progress | None = None,
) -> ImportResult:
    lookups = kpis.ReportLookups(session, actor)

    def check(row: Row) -> kpis.CheckedReport:
        if not row["org"]:
            # `/cro kpi report` takes the reporter's own organisation; a file names each one.
            raise UserError("The org is empty: name the organisation the value is for.")
        data: dict[str, object] = {
            "study": row["study"],
            "org": row["org"],
            "kpi": row["kpi"],
            "value": row["value"],  # as written: the one KPI value parser reads it
            "period": row["period"] or None,
            "note": row.get("note") or None,
        }
        return kpis.check_report(session, actor, data, today=today, lookups=lookups)

    # Progress: checking is the first half of the work, storing the second.
    checked = read_rows(
        file.text,
        REQUIRED,
        OPTIONAL,
        check,
        command_hint=kpis.REPORT_HINT,
        progress=(lambda done, total: progress(done // 2, total)) if progress else None,
    )
    stored = store(session, actor, checked, today=today, progress=progress)
    record_import(session, actor, file, stored)
    return ImportResult(len(checked), {c.study.code for c in checked})


# --- storing ------------------------------------------------------------------------------
Key = tuple[int, int, int, date]  # study, KPI, organisation, period start


@dataclass
class Stored:
    """A checked row as stored: its id, the row it corrects, its approval if it waits."""

    checked: kpis.CheckedReport
    key: Key
    row: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    approval_id: int | None = None


def _key(c: kpis.CheckedReport) -> Key:
    return (c.study.id, c.kpi.id, c.org_id, c.period.start)


def store(
    session: Session,
    actor: Actor,
    checked: Sequence[kpis.CheckedReport],
    *,
    today: date,
    progress: Progress | None = None,
) -> list[Stored]:
    """Store checked reports as `kpis.report` stores one, in bulk: each corrects the
    current value of its study, KPI, organisation and period (the earlier row, when the
    batch names that key twice); values that wait get their approval, the others are
    checked against the quality limits. No audit event: the caller records it."""
    out = [Stored(c, _key(c)) for c in checked]
    current = _current_values(session, {s.key for s in out})
    now = utcnow()
    done = 0
    for generation in _generations(out):
        for start in range(0, len(generation), CHUNK):
            chunk = [out[i] for i in generation[start : start + CHUNK]]
            olds: list[float | None] = []
            submitter = actor.label
            for s in chunk:
                c, before = s.checked, current.get(s.key)
                olds.append(before[1] if before else None)
                study_id, kpi_id, org_id, period_start = s.key  # no ORM attribute reads
                s.row = {
                    "study_id": study_id,
                    "org_id": org_id,
                    "kpi_id": kpi_id,
                    "period_start": period_start,
                    "period_label": c.period.label,
                    "value": c.value,
                    "note": c.note,
                    "submitted_by": submitter,
                    "submitted_at": now,
                    "approval_state": ApprovalState.PENDING if c.waits else ApprovalState.APPROVED,
                    "supersedes_id": before[0] if before else None,
                }
            ids = bulk.reserve_ids(session, KpiUpdate, len(chunk))
            for s, new_id in zip(chunk, ids, strict=True):
                s.id = s.row["id"] = new_id
                current[s.key] = (new_id, s.checked.value)
            bulk.insert_rows(session, KpiUpdate, [s.row for s in chunk])
            _request_approvals(session, actor, chunk, olds)
            done += len(chunk)
            if progress:
                progress((len(checked) + done) // 2, len(checked))
    approved = [(s.id, s.key[0], s.key[1]) for s in out if not s.checked.waits]
    qtl.check_many(session, approved, today)
    return out


def _generations(rows: Sequence[Stored]) -> list[list[int]]:
    """Row indexes by occurrence of their key: the first time a key is named, the second
    (a correction of the first), …; each generation is stored after the one before."""
    seen: dict[Key, int] = {}
    generations: list[list[int]] = []
    for i, s in enumerate(rows):
        n = seen[s.key] = seen.get(s.key, -1) + 1
        if n == len(generations):
            generations.append([])
        generations[n].append(i)
    return generations


def _current_values(session: Session, keys: set[Key]) -> dict[Key, tuple[int, float]]:
    """The current value (id, value) of each key that has one (`kpis.current_value_ids`),
    read once per study for the periods the file names."""
    out: dict[Key, tuple[int, float]] = {}
    by_study: dict[int, list[Key]] = {}
    for key in keys:
        by_study.setdefault(key[0], []).append(key)
    for study_id, study_keys in by_study.items():
        periods = sorted({k[3] for k in study_keys})
        ids = kpis.current_value_ids(
            KpiUpdate.study_id == study_id, KpiUpdate.period_start.in_(periods), per_kpi=True
        )
        rows = session.execute(
            select(
                KpiUpdate.id,
                KpiUpdate.kpi_id,
                KpiUpdate.org_id,
                KpiUpdate.period_start,
                KpiUpdate.value,
            ).where(KpiUpdate.id.in_(select(ids.c.id)))
        )
        wanted = set(study_keys)
        for row_id, kpi_id, org_id, start, value in rows:
            key = (study_id, kpi_id, org_id, start)
            if key in wanted:
                out[key] = (row_id, value)
    return out


def _request_approvals(
    session: Session, actor: Actor, chunk: list[Stored], olds: list[float | None]
) -> None:
    waiting = [(s, old) for s, old in zip(chunk, olds, strict=True) if s.checked.waits]
    ids = approvals.request_many(
        session,
        actor,
        [
            approvals.Requested(
                SubjectType.KPI_UPDATE,
                s.id,
                s.checked.study.id,
                s.checked.org_id,
                kpis.approval_summary(s.checked, old),
            )
            for s, old in waiting
        ],
    )
    for (s, _), approval_id in zip(waiting, ids, strict=True):
        s.approval_id = approval_id


# --- the audit event -------------------------------------------------------------------
DIGEST_FIELDS = (
    "id",
    "study_id",
    "org_id",
    "kpi_id",
    "period_start",
    "period_label",
    "value",
    "note",
    "submitted_by",
    "supersedes_id",
)


_digest_cells = itemgetter(*DIGEST_FIELDS)


def rows_digest(rows: Iterable[Sequence[Any]]) -> str:
    """SHA-256 of rows of `DIGEST_FIELDS`, in id order, as one canonical JSON array (dates
    in ISO form, floats as Python writes them: the same on every backend)."""
    canonical = json.dumps(list(rows), default=_iso, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in an imported row")


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """[[first, last], …] of consecutive runs, ascending."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def record_import(session: Session, actor: Actor, file: CsvFile, stored: list[Stored]) -> None:
    by_study: dict[int, list[Stored]] = {}
    for s in stored:
        by_study.setdefault(s.key[0], []).append(s)
    for study_id, rows in sorted(by_study.items()):
        rows.sort(key=lambda s: s.id)
        approval_ids = [s.approval_id for s in rows if s.approval_id is not None]
        audit.record(
            session,
            actor,
            IMPORTED,
            "kpi_import",
            file.sha256[:16],
            study_id=study_id,
            after={
                "file": file.name,
                "sha256": file.sha256,
                "study": rows[0].checked.study.code,
                "rows": len(rows),
                "file_rows": len(stored),
                "kpi_updates": id_ranges(s.id for s in rows),
                "corrections": sum(s.row["supersedes_id"] is not None for s in rows),
                "waiting": len(approval_ids),
                "approvals": id_ranges(approval_ids),
                "rows_sha256": rows_digest(map(_digest_cells, (s.row for s in rows))),
            },
        )


def verify_imports(session: Session) -> list[str]:
    """Every import whose stored rows no longer match its event (changed, added to its
    id ranges, or deleted); empty when all do."""
    problems = []
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == IMPORTED).order_by(AuditEvent.seq)
    )
    columns = [getattr(KpiUpdate, f) for f in DIGEST_FIELDS]
    for ev in events:
        after = ev.after or {}
        ranges = [r for r in after.get("kpi_updates", []) if isinstance(r, list) and len(r) == 2]
        rows: list[Sequence[Any]] = []
        for start in range(0, len(ranges), 200):
            where: ColumnElement[bool] = or_(
                *(
                    and_(KpiUpdate.id >= a, KpiUpdate.id <= b)
                    for a, b in ranges[start : start + 200]
                )
            )
            found = session.execute(select(*columns).where(where).order_by(KpiUpdate.id))
            rows += [tuple(r) for r in found]
        rows.sort(key=lambda r: r[0])
        if len(rows) != after.get("rows") or rows_digest(rows) != after.get("rows_sha256"):
            problems.append(
                f"kpi import event #{ev.seq} ({after.get('file')}, {after.get('study')}): "
                f"its {after.get('rows')} row(s) are not as imported ({len(rows)} found)"
            )
    return problems


# --- reading the file -------------------------------------------------------------------
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
    """Check the header, pass every row to `store` (which checks it, and may store it in
    a savepoint of its own, so that a failing row leaves nothing behind), and refuse the
    whole file, naming each bad row's line, if any row failed; the caller's transaction
    then rolls back. What `store` returned, per row. `command_hint` is the slash command's
    "write it as …", no help for a file."""
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
