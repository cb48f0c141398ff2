"""Small PNG trend charts (current value per organisation vs target) with matplotlib's Agg
backend; values awaiting approval are drawn hollow, with a legend entry saying so.

`Figure` + `FigureCanvasAgg` are used directly, never pyplot: no global state, no GUI
backend, safe in scheduler threads.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from crobot.digests.compose import KpiView
from crobot.services.kpis import PENDING_APPROVAL, Point

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_PERIODS = 3
PENDING_GID = "pending-approval"  # the hollow markers of values awaiting approval


def chartable(kpi: KpiView) -> bool:
    return kpi.period_count >= MIN_PERIODS


def kpi_chart_png(kpi: KpiView) -> bytes:
    """The chart of `kpi_figure` as a PNG."""
    fig = kpi_figure(kpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def kpi_figure(kpi: KpiView) -> Figure:
    """Current values per organisation over the periods, with the target as a dashed line.

    A value that awaits approval is drawn hollow, and the legend says what that means.
    """
    # matplotlib costs ~1.5 s and tens of MB to import: only pay for it when a chart is drawn,
    # not in every `crobot serve` process at start-up.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    by_org: dict[str, list[Point]] = {}
    labels: list[str] = []
    for p in kpi.points:
        by_org.setdefault(p.org_name, []).append(p)
        if p.period_label not in labels:
            labels.append(p.period_label)
    index = {label: i for i, label in enumerate(labels)}
    for org, pts in sorted(by_org.items()):
        (line,) = ax.plot(
            [index[p.period_label] for p in pts], [p.value for p in pts], marker="o", label=org
        )
        pending = [p for p in pts if p.pending]
        if pending:
            ax.plot(
                [index[p.period_label] for p in pending],
                [p.value for p in pending],
                linestyle="none",
                marker="o",
                markersize=8,
                markerfacecolor="white",
                markeredgecolor=line.get_color(),
                gid=PENDING_GID,
            )
    if any(p.pending for p in kpi.points):
        # One legend entry for every hollow marker, whichever organisation it belongs to.
        ax.plot(
            [],
            [],
            linestyle="none",
            marker="o",
            markerfacecolor="white",
            markeredgecolor="grey",
            label=PENDING_APPROVAL,
        )
    if kpi.target is not None:
        ax.axhline(kpi.target, linestyle="--", linewidth=1, color="grey", label="target")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7, rotation=30)
    ax.set_title(f"{kpi.label} ({kpi.unit})", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig
