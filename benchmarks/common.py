"""What every benchmark shares: percentiles, machine facts, the generated portfolio's names.

Scripts run as `python -m benchmarks.x` from the repository root (crobot itself is the
installed `crobot` package).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The generated portfolio is dated relative to this day so every run is identical.
TODAY = date(2026, 11, 25)  # a Wednesday
TEAM = "T1"


# --- naming scheme of benchmarks/generate.py (benchmarks read targets from it) ----------
def study_code(i: int) -> str:
    return f"STU-{i + 1:03d}"


def user_id(org_index: int, n: int) -> str:
    return f"U{org_index + 1:03d}P{n:02d}"


def channel_id(study_index: int, n: int) -> str:
    return f"C{study_index + 1:03d}X{n:02d}"


# --- statistics ---------------------------------------------------------------------------
def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a measured sample)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        mean = sum(values) / len(values) if values else float("nan")
        return cls(
            len(values),
            percentile(values, 50),
            percentile(values, 95),
            percentile(values, 99),
            mean,
        )

    def ms(self) -> str:
        return (
            f"p50 {self.p50 * 1000:7.2f} ms  p95 {self.p95 * 1000:7.2f} ms  "
            f"p99 {self.p99 * 1000:7.2f} ms  (n={self.n})"
        )


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


# --- machine facts for RESULTS.md ----------------------------------------------------------
def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_line() -> str:
    mem = _mem_total_mb()
    return (
        f"machine: {platform.machine()} {platform.system()}, nproc {os.cpu_count()}, "
        f"memory {mem if mem is not None else '?'} MB, Python {platform.python_version()}, "
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {_commit()}"
    )


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of a live process, Linux only."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def workers_of(pid: int) -> list[int]:
    """The worker processes uvicorn spawned for the supervisor `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def tree_peak_rss_mb(pid: int) -> dict[int, float]:
    """Peak RSS of a server process and of each of its workers, by pid."""
    out = {}
    for p in (pid, *workers_of(pid)):
        mb = peak_rss_mb(p)
        if mb is not None:
            out[p] = mb
    return out


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def redact(url: str) -> str:
    """A database URL fit to print: no password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
