"""The measures crobot computes from its own record (nobody types them), by key.

Their keys share the namespace of the KPI catalogue: a study may give one a target
(`crobot kpi target STUDY milestones_on_time 90`, services/kpi_targets.py), and no
catalogue KPI may take one of these keys (services/kpi_admin.py). The computations
themselves live with the scorecards; this is only what each one is.

key -> (label, unit, direction): the unit is one of services/kpi_units.py's, the
direction `up` (higher is better) or `down`.
"""

from __future__ import annotations

COMPUTED_MEASURES: dict[str, tuple[str, str, str]] = {
    "milestones_on_time": ("Milestones completed on time", "%", "up"),
    "milestone_days_late": ("Mean days late of milestones", "days", "down"),
    "forecast_slips": ("Forecast slips", "count", "down"),
    "actions_on_time": ("Actions closed by their due date", "%", "up"),
    "action_days_overdue": ("Median days overdue of actions", "days", "down"),
    "kpi_reports_on_time": ("KPI reports submitted on time", "%", "up"),
    "kpi_rejected_share": ("KPI reports rejected at approval", "%", "down"),
    "approval_turnaround_hours": ("Sponsor approval turnaround", "hours", "down"),
}
# The keys a study may target besides the catalogue's, with their labels.
COMPUTED_KEYS: dict[str, str] = {key: label for key, (label, _, _) in COMPUTED_MEASURES.items()}
