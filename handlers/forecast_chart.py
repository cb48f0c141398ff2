"""`/cro forecast` drawn natively: cumulative enrolment as reported, month by month, then
the forecast's optimistic, median and cautious paths (P10 / P50 / P90 dates) up to the
cautious date, with the target as its own series; and the same figures as a table.

A native series needs a value in every month, so the reported months are the same value
in all three paths (they fan out from this month on); the context line says so."""

from __future__ import annotations

from datetime import date

from crobot.handlers.blockkit import Block, context, fmt, line_chart, table
from crobot.services.enrolment import StudyForecast


def _month(day: date) -> str:
    return f"{day:%Y-%m}"


def forecast_visuals(sf: StudyForecast) -> list[Block]:
    """The chart and its table; nothing when there is no month ahead to draw."""
    f = sf.forecast
    reported = sf.history or [(f.as_of, f.enrolled)]
    # The current month is the last reported point: everything counted so far.
    reported = [*reported[:-1], (reported[-1][0], f.enrolled)]
    ahead = [p for p in f.path if _month(p.day) > _month(reported[-1][0])]
    if not ahead:
        return []
    months = [_month(day) for day, _ in reported] + [_month(p.day) for p in ahead]
    so_far = [float(n) for _, n in reported]
    series: list[tuple[object, list[float]]] = [
        ("Optimistic path (P10 date)", so_far + [float(p.high) for p in ahead]),
        ("Median path (P50 date)", so_far + [float(p.median) for p in ahead]),
        ("Cautious path (P90 date)", so_far + [float(p.low) for p in ahead]),
        (f"Target ({f.target} patients)", [float(f.target)] * len(months)),
    ]
    chart = line_chart(
        "Enrolment: reported, then forecast",
        months,
        series,
        x_label=f"Month (forecast from {_month(f.as_of)})",
        y_label="Patients enrolled in all",
    )
    note = context(
        fmt(
            "Up to {} the three paths are the approved site reports; after, the 90th, 50th "
            "and 10th percentiles of the simulated enrolment at each month's end.",
            _month(reported[-1][0]),
        )
    )
    rows = [[_month(day), str(n), "", "", ""] for day, n in reported]
    rows += [[_month(p.day), "", str(p.high), str(p.median), str(p.low)] for p in ahead]
    head = ["Month", "Reported", "Optimistic", "Median", "Cautious"]
    return [chart, note, table(head, rows, right=[1, 2, 3, 4])]
