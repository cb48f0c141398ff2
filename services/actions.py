"""Action items: add, complete, list for an audience (mine, by owner, overdue)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import audit, reachable
from crobot.services.actor import Actor, UserKey
from crobot.services.errors import Forbidden, UserError, msg, validate
from crobot.services.lookup import person_named, study_named_by, vendor_org_ids
from crobot.services.permissions import is_sponsor, require_member
from crobot.services.visibility import Audience, action_filter
from crobot.storage.models import ActionItem, ActionStatus, Priority, utcnow

FIELDS = (
    "title",
    "owner_team_id",
    "owner_user_id",
    "owner_org_id",
    "due_date",
    "priority",
    "status",
    "shared",
)
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
    study = study_named_by(session, actor, inp.study)
    vendors = vendor_org_ids(session, study.id)
    require_member(actor, study, vendors)
    if inp.due < today and not allow_past:
        raise UserError(
            f"The due date {inp.due} is in the past.", "Give a date from today on.", field="due"
        )
    # A bare user id means the person in the requester's workspace (`person_named`).
    owner = person_named(
        session,
        inp.owner_team_id or actor.team_id,
        inp.owner_user_id,
        vendors | {study.sponsor_org_id},
        field="owner_user_id",
    )
    if not is_sponsor(actor, study) and owner.org_id not in (actor.org_id, study.sponsor_org_id):
        raise Forbidden(
            "Vendors can assign actions to their own people or to the sponsor.",
            field="owner_user_id",
        )
    if owner.org_id not in vendors and owner.org_id != study.sponsor_org_id:
        raise UserError(
            # The id matched the pattern above, so the mention is safe wording.
            msg(f"<@{inp.owner_user_id}> is not on study {{}}.", study.code),
            field="owner_user_id",
        )
    if inp.milestone_id is not None:
        # Work is linked only to a milestone its author may change: never another
        # organisation's, and the answer does not tell whether that id exists.
        reachable.milestone(
            session, actor, inp.milestone_id, to="link an action to", study_id=study.id
        )
    item = ActionItem(
        study_id=study.id,
        title=inp.title,
        owner_team_id=owner.team_id,
        owner_user_id=owner.slack_user_id,
        owner_org_id=owner.org_id,
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
    item = reachable.action(session, actor, action_id)
    study = item.study
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
    owner: UserKey | None = None,
    overdue: bool = False,
    include_closed: bool = False,
    limit: int = 200,
) -> list[ActionItem]:
    stmt = select(ActionItem).where(action_filter(audience))
    if not include_closed or overdue:
        stmt = stmt.where(ActionItem.status == ActionStatus.OPEN)
    if owner is not None:
        team_id, user_id = owner
        stmt = stmt.where(ActionItem.owner_team_id == team_id, ActionItem.owner_user_id == user_id)
    if overdue:
        stmt = stmt.where(ActionItem.due_date < today)
    stmt = stmt.order_by(ActionItem.due_date, ActionItem.id).limit(limit)
    return list(session.scalars(stmt))
