"""When a milestone's forecast changed and when it slipped: the one definition.

Read from the audit trail's `milestone.update` events, whose before/after snapshots hold
the whole milestone. A forecast *changed* when the new forecast date differs from the one
before (either may be none); it *slipped* when the new one is later than the previous
forecast, or than the plan when there was no forecast before. The digest's "Since" line
counts both inside its one statement and the scorecards list the slips, so the rule is
written once, in SQL (ISO dates compare as text).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func

from crobot.storage.models import AuditEvent

ACTION = "milestone.update"  # the audit action that records a new forecast date
NEW = AuditEvent.after["forecast_date"].as_string()
OLD = AuditEvent.before["forecast_date"].as_string()
# What the new forecast is measured against: the last forecast, else the plan.
WAS = func.coalesce(OLD, AuditEvent.before["planned_date"].as_string())


def changed() -> ColumnElement[bool]:
    return and_(AuditEvent.action == ACTION, NEW.is_distinct_from(OLD))


def slipped() -> ColumnElement[bool]:
    """Of the changes, those that moved the date later (a removed forecast is no slip)."""
    return and_(changed(), NEW > WAS)
