"""The measures crobot computes from its own records (nobody types them): key -> (label,
unit, direction "up"/"down"). A KPI definition may not take one of these keys."""

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
