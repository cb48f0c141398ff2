"""Fill a database with a realistic, deterministic clinical portfolio for the benchmarks.

    python -m benchmarks.generate --url sqlite:///bench.db --kpi-rows 1000000 --fresh
    python -m benchmarks.generate --url postgresql+psycopg://postgres@127.0.0.1/test_bench \
        --kpi-rows 1000000 --fresh

Default shape: 50 studies, 200 organisations (10 sponsors, 190 CROs/CMOs/labs), about
1,240 people (approvers, sponsor members, an admin per sponsor, vendor members), 8 vendors
per study, 1,000 linked channels (sponsor, joint, vendor:X and joint:X), 50k milestones,
100k action items and N KPI updates: one value per study, organisation, KPI and ISO week
going back as many weeks as N needs (about 3.6 years for 1M), with about one correction in
five (a later row that supersedes, as `kpi report` writes them) and pending vendor values
(with their Approval rows) in the last two weeks.

Rows go in with bulk inserts: SQLAlchemy Core `insert()` with executemany on SQLite,
`COPY ... FROM STDIN` on PostgreSQL. Ids are assigned here (so corrections can point at
the row they supersede); PostgreSQL sequences are moved past them afterwards.

Audit trail: the bulk load bypasses the services, so it writes no per-row audit events.
Instead the audit chain starts *after* the load, with one `bench.bulk_load` event (who,
seed, row counts) appended through `services.audit.record`; the head row then matches that
event, `audit.verify` passes, and every later write by the app extends the chain normally.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from benchmarks.common import (
    TEAM,
    TODAY,
    channel_id,
    redact,
    study_code,
    user_id,
)
from crobot.services import audit
from crobot.services.actor import SYSTEM
from crobot.services.kpi_catalog import SHIPPED, iso_week_label, seed_definitions
from crobot.storage.db import Database, normalise_url
from crobot.storage.migrate import upgrade
from crobot.storage.models import (
    ActionItem,
    Approval,
    ChannelLink,
    KpiDefinition,
    KpiUpdate,
    Milestone,
    Organization,
    Person,
    Study,
    StudyVendor,
)

BATCH = 20_000
T0 = datetime(2023, 1, 2, 9, 0, tzinfo=UTC)  # created_at of the directory rows
VENDOR_KINDS = ("cro", "cmo", "lab", "cro", "other")
ZONES = (
    "America/New_York",
    "Europe/Dublin",
    "Europe/Berlin",
    "Asia/Kolkata",
    "America/Chicago",
    "Asia/Tokyo",
    "UTC",
)
MILESTONE_NAMES = (
    "Protocol final",
    "First site activated",
    "First patient in",
    "Site activation wave",
    "Lab kit shipment",
    "Batch release",
    "Interim analysis",
    "Last patient in",
    "Last patient last visit",
    "Database lock",
    "Topline results",
    "CSR final",
)
ACTION_TITLES = (
    "Resolve open data queries",
    "Send monitoring visit report",
    "Confirm kit resupply",
    "Update enrolment forecast",
    "Close protocol deviation",
    "Review CAPA plan",
    "Chase site contract",
    "Upload lab certificates",
)
# Plausible (low, high) per shipped KPI; integers are drawn as integers.
KPI_RANGES: dict[str, tuple[float, float]] = {
    "enrollment": (0, 25),
    "screen_failure_rate": (5, 45),
    "site_activation": (0, 60),
    "query_aging": (2, 30),
    "protocol_deviations": (0, 6),
    "compliance_rate": (85, 100),
    "cost_of_quality": (0, 50),
    "supplier_performance": (2.5, 5),
    "data_entry_timeliness": (1, 10),
    "customer_satisfaction": (2.5, 5),
}


@dataclass
class Shape:
    studies: int = 50
    orgs: int = 200
    kpi_rows: int = 1_000_000
    milestones: int = 50_000
    actions: int = 100_000
    channels: int = 1_000
    vendors_per_study: int = 8

    @property
    def sponsors(self) -> int:
        return max(1, self.orgs // 20)


@dataclass
class Portfolio:
    """What later tables need to know about the directory rows already written."""

    sponsor_of: dict[int, int] = field(default_factory=dict)  # study id -> sponsor org id
    vendors_of: dict[int, list[int]] = field(default_factory=dict)  # study id -> vendor ids
    people_of: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # org -> users
    milestones_of: dict[int, list[int]] = field(default_factory=dict)
    kpi_ids: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


# --- writing ----------------------------------------------------------------------------
def _batches(rows: Iterable[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def bulk_insert(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Insert rows in batches: COPY on PostgreSQL, Core executemany elsewhere."""
    n = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        for batch in _batches(rows):
            cols = list(batch[0])
            sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
            with raw.cursor() as cur, cur.copy(sql) as copy:
                for row in batch:
                    copy.write_row([_copy_value(row[c]) for c in cols])
            n += len(batch)
        return n
    for batch in _batches(rows):
        conn.execute(insert(table), batch)
        n += len(batch)
    return n


def timed_insert(
    conn: Connection, pf: Portfolio, model: Any, rows: Iterable[dict[str, Any]]
) -> None:
    table: Table = model.__table__
    started = time.perf_counter()
    n = bulk_insert(conn, table, rows)
    took = time.perf_counter() - started
    pf.counts[table.name] = n
    pf.seconds[table.name] = took
    rate = n / took if took > 0 else float("inf")
    print(f"  {table.name:<16} {n:>10,} rows in {took:7.2f} s  ({rate:,.0f} rows/s)", flush=True)


# --- the portfolio ------------------------------------------------------------------------
def organizations(shape: Shape) -> list[dict[str, Any]]:
    rows = []
    for i in range(shape.orgs):
        if i < shape.sponsors:
            name, kind = f"Sponsor {i + 1:02d} Pharma", "sponsor"
        else:
            kind = VENDOR_KINDS[i % len(VENDOR_KINDS)]
            name = f"Vendor {i + 1:03d} {kind.upper()}"
        rows.append(
            {"id": i + 1, "name": name, "kind": kind, "slack_team_id": None, "created_at": T0}
        )
    return rows


def people(shape: Shape, pf: Portfolio) -> list[dict[str, Any]]:
    rows = []
    pid = 0
    for i in range(shape.orgs):
        org_id = i + 1
        sponsor = i < shape.sponsors
        for n in range(10 if sponsor else 6):
            if sponsor:
                role = "sponsor_approver" if n < 2 else ("admin" if n == 2 else "sponsor_member")
            else:
                role = "vendor_member"
            uid = user_id(i, n)
            pid += 1
            rows.append(
                {
                    "id": pid,
                    "team_id": TEAM,
                    "slack_user_id": uid,
                    "display_name": f"Person {uid}",
                    "org_id": org_id,
                    "role": role,
                    "timezone": ZONES[(i + n) % len(ZONES)],
                    "created_at": T0,
                }
            )
            pf.people_of.setdefault(org_id, []).append((uid, org_id))
    return rows


