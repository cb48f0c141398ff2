"""Vendor scorecards as a Slack message: one native table (Slack allows one a message) of
every line, each line's status said in words, then what each computed measure was
computed from; and the plain `text` fallback."""

from __future__ import annotations

from collections.abc import Sequence

from crobot.handlers.blockkit import (
    MAX_TABLE_ROWS,
    Block,
    Mrkdwn,
    context,
    fmt,
    header,
    lines_block,
    table,
)
from crobot.services.kpi_values import shown
from crobot.services.quarters import Quarter
from crobot.services.scorecards import OFF, ON, Line, Scorecard

STATUS_CELL = {ON: "on target", OFF: "OFF TARGET"}
ABOUT = (
    "_Computed_ lines come from crobot's own records (milestones, actions, KPI submissions, "
    "approvals); nobody types them. _Reported_ lines are the vendor's latest approved KPI "
    "values. Approval turnaround is the sponsor's own measure."
)
EXPLANATION_BLOCKS = 40


def with_unit(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return shown(value) if unit == "count" else f"{shown(value)} {unit}"


def target_cell(line: Line) -> str:
    if line.target.value is None:
        return "—"
    sign = "≥" if line.direction == "up" else "≤"
    return f"{sign} {with_unit(line.target.value, line.unit)} ({line.target.source})"


def change_cell(line: Line) -> str:
    change = line.change
    if change is None:
        return "—"
    arrow = "→" if change == 0 else ("▲" if change > 0 else "▼")
    sign = "+" if change > 0 else ""
    return f"{arrow} {sign}{shown(change)} {line.trend}"


def measure_cell(line: Line) -> str:
    return f"{line.label} · {'computed' if line.computed else 'reported'}"


def _title(cards: Sequence[Scorecard], q: Quarter) -> str:
    studies = sorted({c.study_code for c in cards})
    where = f" · {studies[0]}" if len(studies) == 1 else ""
    if len(cards) == 1:
        return f"Vendor scorecard — {cards[0].org_name}{where} · {q.label}"
    return f"Vendor scorecards{where} · {q.label}"


def _summary(c: Scorecard) -> Mrkdwn:
    n = c.counts()
    return fmt(
        "{} ({}): {} on target, {} off target, {} without data",
        c.org_name,
        c.study_code,
        n[ON],
        n[OFF],
        n["no data"],
    )


def scorecard_message(cards: Sequence[Scorecard], q: Quarter) -> tuple[Mrkdwn, list[Block]]:
    """(fallback text, blocks) of one or several vendors' scorecards for quarter `q`."""
    title = _title(cards, q)
    if not cards:
        note = Mrkdwn(f"_No vendor scorecards for {q.label}._")
        return fmt("{}: none", title), [header(title), context(note)]
    several = len(cards) > 1
    head = [*(["Vendor"] if several else []), "Measure", "Value", "Target", "Status"]
    head.append(f"vs {q.previous().label}")
    rows: list[list[str]] = []
    for c in cards:
        for line in c.lines:
            rows.append(
                [
                    *([c.org_name] if several else []),
                    measure_cell(line),
                    with_unit(line.value, line.unit),
                    target_cell(line),
                    STATUS_CELL.get(line.status, line.status),
                    change_cell(line),
                ]
            )
    blocks: list[Block] = [header(title), context(Mrkdwn(ABOUT))]
    blocks.append(table(head, rows, right=[2 if several else 1]))
    if len(rows) > MAX_TABLE_ROWS - 1:
        cut = len(rows) - (MAX_TABLE_ROWS - 1)
        blocks.append(context(Mrkdwn(f"_{cut} line(s) not in the table: use `crobot scorecard`._")))
    explained: list[Mrkdwn] = []
    for c in cards:
        explained.append(fmt("*{}* · {} · as of {}", c.org_name, c.study_code, c.as_of.isoformat()))
        for line in c.lines:
            explained.append(fmt("• {}: {}", line.label, line.explanation))
    blocks += lines_block(explained, budget=EXPLANATION_BLOCKS, noun="lines")
    text = fmt("{}: ", title) + Mrkdwn("; ").join(_summary(c) for c in cards)
    return text, blocks
