"""Action items: add, complete, list for an audience (mine, by owner, overdue)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.errors import Forbidden, NotFound, UserError, msg, validate
from crobot.services.lookup import study_by_code, vendor_org_ids
from crobot.services.permissions import is_sponsor, require_member
from crobot.services.visibility import Audience, action_filter
from crobot.storage.models import ActionItem, ActionStatus, Milestone, Person, Priority, utcnow

FIELDS = ("title", "owner_user_id", "owner_org_id", "due_date", "priority", "status", "shared")
ADD_HINT = 'Write it as `/cro action add STUDY "Title" @owner due:YYYY-MM-DD [priority:high]`.'


class ActionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    study: str
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    owner_user_id: Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{1,31}$")]
    owner_team_id: str | None = None
    due: date
    priority: Priority = Priority.NORMAL
    milestone_id: int | None = None
    shared: bool = False


def add(
    session: Session, actor: Actor, *, today: date, allow_past: bool = False, **data: object
) -> ActionItem:
    inp = validate(ActionCreate, data, ADD_HINT)
    study = study_by_code(session, inp.study)
    vendors = vendor_org_ids(session, study.id)
    require_member(actor, study, vendors)
    if inp.due < today and not allow_past:
        raise UserError(
            f"The due date {inp.due} is in the past.", "Give a date from today on.", field="due"
        )
    owner_team = inp.owner_team_id or actor.team_id
    owner = (
        session.scalars(
            select(Person).where(
                Person.team_id == owner_team, Person.slack_user_id == inp.owner_user_id
            )
        ).first()
        or session.scalars(select(Person).where(Person.slack_user_id == inp.owner_user_id)).first()
    )
    owner_org = owner.org_id if owner else actor.org_id
    if not is_sponsor(actor, study) and owner_org not in (actor.org_id, study.sponsor_org_id):
        raise Forbidden(
            "Vendors can assign actions to their own people or to the sponsor.",
            field="owner_user_id",
        )
    if owner_org is not None and owner_org not in vendors and owner_org != study.sponsor_org_id:
        raise UserError(
            # The id matched the pattern above, so the mention is safe wording.
            msg(f"<@{inp.owner_user_id}> is not on study {{}}.", study.code),
            field="owner_user_id",
        )
    if inp.milestone_id is not None:
        ms = session.get(Milestone, inp.milestone_id)
        if ms is None or ms.study_id != study.id:
            raise NotFound(
                msg(f"There is no milestone #{inp.milestone_id} on {{}}.", study.code),
                field="milestone_id",
            )
    item = ActionItem(
        study_id=study.id,
        title=inp.title,
        owner_team_id=owner.team_id if owner else owner_team,
        owner_user_id=inp.owner_user_id,
        owner_org_id=owner_org,
        due_date=inp.due,
        priority=inp.priority,
        milestone_id=inp.milestone_id,
        shared=inp.shared,
        created_by=actor.label,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        actor,
        "action.create",
        "action_item",
        item.id,
        study_id=study.id,
        after=audit.snapshot(item, *FIELDS),
    )
    return item


def complete(session: Session, actor: Actor, action_id: int) -> ActionItem:
    item = session.get(ActionItem, action_id)
    if item is None:
        raise NotFound(f"There is no action #{action_id}.", "`/cro action list` shows the IDs.")
    study = item.study
    require_member(actor, study, vendor_org_ids(session, study.id))
    own = actor.user_id == item.owner_user_id
    if not (own or is_sponsor(actor, study) or actor.org_id == item.owner_org_id):
        raise Forbidden(f"Action #{item.id} belongs to another organisation.")
    if item.status != ActionStatus.OPEN:
        raise UserError(f"Action #{item.id} is already {item.status.value}.")
    before = audit.snapshot(item, *FIELDS)
    item.status = ActionStatus.DONE
    item.completed_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "action.done",
        "action_item",
        item.id,
        study_id=study.id,
        before=before,
        after=audit.snapshot(item, *FIELDS),
    )
    return item


def list_for(
    session: Session,
    audience: Audience,
    *,
    today: date,
    owner_user_id: str | None = None,
    overdue: bool = False,
    include_closed: bool = False,
    limit: int = 200,
) -> list[ActionItem]:
    stmt = select(ActionItem).where(action_filter(audience))
    if not include_closed or overdue:
        stmt = stmt.where(ActionItem.status == ActionStatus.OPEN)
    if owner_user_id:
        stmt = stmt.where(ActionItem.owner_user_id == owner_user_id)
    if overdue:
        stmt = stmt.where(ActionItem.due_date < today)
    stmt = stmt.order_by(ActionItem.due_date, ActionItem.id).limit(limit)
    return list(session.scalars(stmt))
