"""Small PNG trend charts (actual per organisation vs target) with matplotlib's Agg backend.

`Figure` + `FigureCanvasAgg` are used directly, never pyplot: no global state, no GUI
backend, safe in scheduler threads.
"""

from __future__ import annotations

import io

from crobot.digests.compose import KpiView

MIN_PERIODS = 3


def chartable(kpi: KpiView) -> bool:
    return kpi.period_count >= MIN_PERIODS


def kpi_chart_png(kpi: KpiView) -> bytes:
    """Actual values per organisation over the periods, with the target as a dashed line."""
    # matplotlib costs ~1.5 s and tens of MB to import: only pay for it when a chart is drawn,
    # not in every `crobot serve` process at start-up.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    by_org: dict[str, list[tuple[str, float]]] = {}
    labels: list[str] = []
    for p in kpi.points:
        by_org.setdefault(p.org_name, []).append((p.period_label, p.value))
        if p.period_label not in labels:
            labels.append(p.period_label)
    index = {label: i for i, label in enumerate(labels)}
    for org, pts in sorted(by_org.items()):
        ax.plot([index[x] for x, _ in pts], [y for _, y in pts], marker="o", label=org)
    if kpi.target is not None:
        ax.axhline(kpi.target, linestyle="--", linewidth=1, color="grey", label="target")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7, rotation=30)
    ax.set_title(f"{kpi.label} ({kpi.unit})", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