def studies(
    shape: Shape, rng: random.Random, pf: Portfolio
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    study_rows: list[dict[str, Any]] = []
    vendor_rows: list[dict[str, Any]] = []
    vendor_ids = list(range(shape.sponsors + 1, shape.orgs + 1))
    k = min(shape.vendors_per_study, len(vendor_ids))
    for s in range(shape.studies):
        sid = s + 1
        sponsor = s % shape.sponsors + 1
        pf.sponsor_of[sid] = sponsor
        vendors = sorted(rng.sample(vendor_ids, k))
        pf.vendors_of[sid] = vendors
        study_rows.append(
            {
                "id": sid,
                "code": study_code(s),
                "title": f"Phase {1 + s % 3} study {s + 1} in indication {s % 7 + 1}",
                "sponsor_org_id": sponsor,
                "phase": str(1 + s % 3),
                "status": "active",
                "created_at": T0,
            }
        )
        for v in vendors:
            vendor_rows.append(
                {"id": len(vendor_rows) + 1, "study_id": sid, "org_id": v, "scope": "services"}
            )
    return study_rows, vendor_rows


def channel_links(shape: Shape, pf: Portfolio) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for s in range(shape.studies):
        sid = s + 1
        per_study = _spread(shape.channels, shape.studies, s)
        plan: list[tuple[str, int | None]] = [("sponsor", None), ("joint", None)]
        for v in pf.vendors_of[sid]:
            plan += [("vendor", v), ("joint", v)]
        while len(plan) < per_study:
            plan.append(("sponsor", None) if len(plan) % 2 else ("joint", None))
        for n, (audience, org) in enumerate(plan[:per_study]):
            rows.append(
                {
                    "id": len(rows) + 1,
                    "team_id": TEAM,
                    "channel_id": channel_id(s, n),
                    "study_id": sid,
                    "audience": audience,
                    "audience_org_id": org,
                    "timezone": ZONES[(s + n) % len(ZONES)],
                    "digest_enabled": True,
                    "digest_days": "mon",
                    "digest_time": f"{8 + n % 3:02d}:00",
                    "charts_enabled": True,
                    "created_at": T0,
                }
            )
    return rows


def _kpi_value(rng: random.Random, key: str, integer: bool) -> float:
    low, high = KPI_RANGES.get(key, (0, 100))
    return float(rng.randint(int(low), int(high))) if integer else round(rng.uniform(low, high), 2)


def kpi_updates(
    shape: Shape, rng: random.Random, pf: Portfolio, approvals: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Week by week across every series, so ids follow submission order as in real life."""
    integer = {spec.key: spec.integer for spec in SHIPPED}
    series = [
        (sid, org, key, pf.kpi_ids[key], org == pf.sponsor_of[sid])
        for sid in range(1, shape.studies + 1)
        for org in [pf.sponsor_of[sid], *pf.vendors_of[sid]]
        for key in pf.kpi_ids
    ]
    weeks = max(2, math.ceil(shape.kpi_rows / (len(series) * 1.2)))
    this_monday = TODAY - timedelta(days=TODAY.weekday())
    first_monday = this_monday - timedelta(weeks=weeks - 1)
    next_id = 1
    for w in range(weeks):
        monday = first_monday + timedelta(weeks=w)
        label = iso_week_label(monday)
        recent = w >= weeks - 2
        for sid, org, key, kpi_id, sponsor_row in series:
            submitted = datetime(monday.year, monday.month, monday.day, tzinfo=UTC) + timedelta(
                days=4, hours=rng.randint(8, 18), minutes=rng.randint(0, 59)
            )
            previous: int | None = None
            for correction in (False, True):
                if next_id > shape.kpi_rows:
                    return
                if correction and rng.random() >= 0.2:
                    break
                if sponsor_row:
                    state = "approved"
                elif recent and rng.random() < 0.3:
                    state = "pending"
                else:
                    state = "rejected" if rng.random() < 0.02 else "approved"
                row_id = next_id
                next_id += 1
                yield {
                    "id": row_id,
                    "study_id": sid,
                    "org_id": org,
                    "kpi_id": kpi_id,
                    "period_start": monday,
                    "period_label": label,
                    "value": _kpi_value(rng, key, integer[key]),
                    "note": "corrected after source data verification" if correction else None,
                    "submitted_by": f"{TEAM}:{pf.people_of[org][-1][0]}",
                    "submitted_at": submitted + (timedelta(days=1) if correction else timedelta()),
                    "approval_state": state,
                    "supersedes_id": previous,
                }
                if state == "pending":
                    approvals.append(
                        {
                            "subject_type": "kpi_update",
                            "subject_id": row_id,
                            "study_id": sid,
                            "org_id": org,
                            "summary": {
                                "kind": "kpi",
                                "study": study_code(sid - 1),
                                "kpi": key,
                                "period": label,
                            },
                            "requested_by": f"{TEAM}:{pf.people_of[org][-1][0]}",
                            "requested_at": submitted,
                            "state": "pending",
                        }
                    )
                previous = row_id


def _spread(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def milestones(
    shape: Shape, rng: random.Random, pf: Portfolio, approvals: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    mid = 0
    for s in range(shape.studies):
        sid = s + 1
        orgs = [pf.sponsor_of[sid], *pf.vendors_of[sid]]
        for n in range(_spread(shape.milestones, shape.studies, s)):
            mid += 1
            pf.milestones_of.setdefault(sid, []).append(mid)
            planned = TODAY + timedelta(days=rng.randint(-1100, 700))
            roll = rng.random()
            forecast = actual = None
            if planned < TODAY - timedelta(days=30):
                status = (
                    "approved"
                    if roll < 0.85
                    else "cancelled"
                    if roll < 0.9
                    else "at_risk"
                    if roll < 0.95
                    else "planned"
                )
            elif planned < TODAY:
                status = (
                    "done"
                    if roll < 0.1
                    else "approved"
                    if roll < 0.6
                    else "at_risk"
                    if roll < 0.8
                    else "planned"
                )
            else:
                status = "planned" if roll < 0.8 else "at_risk"
            if status in ("approved", "done"):
                actual = min(TODAY, planned + timedelta(days=rng.randint(-10, 30)))
            elif status == "at_risk":
                forecast = planned + timedelta(days=rng.randint(7, 90))
            org = None if rng.random() < 0.2 else rng.choice(orgs)
            created = T0 + timedelta(days=rng.randint(0, 300))
            if status == "done":
                approvals.append(
                    {
                        "subject_type": "milestone",
                        "subject_id": mid,
                        "study_id": sid,
                        "org_id": org or pf.sponsor_of[sid],
                        "summary": {"kind": "milestone", "study": study_code(s), "id": mid},
                        "requested_by": f"{TEAM}:{user_id((org or 1) - 1, 0)}",
                        "requested_at": datetime.combine(
                            actual or TODAY, datetime.min.time(), tzinfo=UTC
                        ),
                        "state": "pending",
                    }
                )
            yield {
                "id": mid,
                "study_id": sid,
                "org_id": org,
                "name": f"{MILESTONE_NAMES[n % len(MILESTONE_NAMES)]} #{n // 12 + 1}",
                "planned_date": planned,
                "forecast_date": forecast,
                "actual_date": actual,
                "status": status,
                "shared": org is None or rng.random() < 0.1,
                "created_by": f"{TEAM}:{user_id(pf.sponsor_of[sid] - 1, 0)}",
                "created_at": created,
                "updated_at": created,
            }


def action_items(shape: Shape, rng: random.Random, pf: Portfolio) -> Iterator[dict[str, Any]]:
    aid = 0
    for s in range(shape.studies):
        sid = s + 1
        owners = [p for org in [pf.sponsor_of[sid], *pf.vendors_of[sid]] for p in pf.people_of[org]]
        ms = pf.milestones_of.get(sid, [])
        for _ in range(_spread(shape.actions, shape.studies, s)):
            aid += 1
            owner, owner_org = rng.choice(owners)
            due = TODAY + timedelta(days=rng.randint(-400, 120))
            roll = rng.random()
            if due < TODAY - timedelta(days=60):
                status = "done" if roll < 0.9 else "cancelled" if roll < 0.95 else "open"
            elif due < TODAY:
                status = "open" if roll < 0.4 else "done" if roll < 0.95 else "cancelled"
            else:
                status = "open" if roll < 0.85 else "done"
            created = datetime.combine(
                due - timedelta(days=rng.randint(7, 60)), datetime.min.time(), tzinfo=UTC
            )
            yield {
                "id": aid,
                "study_id": sid,
                "title": ACTION_TITLES[aid % len(ACTION_TITLES)],
                "owner_team_id": TEAM,
                "owner_user_id": owner,
                "owner_org_id": owner_org,
                "due_date": due,
                "priority": rng.choice(("low", "normal", "normal", "normal", "high")),
                "status": status,
                "milestone_id": rng.choice(ms) if ms and rng.random() < 0.3 else None,
                "shared": rng.random() < 0.1,
                "created_by": f"{TEAM}:{owner}",
                "created_at": created,
                "completed_at": created + timedelta(days=3) if status == "done" else None,
            }


# --- orchestration --------------------------------------------------------------------------
def reset_database(url: str) -> None:
    parsed = make_url(normalise_url(url))
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _is_superuser(conn: Connection) -> bool:
    return bool(conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")))


def generate(url: str, shape: Shape, *, seed: int = 42, analyze: bool = True) -> Portfolio:
    rng = random.Random(seed)
    upgrade(url)
    db = Database(url)
    pf = Portfolio()
    with db.write() as s:
        if s.scalar(select(func.count()).select_from(Study)):
            raise SystemExit("the database already holds studies: pass --fresh to start over")
        seed_definitions(s)
        # Ordered by id: the rng draws follow this order, so the data must not depend on
        # the backend's row order.
        keys = s.execute(select(KpiDefinition.key, KpiDefinition.id).order_by(KpiDefinition.id))
        pf.kpi_ids = {str(k): int(i) for k, i in keys}
    approvals: list[dict[str, Any]] = []
    started = time.perf_counter()
    engine = db.engine
    with engine.begin() as conn:
        if not db.is_sqlite and _is_superuser(conn):
            # The rows are consistent by construction; skipping per-row foreign-key
            # triggers for this one transaction makes COPY several times faster.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        timed_insert(conn, pf, Organization, organizations(shape))
        timed_insert(conn, pf, Person, people(shape, pf))
        study_rows, vendor_rows = studies(shape, rng, pf)
        timed_insert(conn, pf, Study, study_rows)
        timed_insert(conn, pf, StudyVendor, vendor_rows)
        timed_insert(conn, pf, ChannelLink, channel_links(shape, pf))
        timed_insert(conn, pf, Milestone, milestones(shape, rng, pf, approvals))
        timed_insert(conn, pf, ActionItem, action_items(shape, rng, pf))
        timed_insert(conn, pf, KpiUpdate, kpi_updates(shape, rng, pf, approvals))
        for i, row in enumerate(approvals, start=1):
            row["id"] = i
        timed_insert(conn, pf, Approval, approvals)
        if not db.is_sqlite:
            for name in pf.counts:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"COALESCE((SELECT max(id) FROM {name}), 1))"
                    )
                )
    total = sum(pf.counts.values())
    took = time.perf_counter() - started
    print(f"  {'total':<16} {total:>10,} rows in {took:7.2f} s  ({total / took:,.0f} rows/s)")
    if analyze:
        t = time.perf_counter()
        if db.is_sqlite:
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
            print(f"  ANALYZE in {time.perf_counter() - t:.2f} s")
        else:
            # What autovacuum would do soon after a load: statistics and the visibility
            # map (without it PostgreSQL cannot use index-only scans).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            print(f"  VACUUM ANALYZE in {time.perf_counter() - t:.2f} s")
    with db.write() as s:
        audit.record(
            s,
            SYSTEM,
            "bench.bulk_load",
            "database",
            None,
            after={"seed": seed, "rows": dict(pf.counts), "generator": "benchmarks/generate.py"},
        )
    with db.read() as s:
        result = audit.verify(s)
    print(f"  audit chain: {result.describe()} (starts after the bulk load)")
    db.dispose()
    return pf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True, help="SQLAlchemy URL (sqlite:///file.db or postgresql)")
    p.add_argument("--kpi-rows", type=int, default=1_000_000)
    p.add_argument("--studies", type=int, default=50)
    p.add_argument("--orgs", type=int, default=200)
    p.add_argument("--milestones", type=int, default=50_000)
    p.add_argument("--actions", type=int, default=100_000)
    p.add_argument("--channels", type=int, default=1_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fresh", action="store_true", help="delete the SQLite file / PG schema first")
    p.add_argument("--no-analyze", action="store_true", help="skip ANALYZE after the load")
    args = p.parse_args(argv)
    shape = Shape(
        studies=args.studies,
        orgs=args.orgs,
        kpi_rows=args.kpi_rows,
        milestones=args.milestones,
        actions=args.actions,
        channels=args.channels,
    )
    if shape.orgs < shape.sponsors + 1 or shape.studies < 1:
        p.error("need at least one study and two organisations")
    print(f"generate: {redact(normalise_url(args.url))} seed {args.seed} {shape}")
    if args.fresh:
        reset_database(args.url)
    generate(args.url, shape, seed=args.seed, analyze=not args.no_analyze)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
