"""KPI queries at scale: the service calls behind `kpi show` / `kpi trend` vs the SQL floor.

    python -m benchmarks.kpi_query --url sqlite:///bench.db [--iterations 300]

For random (study, KPI, audience) picks — sponsor, vendor:X and joint audiences — it times

- service `kpi show`: `services.kpis.series(session, audience, kpi, since=8 weeks ago)` in a
  fresh read session, as a handler calls it;
- service `kpi trend`: the same series (over `--trend-weeks`) + `services.kpis.trend_of`;
- the floor: one hand-written SQL statement giving the same answer, run on a raw DBAPI
  cursor of an already open connection (no SQLAlchemy, no ORM, no pool checkout);
- in between, for the breakdown: the floor's SQL through SQLAlchemy Core `text()` on a
  pooled connection (what any SQLAlchemy code pays before the ORM).

Service and floor calls are interleaved (same picks, same cache state) and their answers
are compared, so a fast but wrong floor or service fails the run. Target: ratio
service/floor <= 1.5 at p50 and p99.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, text

from benchmarks.common import TODAY, Summary, machine_line, ratio, redact
from crobot.services import kpis
from crobot.services.lookup import vendor_org_ids
from crobot.services.visibility import Audience, Scope
from crobot.storage.db import Database
from crobot.storage.models import KpiDefinition, Study

# The current value (the newest visible row not rejected) per (org, period): the same rule
# as services.kpis.series.
SHOW_SQL = """
SELECT k.org_id, o.name, k.period_start, k.period_label, k.value, k.approval_state, k.note
FROM kpi_updates k JOIN organizations o ON o.id = k.org_id
WHERE k.id IN (
    SELECT max(id) FROM kpi_updates
    WHERE study_id = :study AND kpi_id = :kpi AND period_start >= :since
      AND approval_state <> 'rejected' {extra}
    GROUP BY org_id, period_start)
ORDER BY k.period_start, o.name
"""

# Latest and previous period per organisation in one statement (window function).
TREND_SQL = """
WITH cur AS (
    SELECT max(id) AS id FROM kpi_updates
    WHERE study_id = :study AND kpi_id = :kpi AND period_start >= :since
      AND approval_state <> 'rejected' {extra}
    GROUP BY org_id, period_start
), ranked AS (
    SELECT o.name AS name, k.value AS value,
           ROW_NUMBER() OVER (PARTITION BY k.org_id ORDER BY k.period_start DESC) AS rn
    FROM cur JOIN kpi_updates k ON k.id = cur.id JOIN organizations o ON o.id = k.org_id
)
SELECT name, MAX(CASE WHEN rn = 1 THEN value END), MAX(CASE WHEN rn = 2 THEN value END)
FROM ranked WHERE rn <= 2 GROUP BY name ORDER BY name
"""


@dataclass(frozen=True)
class Pick:
    audience: Audience
    kpi: KpiDefinition
    since: date


def audience_sql(aud: Audience) -> tuple[str, dict[str, Any]]:
    """The WHERE fragment services.visibility.kpi_filter builds, written by hand."""
    if aud.scope == Scope.SPONSOR:
        return "", {}
    if aud.scope == Scope.VENDOR:
        return "AND org_id = :org", {"org": aud.org_id}
    if aud.scope == Scope.JOINT and aud.org_id is None:
        return "AND approval_state = 'approved' AND org_id = :sponsor", {
            "sponsor": aud.sponsor_org_id
        }
    if aud.scope == Scope.JOINT:
        return (
            "AND approval_state = 'approved' AND org_id IN (:org, :sponsor)",
            {"org": aud.org_id, "sponsor": aud.sponsor_org_id},
        )
    raise ValueError(f"no floor for {aud.scope}")


class Floor:
    """Hand-written SQL on a raw DBAPI connection held open for the whole run."""

    def __init__(self, db: Database) -> None:
        self.sqlite = db.is_sqlite
        self._conn = db.engine.raw_connection()
        self.raw: Any = self._conn.driver_connection

    def run(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if not self.sqlite:
            sql = re.sub(r":(\w+)", r"%(\1)s", sql)
        cur = self.raw.cursor()
        try:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
        finally:
            cur.close()
        if not self.sqlite:
            self.raw.rollback()  # end the implicit read transaction, as a session would
        return rows

    def close(self) -> None:
        self._conn.close()


def core_text(db: Database, sql: str, p: Pick) -> list[tuple[Any, ...]]:
    """The floor's SQL through SQLAlchemy Core on a pooled connection (the middle step)."""
    extra, params = audience_sql(p.audience)
    params |= {"study": p.audience.study_id, "kpi": p.kpi.id, "since": p.since}
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql.format(extra=extra)), params)]


def floor_show(floor: Floor, p: Pick) -> list[tuple[Any, ...]]:
    extra, params = audience_sql(p.audience)
    params |= {"study": p.audience.study_id, "kpi": p.kpi.id, "since": p.since}
    return floor.run(SHOW_SQL.format(extra=extra), params)


def floor_trend(floor: Floor, p: Pick) -> list[tuple[Any, ...]]:
    extra, params = audience_sql(p.audience)
    params |= {"study": p.audience.study_id, "kpi": p.kpi.id, "since": p.since}
    return floor.run(TREND_SQL.format(extra=extra), params)


def service_show(db: Database, p: Pick) -> list[kpis.Point]:
    with db.read() as s:
        return kpis.series(s, p.audience, p.kpi, since=p.since)


def service_trend(db: Database, p: Pick) -> list[kpis.Trend]:
    with db.read() as s:
        return kpis.trend_of(p.kpi, kpis.series(s, p.audience, p.kpi, since=p.since))


