"""KPIs as Slack draws them natively: a line chart (one series per organisation the reader
may see, plus the target as its own series) and tables, for `/cro kpi show|trend` and the
digest. Callers keep their text lines below as the fallback for clients without these
blocks."""

from __future__ import annotations

from typing import Protocol

from crobot.handlers.blockkit import (
    MAX_TABLE_ROWS,
    Block,
    Mrkdwn,
    context,
    fmt,
    line_chart,
    table,
)
from crobot.services.kpi_values import shown
from crobot.services.kpis import PENDING_APPROVAL, Point

MAX_ORG_SERIES = 5  # six series at most, one of them the target


class Charted(Protocol):
    """What a chart needs of a KPI (a definition, or a digest's KPI view)."""

    @property
    def label(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def target(self) -> float | None: ...


def visuals(kpi: Charted, points: list[Point]) -> list[Block]:
    """`kpi show|trend`: the chart (when there are two periods to draw) and the table."""
    if not points:
        return []
    return [*chart(kpi, points), *values_table(kpi, points)]


def chart(kpi: Charted, points: list[Point]) -> list[Block]:
    """The line chart, and a note naming any organisation left out of it; nothing when
    fewer than two periods can be drawn."""
    periods = sorted({(p.period_start, p.period_label) for p in points})
    labels = [label for _, label in periods]
    by_org: dict[str, dict[str, Point]] = {}
    for p in points:
        by_org.setdefault(p.org_name, {})[p.period_label] = p
    # A series needs a value in every period: an organisation with a gap is in the table
    # only (a line drawn across a missing period would show a value nobody reported).
    whole = [org for org in sorted(by_org) if all(label in by_org[org] for label in labels)]
    charted = whole[:MAX_ORG_SERIES]
    blocks: list[Block] = []
    if len(labels) >= 2 and charted:
        series: list[tuple[object, list[float]]] = [
            (org, [by_org[org][label].value for label in labels]) for org in charted
        ]
        if kpi.target is not None:
            series.append((f"Target ({shown(kpi.target)})", [kpi.target] * len(labels)))
        blocks.append(
            line_chart(f"{kpi.label} by period", labels, series, x_label="Period", y_label=kpi.unit)
        )
        # A native chart cannot draw a point hollow: say which plotted values still wait.
        waiting = [
            f"{org} {label}" for org in charted for label in labels if by_org[org][label].pending
        ]
        if waiting:
            note = "Charted values still {}: {}."
            blocks.append(context(fmt(note, PENDING_APPROVAL, ", ".join(waiting))))
        left = sorted(set(by_org) - set(charted))
        if left:
            note = "Not charted (a period missing, or more than five): {}; the table has them."
            blocks.append(context(fmt(note, ", ".join(left))))
    return blocks


def values_table(kpi: Charted, points: list[Point]) -> list[Block]:
    """Every value, newest first, with its state."""
    rows = [
        [p.period_label, p.org_name, shown(p.value), PENDING_APPROVAL if p.pending else "approved"]
        for p in sorted(points, key=lambda p: (p.period_start, p.org_name), reverse=True)
    ]
    head = ["Period", "Organisation", f"Value ({kpi.unit})", "State"]
    blocks = [table(head, rows, right=[2])]
    if len(rows) > MAX_TABLE_ROWS - 1:
        cut = len(rows) - (MAX_TABLE_ROWS - 1)
        blocks.append(context(Mrkdwn(f"_{cut} older value(s) not in the table._")))
    return blocks
