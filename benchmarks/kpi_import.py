"""CSV import rate: `crobot kpi import`'s service against a raw insert of the same rows.

    python -m benchmarks.kpi_import --url sqlite:///bench.db [--rows 10000,100000] \
        [--workloads approver,operator] [--repeat 3]

Two workloads over the generated portfolio (benchmarks/generate.py), each a CSV file of
`--rows` values, week after week up to 2020-W01 (no value there yet), one row in ten
correcting a value of the last eight weeks (a stored value):

- approver: the values of the first sponsor's own organisation on its studies, imported
  by its sponsor approver (`--as U001P00`): approved at once, so a row stores one value
  (and is checked against the study's quality limits);
- operator: every organisation of every study, imported by the CLI operator: every value
  waits for an approver, so a row stores the value, its approval and one Approve/Reject
  post per sponsor channel of the study (two in the generated portfolio).

The import (`services.kpi_import.import_csv`: every row checked as `/cro kpi report`
checks it, then stored in bulk, the audit events appended) runs in one transaction,
which is rolled back: the database is left as it was.

Interleaved with it, also rolled back: the generator's rate (`generate.kpi_updates` builds
as many KPI rows, `generate.bulk_insert` inserts them: Core executemany on SQLite, COPY on
PostgreSQL), and a raw insert of exactly the rows the import wrote (values, approvals,
outbox rows; prepared beforehand, so Python builds nothing). Targets (issue 18): at least
10,000 rows/s, and at least half the generator's rate. Prints the median of `--repeat`
runs of each.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from benchmarks.common import TEAM, TODAY, machine_line, redact, user_id
from benchmarks.generate import KPI_RANGES, Portfolio, Shape, bulk_insert, kpi_updates
from crobot.bot.cli.context import CLI_ACTOR, acting_as
from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.kpi_catalog import SHIPPED, iso_week_label
from crobot.services.kpi_import import CsvFile, import_csv
from crobot.storage.db import Database
from crobot.storage.models import (
    Approval,
    Base,
    DigestRun,
    KpiDefinition,
    KpiUpdate,
    Organization,
    Person,
    Study,
    StudyVendor,
)

LAST_NEW_WEEK = date(2019, 12, 30)  # 2020-W01: new values end there, before generated ones
WRITTEN = (KpiUpdate, Approval, DigestRun)  # what an import inserts, in this order
APPROVER = f"{TEAM}:{user_id(0, 0)}"  # the first sponsor's first approver


class _Rollback(Exception):
    """Leave the database as it was."""


@dataclass(frozen=True)
class Series:
    study: str
    org: str
    kpi: str
    integer: bool


def portfolio(db: Database, *, sponsor_only: bool) -> list[Series]:
    """Every (study, organisation, KPI); `sponsor_only`: the first sponsor's own values."""
    integer = {spec.key: spec.integer for spec in SHIPPED}
    with db.read() as s:
        kpis = list(s.scalars(select(KpiDefinition.key).order_by(KpiDefinition.id)))
        first_sponsor = s.scalar(select(func.min(Study.sponsor_org_id)))
        out = []
        for study in s.scalars(select(Study).order_by(Study.id)):
            if sponsor_only and study.sponsor_org_id != first_sponsor:
                continue
            org_ids = [study.sponsor_org_id]
            if not sponsor_only:
                vendors = select(StudyVendor.org_id).where(StudyVendor.study_id == study.id)
                org_ids += list(s.scalars(vendors.order_by(StudyVendor.org_id)))
            names = {
                o.id: o.name
                for o in s.scalars(select(Organization).where(Organization.id.in_(org_ids)))
            }
            out += [
                Series(study.code, names[o], k, integer.get(k, False))
                for o in org_ids
                for k in kpis
            ]
    if not out:
        raise SystemExit("no studies: run benchmarks.generate first")
    return out