def same_show(points: list[kpis.Point], rows: list[tuple[Any, ...]]) -> bool:
    want = [
        (
            p.org_id,
            p.org_name,
            str(p.period_start),
            p.period_label,
            p.value,
            p.approval_state.value,
            p.note,
        )
        for p in points
    ]
    got = [(r[0], r[1], str(r[2]), r[3], r[4], r[5], r[6]) for r in rows]
    return want == got


def same_trend(trends: list[kpis.Trend], rows: list[tuple[Any, ...]]) -> bool:
    want = [(t.org_name, t.latest.value, t.previous.value if t.previous else None) for t in trends]
    return want == [tuple(r) for r in rows]


def make_picks(
    db: Database, n: int, rng: random.Random, show_weeks: int, trend_weeks: int
) -> tuple[list[Pick], list[Pick]]:
    with db.read() as s:
        studies = list(s.scalars(select(Study).order_by(Study.id)))
        defs = list(s.scalars(select(KpiDefinition).order_by(KpiDefinition.id)))
        vendors = {st.id: sorted(vendor_org_ids(s, st.id)) for st in studies}
        s.expunge_all()
    if not studies or not defs:
        raise SystemExit("empty database: run benchmarks/generate.py first")

    def pick(weeks: int) -> Pick:
        st = rng.choice(studies)
        kind = rng.choice(("sponsor", "sponsor", "vendor", "joint", "joint_vendor"))
        vendor = rng.choice(vendors[st.id]) if vendors[st.id] else None
        if kind == "vendor" and vendor is not None:
            aud = Audience(st.id, Scope.VENDOR, vendor, st.sponsor_org_id)
        elif kind == "joint":
            aud = Audience(st.id, Scope.JOINT, None, st.sponsor_org_id)
        elif kind == "joint_vendor" and vendor is not None:
            aud = Audience(st.id, Scope.JOINT, vendor, st.sponsor_org_id)
        else:
            aud = Audience(st.id, Scope.SPONSOR, None, st.sponsor_org_id)
        return Pick(aud, rng.choice(defs), kpis.since_weeks(TODAY, weeks))

    return [pick(show_weeks) for _ in range(n)], [pick(trend_weeks) for _ in range(n)]


def measure(
    picks: list[Pick],
    service: Callable[[Pick], Any],
    middle: Callable[[Pick], list[tuple[Any, ...]]],
    floor: Callable[[Pick], list[tuple[Any, ...]]],
    same: Callable[[Any, list[tuple[Any, ...]]], bool],
    warmup: int,
) -> tuple[Summary, Summary, Summary, int]:
    svc_t: list[float] = []
    mid_t: list[float] = []
    flo_t: list[float] = []
    rows = 0
    for i, p in enumerate(picks):
        t0 = time.perf_counter()
        answer = service(p)
        t1 = time.perf_counter()
        middle(p)
        t2 = time.perf_counter()
        floor_rows = floor(p)
        t3 = time.perf_counter()
        if not same(answer, floor_rows):
            raise SystemExit(f"service and floor disagree for {p}:\n{answer}\n{floor_rows}")
        if i >= warmup:
            svc_t.append(t1 - t0)
            mid_t.append(t2 - t1)
            flo_t.append(t3 - t2)
            rows += len(floor_rows)
    return Summary.of(svc_t), Summary.of(mid_t), Summary.of(flo_t), rows


def report(name: str, svc: Summary, mid: Summary, flo: Summary, rows: int) -> dict[str, float]:
    r50, r99 = ratio(svc.p50, flo.p50), ratio(svc.p99, flo.p99)
    print(f"{name}:  ({rows / max(1, svc.n):.0f} rows per answer)")
    print(f"  service          {svc.ms()}")
    print(f"  Core text()      {mid.ms()}")
    print(f"  floor (raw DBAPI) {flo.ms()}")
    verdict = "OK" if max(r50, r99) <= 1.5 else "OVER TARGET"
    print(f"  ratio service/floor: p50 {r50:.2f}  p99 {r99:.2f}  (target <= 1.5: {verdict})")
    print(
        f"  ratio Core text()/floor: p50 {ratio(mid.p50, flo.p50):.2f}  "
        f"p99 {ratio(mid.p99, flo.p99):.2f}  (SQLAlchemy connection + execute, no ORM)"
    )
    return {"p50": r50, "p99": r99}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--show-weeks", type=int, default=8, help="kpi show window (last:8w)")
    p.add_argument("--trend-weeks", type=int, default=8, help="kpi trend window")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    db = Database(args.url)
    with db.read() as s:
        rows = s.execute(select(KpiDefinition.id)).all()
    print(machine_line())
    print(
        f"kpi_query: {redact(db.url)}  ({len(rows)} KPI definitions), "
        f"{args.iterations} picks each, warm-up {args.warmup}"
    )
    rng = random.Random(args.seed)
    n = args.iterations + args.warmup
    show_picks, trend_picks = make_picks(db, n, rng, args.show_weeks, args.trend_weeks)
    floor = Floor(db)
    try:
        svc, mid, flo, nrows = measure(
            show_picks,
            lambda pk: service_show(db, pk),
            lambda pk: core_text(db, SHOW_SQL, pk),
            lambda pk: floor_show(floor, pk),
            same_show,
            args.warmup,
        )
        report(f"kpi show (series, last {args.show_weeks}w)", svc, mid, flo, nrows)
        svc, mid, flo, nrows = measure(
            trend_picks,
            lambda pk: service_trend(db, pk),
            lambda pk: core_text(db, TREND_SQL, pk),
            lambda pk: floor_trend(floor, pk),
            same_trend,
            args.warmup,
        )
        report(f"kpi trend (series + trend_of, {args.trend_weeks}w)", svc, mid, flo, nrows)
    finally:
        floor.close()
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
