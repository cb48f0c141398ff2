"""Which target applies to a KPI (or a computed measure) for one study and organisation.

This is the scorecard branch's stand-in with the catalogue branch's interface: it knows
no per-study or per-organisation targets yet, so every target is the default the caller
passes. The table-backed version (targets per study and per organisation, set with
`crobot kpi target`) comes from the catalogue branch and replaces this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from crobot.services.kpi_values import shown


@dataclass(frozen=True)
class AppliedTarget:
    value: float | None
    source: str  # "study+org", "study", "default" or "none"

    def describe(self) -> str:
        if self.value is None:
            return "no target"
        return f"{shown(self.value)} ({self.source})"


class TargetBook:
    """The targets of one study, looked up without further queries."""

    def get(self, kpi_key: str, org_id: int | None, default: float | None) -> AppliedTarget:
        return AppliedTarget(default, "none" if default is None else "default")


def targets_for_study(session: Session, study_id: int) -> TargetBook:
    return TargetBook()


def target_for(
    session: Session, *, study_id: int, kpi_key: str, org_id: int | None, default: float | None
) -> AppliedTarget:
    return targets_for_study(session, study_id).get(kpi_key, org_id, default)
