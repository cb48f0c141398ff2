"""The benchmark scripts still run: each at tiny scale, end to end, in a subprocess.

Figures at this scale mean nothing; what is checked is that the generator fills a
migrated database the app can use (audit chain intact), that the KPI service and its SQL
floor give the same answers, that signed slash commands get answers from crobot and the
bare app, and that digests are delivered exactly once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "--kpi-rows", "2000", "--studies", "2", "--orgs", "10",
    "--milestones", "200", "--actions", "400", "--channels", "12",
]  # fmt: skip


def run(script: str, *args: str, timeout: float = 60) -> str:
    module = "benchmarks." + script.removesuffix(".py")
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def bench_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('bench') / 'bench.db'}"
    out = run("generate.py", "--url", url, *TINY, "--fresh")
    assert re.search(r"kpi_updates\s+2,000 rows", out), out
    assert "audit chain: OK: 1 audit events" in out
    return url


def test_generate_is_deterministic(bench_url: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from benchmarks.generate import main as generate_main

    other = f"sqlite:///{tmp_path / 'again.db'}"
    assert generate_main(["--url", other, *TINY, "--no-analyze"]) == 0
    fingerprint = text(
        "SELECT count(*), sum(value), sum(org_id * kpi_id), sum(length(approval_state)), "
        "(SELECT count(*) FROM approvals), "
        "(SELECT sum(id) FROM action_items WHERE status = 'open'), "
        "(SELECT sum(length(name)) FROM milestones WHERE status = 'approved') "
        "FROM kpi_updates"
    )
    sums = []
    for url in (bench_url, other):
        engine = create_engine(url)
        with engine.connect() as conn:
            sums.append(tuple(conn.execute(fingerprint).one()))
        engine.dispose()
    assert sums[0] == sums[1]


def test_kpi_query_runs_and_agrees_with_floor(bench_url: str) -> None:
    out = run("kpi_query.py", "--url", bench_url, "--iterations", "20", "--warmup", "2")
    assert "kpi show" in out and "kpi trend" in out
    assert out.count("ratio service/floor") == 2


def test_slash_roundtrip_runs(bench_url: str) -> None:
    out = run(
        "slash_roundtrip.py", "--url", bench_url, "--count", "24", "--concurrency", "1,4",
        "--warmup", "3", "--servers", "bare,crobot", "--writes", "8",
        "--write-concurrency", "1,4", "--strict",
    )  # fmt: skip
    assert "bare w=1 c=4" in out
    assert "writes w=1 c=4" in out and "p99 / p50 at c=1" in out  # answered at response_url
    assert "peak RSS bare, 1 worker(s)" in out


def test_request_cpu_runs_every_command_without_failures(bench_url: str) -> None:
    out = run(
        "request_cpu.py", "--url", bench_url, "--count", "6", "--warmup", "2", "--writes", "4"
    )
    rows = {
        m.group(1): int(m.group(2))
        for m in re.finditer(
            r"^  (kpi show|status|action list mine|action add)\s.*\s(\d+)$", out, re.M
        )
    }
    assert rows == {"kpi show": 0, "status": 0, "action list mine": 0, "action add": 0}, out


def test_digest_fanout_runs(bench_url: str) -> None:
    out = run("digest_fanout.py", "--url", bench_url)
    # The scale story: the same fan-out at 1, 2 and 4 worker processes, replies counted.
    for processes in (1, 2, 4):
        assert f"{processes} process(es) x 2 threads: 12 digests + " in out
    assert "/ 0.12 s target = " in out
    assert "exactly once" in out and "NOT exactly once" not in out


def test_replica_chaos_runs(bench_url: str) -> None:
    # Two `crobot serve` processes on the tiny SQLite portfolio, one killed per round.
    out = run(
        "replica_chaos.py", "--url", bench_url, "--channels", "6", "--rounds", "2",
        "--lease", "2", "--sweep", "1", "--kill-window", "1", "--pace", "0.05",
    )  # fmt: skip
    assert "kills 2, lost 0, duplicated 0" in out
    assert "exactly once" in out and "NOT exactly once" not in out


def test_kpi_import_runs_and_leaves_the_database_as_it_was(bench_url: str) -> None:
    from sqlalchemy import create_engine, text

    count = text("SELECT (SELECT count(*) FROM kpi_updates), (SELECT count(*) FROM approvals)")
    engine = create_engine(bench_url)
    with engine.connect() as conn:
        before = tuple(conn.execute(count).one())
    out = run("kpi_import.py", "--url", bench_url, "--rows", "300", "--repeat", "1")
    with engine.connect() as conn:
        assert tuple(conn.execute(count).one()) == before  # every run was rolled back
    engine.dispose()
    assert "approver:" in out and "operator:" in out
    assert out.count("import/generator") == 2 and "rows/s" in out
