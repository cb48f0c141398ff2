"""`/cro kpi show` and `kpi trend` as Slack draws them: a native line chart (one series per
organisation the reader may see, plus the target as its own series) and a table of every
value, above the text lines that stay as the fallback for clients without these blocks."""

from __future__ import annotations

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
from crobot.storage.models import KpiDefinition

MAX_ORG_SERIES = 5  # six series at most, one of them the target


def visuals(kpi: KpiDefinition, points: list[Point]) -> list[Block]:
    if not points:
        return []
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
        left = sorted(set(by_org) - set(charted))
        if left:
            note = "Not charted (a period missing, or more than five): {}; the table has them."
            blocks.append(context(fmt(note, ", ".join(left))))
    rows = [
        [p.period_label, p.org_name, shown(p.value), PENDING_APPROVAL if p.pending else "approved"]
        for p in sorted(points, key=lambda p: (p.period_start, p.org_name), reverse=True)
    ]
    blocks.append(
        table(["Period", "Organisation", f"Value ({kpi.unit})", "State"], rows, right=[2])
    )
    if len(rows) > MAX_TABLE_ROWS - 1:
        cut = len(rows) - (MAX_TABLE_ROWS - 1)
        blocks.append(context(Mrkdwn(f"_{cut} older value(s) not in the table._")))
    return blocks