def csv_text(series: list[Series], rows: int, rng: random.Random) -> str:
    """`rows` data rows: new weeks for every series in turn (up to 2020-W01), one row in
    ten a correction of one of the last eight weeks."""
    lines = ["study,org,kpi,period,value,note"]
    this_monday = TODAY - timedelta(days=TODAY.weekday())
    first = LAST_NEW_WEEK - timedelta(weeks=rows // len(series))
    week = 0
    while len(lines) <= rows:
        monday = first + timedelta(weeks=week)
        for sr in series:
            if len(lines) > rows:
                break
            if rng.random() < 0.1:
                when = this_monday - timedelta(weeks=rng.randint(0, 7))
                note = "corrected after source data verification"
            else:
                when, note = monday, ""
            low, high = KPI_RANGES.get(sr.kpi, (0, 100))
            value = (
                str(rng.randint(int(low), int(high)))
                if sr.integer
                else f"{rng.uniform(low, high):.2f}"
            )
            lines.append(f"{sr.study},{sr.org},{sr.kpi},{iso_week_label(when)},{value},{note}")
        week += 1
    return "\n".join(lines) + "\n"


def _rolled_back(db: Database, work: Callable[[Session], None]) -> float:
    started = time.perf_counter()
    try:
        with db.write() as s:
            work(s)
            raise _Rollback
    except _Rollback:
        pass
    return time.perf_counter() - started


def _actor(s: Session, as_person: str | None) -> Actor:
    return acting_as(s, as_person) if as_person else CLI_ACTOR


def time_import(db: Database, file: CsvFile, as_person: str | None) -> float:
    def run(s: Session) -> None:
        import_csv(s, _actor(s, as_person), file, today=TODAY)
        audit.seal(s)  # the commit's append, measured too (the transaction is rolled back)

    return _rolled_back(db, run)


Written = dict[type[Base], list[dict[str, Any]]]


def written_rows(db: Database, file: CsvFile, as_person: str | None) -> Written:
    """The rows the import inserts for `file`, by table, as the generator would write them."""
    out: Written = {}

    def run(s: Session) -> None:
        last = {m: s.scalar(select(func.max(m.id))) or 0 for m in WRITTEN}
        import_csv(s, _actor(s, as_person), file, today=TODAY)
        for model in WRITTEN:
            table: Table = model.__table__  # type: ignore[assignment]
            # With their ids: a correction names the row it supersedes by id.
            new = s.execute(select(table).where(table.c.id > last[model]).order_by(table.c.id))
            out[model] = [
                {k: v.value if isinstance(v, Enum) else v for k, v in r._mapping.items()}
                for r in new
            ]

    _rolled_back(db, run)
    return out


def time_floor(db: Database, written: Written) -> float:
    started = time.perf_counter()
    with db.engine.connect() as conn:
        with conn.begin() as tx:
            for model, rows in written.items():
                if rows:
                    bulk_insert(conn, model.__table__, rows)  # type: ignore[arg-type]
            tx.rollback()
    return time.perf_counter() - started


def generator_portfolio(db: Database) -> tuple[Shape, Portfolio]:
    """What `generate.kpi_updates` needs to know of the generated directory."""
    pf = Portfolio()
    with db.read() as s:
        studies = list(s.scalars(select(Study).order_by(Study.id)))
        for study in studies:
            pf.sponsor_of[study.id] = study.sponsor_org_id
            vendors = select(StudyVendor.org_id).where(StudyVendor.study_id == study.id)
            pf.vendors_of[study.id] = list(s.scalars(vendors.order_by(StudyVendor.org_id)))
        for uid, org_id in s.execute(
            select(Person.slack_user_id, Person.org_id).order_by(Person.id)
        ):
            pf.people_of.setdefault(org_id, []).append((uid, org_id))
        keys = s.execute(select(KpiDefinition.key, KpiDefinition.id).order_by(KpiDefinition.id))
        pf.kpi_ids = {str(k): int(i) for k, i in keys}
    return Shape(studies=len(studies)), pf


def time_generator(db: Database, shape: Shape, pf: Portfolio, n: int) -> float:
    """The generator's own rate: `n` KPI rows built (as `generate.py` builds them) and
    inserted, rolled back; ids moved past the table's."""
    table: Table = KpiUpdate.__table__  # type: ignore[assignment]
    started = time.perf_counter()
    with db.engine.connect() as conn:
        with conn.begin() as tx:
            offset = conn.scalar(select(func.max(table.c.id))) or 0
            rows = kpi_updates(replace(shape, kpi_rows=n), random.Random(1), pf, [])
            bulk_insert(conn, table, (_moved(r, offset) for r in rows))
            tx.rollback()
    return time.perf_counter() - started


def _moved(row: dict[str, Any], offset: int) -> dict[str, Any]:
    old = row["supersedes_id"]
    return {**row, "id": row["id"] + offset, "supersedes_id": old + offset if old else None}


WORKLOADS = {
    # name: (the first sponsor's own values only?, import as)
    "approver": (True, APPROVER),
    "operator": (False, None),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="database URL (generated by generate.py)")
    p.add_argument("--rows", default="10000,100000", help="file sizes, comma-separated")
    p.add_argument("--workloads", default="approver,operator", help="approver and/or operator")
    p.add_argument("--repeat", type=int, default=3, help="runs of each, medians printed")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.rows.split(",")]
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if unknown := set(names) - set(WORKLOADS):
        p.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    db = Database(args.url)
    print(machine_line())
    print(f"kpi_import: {redact(args.url)}  sizes {sizes}, {args.repeat} runs each (medians)")
    shape, pf = generator_portfolio(db)
    for name in names:
        sponsor_only, as_person = WORKLOADS[name]
        series = portfolio(db, sponsor_only=sponsor_only)
        rng = random.Random(args.seed)
        print(f"{name}: {len(series)} series, imported as {as_person or 'the CLI operator'}")
        for size in sizes:
            file = CsvFile.of(f"bench-{size}.csv", csv_text(series, size, rng).encode())
            written = written_rows(db, file, as_person)
            per_row = sum(len(r) for r in written.values()) / size
            imports, floors, gens = [], [], []
            for _ in range(args.repeat):  # interleaved: the same load for each
                imports.append(time_import(db, file, as_person))
                floors.append(time_floor(db, written))
                gens.append(time_generator(db, shape, pf, size))
            rate = size / statistics.median(imports)
            floor_rate = size / statistics.median(floors)
            gen_rate = size / statistics.median(gens)
            ok = rate >= 10_000 and rate / gen_rate >= 0.5
            print(
                f"  {size:>7,} rows, {per_row:.1f} table rows each: import {rate:7,.0f} rows/s;"
                f" generator {gen_rate:7,.0f} rows/s, import/generator {rate / gen_rate:4.2f};"
                f" raw insert of the same rows {floor_rate:7,.0f} rows/s,"
                f" import/raw {rate / floor_rate:4.2f}"
                f"  (target >= 10,000 rows/s and >= 0.50 of the generator:"
                f" {'OK' if ok else 'MISSED'})",
                flush=True,
            )
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
