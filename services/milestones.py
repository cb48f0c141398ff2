"""Milestones: add, update (forecast / at risk / done), list for an audience."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from crobot.services import approvals, audit, reachable
from crobot.services.actor import Actor
from crobot.services.errors import Forbidden, UserError, validate
from crobot.services.lookup import org_by_name, study_named_by, vendor_org_ids
from crobot.services.permissions import is_sponsor, needs_approval, require_org_write
from crobot.services.visibility import Audience, milestone_filter
from crobot.storage.models import Milestone, MilestoneStatus, SubjectType

FIELDS = (
    "name",
    "org_id",
    "planned_date",
    "forecast_date",
    "actual_date",
    "status",
    "shared",
    "target_count",
    "status_pinned",
)
ADD_HINT = 'Write it as `/cro milestone add STUDY "Name" planned:YYYY-MM-DD [org:ORG] [count:N]`.'
UPDATE_HINT = (
    "Write it as `/cro milestone update ID forecast:YYYY-MM-DD`, `status:at_risk`, "
    "`status:auto`, `count:N` or `done [actual:DATE]`."
)
Count = Annotated[int, Field(ge=1, le=10_000_000)]


class MilestoneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    study: str
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    planned: date
    org: str | None = None
    shared: bool = False
    count: Count | None = None  # an enrolment milestone: patients enrolled by `planned`


class MilestoneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    forecast: date | None = None
    status: MilestoneStatus | None = None
    actual: date | None = None
    count: Count | None = None
    unpin: bool = False  # hand the status back to the enrolment forecast


def add(
    session: Session, actor: Actor, *, today: date, allow_past: bool = False, **data: object
) -> Milestone:
    inp = validate(MilestoneCreate, data, ADD_HINT)
    study = study_named_by(session, actor, inp.study)
    vendors = vendor_org_ids(session, study.id)
    org_id = org_by_name(session, inp.org).id if inp.org else actor.org_id
    if org_id is not None and org_id not in vendors and org_id != study.sponsor_org_id:
        raise UserError("That organisation is not on this study.", ADD_HINT, field="org")
    require_org_write(actor, study, vendors, org_id)
    if inp.planned < today and not allow_past:
        raise UserError(
            f"The planned date {inp.planned} is in the past.",
            "Plan milestones for today or later.",
            field="planned",
        )
    ms = Milestone(
        study_id=study.id,
        org_id=org_id,
        name=inp.name,
        planned_date=inp.planned,
        shared=inp.shared,
        target_count=inp.count,
        created_by=actor.label,
    )
    session.add(ms)
    session.flush()
    audit.record(
        session,
        actor,
        "milestone.create",
        "milestone",
        ms.id,
        study_id=study.id,
        after=audit.snapshot(ms, *FIELDS),
    )
    return ms


@dataclass(frozen=True)
class MilestoneChange:
    milestone: Milestone
    approval_id: int | None  # the approval the completion now awaits, if it needs one

    @property
    def approval_requested(self) -> bool:
        return self.approval_id is not None


def update(session: Session, actor: Actor, *, today: date, **data: object) -> MilestoneChange:
    inp = validate(MilestoneUpdate, data, UPDATE_HINT)
    ms = reachable.milestone(session, actor, inp.id)
    study = ms.study
    if (
        inp.forecast is None
        and inp.status is None
        and inp.actual is None
        and inp.count is None
        and not inp.unpin
    ):
        raise UserError("Nothing to change.", UPDATE_HINT)
    if inp.unpin and not is_sponsor(actor, study):
        raise Forbidden("Only the sponsor's staff can hand a status back to the forecast.")
    if ms.status in (MilestoneStatus.APPROVED, MilestoneStatus.CANCELLED):
        raise UserError(f"Milestone #{ms.id} is {ms.status.value}; it can no longer change.")
    if ms.status == MilestoneStatus.DONE:
        raise UserError(
            f"Milestone #{ms.id}'s completion is awaiting approval.",
            "Wait for the sponsor's decision.",
        )
    status = inp.status or (MilestoneStatus.DONE if inp.actual else None)
    if inp.forecast is not None and inp.forecast < today:
        raise UserError(
            f"The forecast {inp.forecast} is in the past.",
            "A forecast is when you now expect it; use `done actual:DATE` if it happened.",
            field="forecast",
        )
    if inp.actual is not None and inp.actual > today:
        raise UserError(
            f"The actual date {inp.actual} is in the future.",
            "Report completion when it has happened; use `forecast:` for plans.",
            field="actual",
        )
    if status == MilestoneStatus.APPROVED:
        raise UserError("Milestones are approved by the sponsor's Approve button, not by status.")
    if inp.actual is not None and status != MilestoneStatus.DONE:
        raise UserError("`actual:` only goes with `done`.", UPDATE_HINT)

    before = audit.snapshot(ms, *FIELDS)
    from_status = ms.status
    if inp.forecast is not None:
        ms.forecast_date = inp.forecast
    if inp.count is not None:
        ms.target_count = inp.count
    if inp.unpin:
        ms.status_pinned = False
    if status in (MilestoneStatus.PLANNED, MilestoneStatus.AT_RISK):
        # A status set by hand is a person's judgement, not the forecast's; the sponsor's
        # is pinned: the enrolment forecast no longer changes it.
        ms.risk_reason = None
        ms.status_pinned = ms.status_pinned or is_sponsor(actor, study)
    waits = False
    if status == MilestoneStatus.DONE:
        ms.actual_date = inp.actual or today
        waits = needs_approval(actor, study, ms.org_id)
        ms.status = MilestoneStatus.DONE if waits else MilestoneStatus.APPROVED
    elif status is not None:
        ms.status = status
    session.flush()
    audit.record(
        session,
        actor,
        "milestone.update",
        "milestone",
        ms.id,
        study_id=study.id,
        before=before,
        after=audit.snapshot(ms, *FIELDS),
    )
    approval_id = None
    if waits:
        approval_id = approvals.request(
            session,
            actor,
            subject_type=SubjectType.MILESTONE,
            subject_id=ms.id,
            study_id=study.id,
            org_id=ms.org_id or study.sponsor_org_id,
            summary={
                "kind": "milestone_done",
                "milestone": ms.name,
                "from_status": from_status.value,
                "actual": ms.actual_date.isoformat() if ms.actual_date else None,
                "planned": ms.planned_date.isoformat(),
                "study": study.code,
            },
        ).id
    return MilestoneChange(ms, approval_id)


def is_late(ms: Milestone, today: date) -> bool:
    if ms.status in (MilestoneStatus.APPROVED, MilestoneStatus.DONE, MilestoneStatus.CANCELLED):
        return False
    return (ms.forecast_date or ms.planned_date) < today or (
        ms.forecast_date is not None and ms.forecast_date > ms.planned_date
    )


OPEN = (MilestoneStatus.PLANNED, MilestoneStatus.AT_RISK)


def list_for(
    session: Session,
    audience: Audience,
    *,
    today: date,
    open_only: bool = False,
    late_only: bool = False,
    org_id: int | None = None,
    limit: int = 200,
) -> list[Milestone]:
    """Milestones the audience may see; `org_id` narrows to one organisation's (never
    widens: the audience's filter still applies)."""
    stmt = select(Milestone).where(milestone_filter(audience))
    if org_id is not None:
        stmt = stmt.where(Milestone.org_id == org_id)
    if open_only or late_only:
        stmt = stmt.where(Milestone.status.in_(OPEN))
    if late_only:
        stmt = stmt.where(
            or_(
                and_(Milestone.forecast_date.is_(None), Milestone.planned_date < today),
                Milestone.forecast_date < today,
                Milestone.forecast_date > Milestone.planned_date,
            )
        )
    stmt = stmt.order_by(Milestone.planned_date, Milestone.id).limit(limit)
    return list(session.scalars(stmt))
