"""The measures crobot computes from its own record (nobody types them), by key.

Their keys share the namespace of the KPI catalogue: a study may give one a target
(`crobot kpi target STUDY milestones_on_time 90`, services/kpi_targets.py), and no
catalogue KPI may take one of these keys (services/kpi_admin.py). The computations
themselves live with the scorecards; this is only what each one is.

key -> (label, unit, direction): the unit is one of services/kpi_units.py's, the
direction `up` (higher is better) or `down`. Labels are short (a scorecard table's
cell); each line's explanation says how it was computed (mean, median, which inputs).
"""

from __future__ import annotations

COMPUTED_MEASURES: dict[str, tuple[str, str, str]] = {
    "milestones_on_time": ("Milestones on time", "%", "up"),
    "milestone_days_late": ("Milestone days late", "days", "down"),
    "forecast_slips": ("Forecast slips", "count", "down"),
    "actions_on_time": ("Actions closed on time", "%", "up"),
    "action_days_overdue": ("Action days overdue", "days", "down"),
    "kpi_reports_on_time": ("KPI reports on time", "%", "up"),
    "kpi_rejected_share": ("KPI submissions rejected", "%", "down"),
    "approval_turnaround_hours": ("Approval turnaround (sponsor)", "hours", "down"),
}
# The keys a study may target besides the catalogue's, with their labels.
COMPUTED_KEYS: dict[str, str] = {key: label for key, (label, _, _) in COMPUTED_MEASURES.items()}
