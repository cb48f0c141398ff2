"""Rows a person names by id (`milestone update 10`, `action done 7`, an Approve click, the
Home tab's Done): found only if the person may see them and may change them.

Every by-id path goes through here, so an id that does not exist, one the person may not
see and one they may see but not change all get the same answer ("There is no milestone
#9999 that you can change."): the answer never tells anyone which ids exist. Checks about
the row's state ("already done") come after, for rows the person may change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services.actor import Actor
from crobot.services.errors import Forbidden, NotFound, msg
from crobot.services.lookup import vendor_org_ids
from crobot.services.permissions import (
    is_sponsor,
    require_approver,
    require_known,
    require_member,
    require_org_write,
)
from crobot.services.visibility import audience_for_person, is_visible
from crobot.storage.models import ActionItem, Approval, Milestone, Study

Row = TypeVar("Row", Milestone, ActionItem)


def _reach(
    session: Session,
    actor: Actor,
    row: Row | None,
    may_change: Callable[[Row, set[int]], None],
    missing: NotFound,
) -> Row:
    require_known(actor)
    if row is None:
        raise missing
    vendors = vendor_org_ids(session, row.study_id)
    if not actor.trusted and not is_visible(
        session, audience_for_person(actor, row.study, vendors), row
    ):
        raise missing
    try:
        may_change(row, vendors)
    except Forbidden:
        raise missing from None
    return row


def milestone(
    session: Session,
    actor: Actor,
    milestone_id: int,
    *,
    to: str = "change",
    study_id: int | None = None,
) -> Milestone:
    """A milestone `actor` may change (its organisation's, or any for the sponsor).

    `to` says what for in the answer ("link an action to"); `study_id` keeps to one study.
    """
    row = session.get(Milestone, milestone_id)
    if row is not None and study_id is not None and row.study_id != study_id:
        row = None
    missing = NotFound(
        msg(f"There is no milestone #{milestone_id} that you can {to}."),
        "`/cro milestone list` shows the milestones you can see.",
        field="milestone_id",
    )

    def may_change(ms: Milestone, vendors: set[int]) -> None:
        require_org_write(actor, ms.study, vendors, ms.org_id)

    return _reach(session, actor, row, may_change, missing)


def action(session: Session, actor: Actor, action_id: int) -> ActionItem:
    """An action `actor` may complete: their own (the same workspace and user), one of
    their organisation's, or any for the sponsor."""
    missing = NotFound(
        msg(f"There is no action #{action_id} that you can change."),
        "`/cro action list` shows the actions you can see.",
    )

    def may_change(item: ActionItem, vendors: set[int]) -> None:
        require_member(actor, item.study, vendors)
        own = actor.key == (item.owner_team_id, item.owner_user_id)
        if not (own or is_sponsor(actor, item.study) or actor.org_id == item.owner_org_id):
            raise Forbidden("not theirs")

    return _reach(session, actor, session.get(ActionItem, action_id), may_change, missing)


def approval(session: Session, actor: Actor, approval_id: int) -> Approval:
    """An approval request `actor` may decide (an approver of its study), locked against a
    concurrent decider. Call it in a write transaction."""
    require_known(actor)
    missing = NotFound(
        msg(f"There is no approval request #{approval_id} that you can decide."),
        "Only the study's approvers decide.",
    )
    stmt = select(Approval).where(Approval.id == approval_id).with_for_update()
    row = session.scalars(stmt).one_or_none()
    if row is None:
        raise missing
    try:
        require_approver(actor, session.get_one(Study, row.study_id))
    except Forbidden:
        raise missing from None
    return row
