"""KPIs as Slack draws them natively: a line chart (one series per organisation the reader
may see, plus the targets that apply to them as series of their own) and tables, for
`/cro kpi show|trend` and the digest. Callers keep their text lines below as the fallback
for clients without these blocks.

Targets are the study's and organisation's (services/kpi_targets.py): organisations that
share a target share its line, named after whose target it is — `Target (20)` for the
catalogue's default, `Target (25, study)`, `Target (30, Apex CRO)`."""

from __future__ import annotations

from collections.abc import Mapping
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
from crobot.services.kpi_targets import DEFAULT, STUDY, AppliedTarget, applied
from crobot.services.kpi_values import shown
from crobot.services.kpis import PENDING_APPROVAL, Point

MAX_SERIES = 6  # what Slack draws in one chart, targets included
MAX_ORG_SERIES = 5


class Charted(Protocol):
    """What a chart needs of a KPI (a definition, or a digest's KPI view)."""

    @property
    def label(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def target(self) -> float | None: ...  # the catalogue's default


Targets = Mapping[str, AppliedTarget]  # by organisation name: the target that applies


def visuals(kpi: Charted, points: list[Point], targets: Targets | None = None) -> list[Block]:
    """`kpi show|trend`: the chart (when there are two periods to draw) and the table."""
    if not points:
        return []
    return [*chart(kpi, points, targets), *values_table(kpi, points)]


def target_lines(kpi: Charted, orgs: list[str], targets: Targets | None) -> list[tuple[str, float]]:
    """(series name, value) of each distinct target among `orgs`, in their order."""
    default = applied(None, None, kpi.target)
    by_value: dict[float, list[tuple[str, AppliedTarget]]] = {}
    for org in orgs:
        t = (targets or {}).get(org, default)
        if t.value is not None:
            by_value.setdefault(t.value, []).append((org, t))
    lines = []
    for value, holders in by_value.items():
        sources = {t.source for _, t in holders}
        everyone = len(holders) == len(orgs)
        if everyone and sources == {DEFAULT}:
            whose = ""
        elif everyone and sources == {STUDY}:
            whose = ", study"
        else:  # some organisations' own, or shared by some only: name them
            whose = ", " + " / ".join(org for org, _ in holders)
        lines.append((f"Target ({shown(value)}{whose})", value))
    return lines


def chart(kpi: Charted, points: list[Point], targets: Targets | None = None) -> list[Block]:
    """The line chart, and a note naming any organisation left out of it; nothing when
    fewer than two periods can be drawn. `targets`: each organisation's (else the
    catalogue's default for all)."""
    periods = sorted({(p.period_start, p.period_label) for p in points})
    labels = [label for _, label in periods]
    by_org: dict[str, dict[str, Point]] = {}
    for p in points:
        by_org.setdefault(p.org_name, {})[p.period_label] = p
    # A series needs a value in every period: an organisation with a gap is in the table
    # only (a line drawn across a missing period would show a value nobody reported).
    whole = [org for org in sorted(by_org) if all(label in by_org[org] for label in labels)]
    charted = whole[:MAX_ORG_SERIES]
    goals = target_lines(kpi, charted, targets)
    while charted and len(charted) + len(goals) > MAX_SERIES:  # targets of their own
        charted.pop()
        goals = target_lines(kpi, charted, targets)
    blocks: list[Block] = []
    if len(labels) >= 2 and charted:
        series: list[tuple[object, list[float]]] = [
            (org, [by_org[org][label].value for label in labels]) for org in charted
        ]
        series += [(name, [value] * len(labels)) for name, value in goals]
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
