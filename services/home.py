"""A person's own work across their studies: the App Home view model and form pickers.

Every list is read through the person's audience (services/visibility.py), so the Home
tab never shows a row the person could not see with `/cro` in their own channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import actions, approval_log, milestones, qtl, signatures
from crobot.services.actor import Actor
from crobot.services.approval_log import ApprovalRecord
from crobot.services.lookup import org_studies, vendor_org_ids
from crobot.services.permissions import is_approver, require_known
from crobot.services.visibility import Audience, Scope, approval_filter, audience_for_person
from crobot.storage.models import (
    ActionItem,
    Approval,
    ApprovalState,
    Milestone,
    Organization,
    Study,
)

MAX_ITEMS = 20  # per section: Home views hold at most 100 blocks
MAX_DECIDED = 5  # recent decisions shown, each with its signature manifest


@dataclass(frozen=True)
class MyStudy:
    study: Study
    audience: Audience


def studies_for(session: Session, actor: Actor) -> list[MyStudy]:
    """Studies the person belongs to (sponsor staff or a vendor on it), by code."""
    if actor.person is None:
        return []
    out = []
    for study in org_studies(session, actor.person.org_id):
        aud = audience_for_person(actor, study, vendor_org_ids(session, study.id))
        if aud.scope in (Scope.SPONSOR, Scope.VENDOR):
            out.append(MyStudy(study, aud))
    return out


def orgs_for(session: Session, studies: list[MyStudy]) -> list[Organization]:
    """Organisations the person may enter items for on these studies, by name: on a study
    they are sponsor staff of, the sponsor and every vendor; on a vendor's study, only
    their own organisation."""
    ids: set[int] = set()
    for my in studies:
        if my.audience.scope == Scope.SPONSOR:
            ids.add(my.study.sponsor_org_id)
            ids |= vendor_org_ids(session, my.study.id)
        elif my.audience.org_id is not None:
            ids.add(my.audience.org_id)
    if not ids:
        return []
    return list(
        session.scalars(
            select(Organization).where(Organization.id.in_(ids)).order_by(Organization.name)
        )
    )


@dataclass(frozen=True)
class StudyLine:
    study: Study
    next_milestone: Milestone | None


@dataclass
class HomeModel:
    today: date
    open_actions: list[ActionItem] = field(default_factory=list)
    overdue_actions: list[ActionItem] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)
    decided: list[ApprovalRecord] = field(default_factory=list)  # newest first
    studies: list[StudyLine] = field(default_factory=list)
    breaches: list[qtl.OpenBreach] = field(default_factory=list)  # open, of their studies
    signer: bool = False  # an approver on one of their studies: may set a signing PIN
    has_pin: bool = False


def home_for(session: Session, actor: Actor, *, today: date) -> HomeModel:
    """The person's Home; someone crobot does not know gets NotRegistered instead."""
    require_known(actor)
    model = HomeModel(today=today)
    for my in studies_for(session, actor):
        mine = actions.list_for(session, my.audience, today=today, owner=actor.key, limit=MAX_ITEMS)
        model.overdue_actions += [a for a in mine if a.due_date < today]
        model.open_actions += [a for a in mine if a.due_date >= today]
        model.decided += approval_log.records(
            session,
            approval_filter(my.audience),
            Approval.state != ApprovalState.PENDING,
            limit=MAX_DECIDED,
            newest_first=True,
        )
        if is_approver(actor, my.study):
            model.signer = True
            # Under four eyes one's own submissions wait for someone else, not for you.
            not_own = [Approval.requested_by != actor.label] if my.study.four_eyes else []
            model.approvals += approval_log.records(
                session,
                approval_filter(my.audience),
                Approval.state == ApprovalState.PENDING,
                *not_own,
                limit=MAX_ITEMS,
            )
        model.breaches += qtl.open_breaches(session, my.audience)
        upcoming = milestones.list_for(session, my.audience, today=today, open_only=True, limit=1)
        model.studies.append(StudyLine(my.study, upcoming[0] if upcoming else None))
    model.overdue_actions.sort(key=lambda a: (a.due_date, a.id))
    model.open_actions.sort(key=lambda a: (a.due_date, a.id))
    del model.overdue_actions[MAX_ITEMS:]
    del model.open_actions[MAX_ITEMS:]
    del model.approvals[MAX_ITEMS:]
    del model.breaches[MAX_ITEMS:]
    model.decided.sort(key=lambda r: (r.decided_at or r.requested_at, r.id), reverse=True)
    del model.decided[MAX_DECIDED:]
    model.has_pin = model.signer and signatures.has_pin(session, actor)
    return model
