"""The visibility rule: what an audience (a person, or a channel) may see of a study.

This module is the only place the rule lives. Every listing query — slash-command
replies, digests, exports scoped to an audience — builds its WHERE clause with
`milestone_filter`, `action_filter`, `kpi_filter`, `site_filter` or `approval_filter`.

Sites follow the organisation that manages them: the sponsor sees every site, a vendor
its own, a joint:X channel X's and the sponsor's own sites, a multi-vendor joint channel
the sponsor's own sites; nobody else any. Outside the sponsor's view only approved
enrolment reports count (`site_report_filter`).

- sponsor: everything of the study, including pending and rejected submissions.
- vendor:X: X's own rows (any approval state) and items marked shared. Never another
  vendor's rows, and never the sponsor's own rows unless the sponsor shared them.
- joint:X (the sponsor and one vendor): approved data only — X's items, shared items,
  and the sponsor's study-level KPI values; no milestone whose completion awaits approval.
- joint (a channel whose audience includes more than one vendor): approved, shared data
  only — shared milestones and actions, the sponsor's study-level KPI values. Nobody's
  own items, because everyone in the channel would see them.
- public (someone we do not know): shared study-level items only, approved only.

Vendor scorecards follow the same scopes (`scorecard_orgs`): the sponsor sees every
vendor's, a vendor its own, a joint channel none.

A person in a channel sees the narrower of their own view and the channel's
(`narrowest`), so `/cro` and the digest give the same view for the same reader there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from crobot.services.actor import Actor
from crobot.services.permissions import is_sponsor_staff
from crobot.storage.models import (
    ActionItem,
    Approval,
    ApprovalState,
    AudienceKind,
    ChannelLink,
    KpiUpdate,
    Milestone,
    MilestoneStatus,
    Site,
    SiteReport,
    Study,
)


class Scope(enum.StrEnum):
    SPONSOR = "sponsor"
    VENDOR = "vendor"
    JOINT = "joint"
    PUBLIC = "public"


_RANK = {Scope.SPONSOR: 3, Scope.JOINT: 2, Scope.VENDOR: 1, Scope.PUBLIC: 0}


@dataclass(frozen=True)
class Audience:
    study_id: int
    scope: Scope
    org_id: int | None = None  # the vendor of a vendor scope; optional vendor of a joint one
    sponsor_org_id: int | None = None

    @property
    def label(self) -> str:
        return f"{self.scope.value}:{self.org_id}" if self.org_id else self.scope.value


def audience_for_person(actor: Actor, study: Study, vendor_org_ids: set[int]) -> Audience:
    """A person's own audience for one study (their org and role decide)."""
    person = actor.person
    if person is not None:
        if is_sponsor_staff(person, study):
            return Audience(study.id, Scope.SPONSOR, None, study.sponsor_org_id)
        if person.org_id in vendor_org_ids:
            return Audience(study.id, Scope.VENDOR, person.org_id, study.sponsor_org_id)
    return Audience(study.id, Scope.PUBLIC, None, study.sponsor_org_id)


def audience_for_channel(link: ChannelLink) -> Audience:
    scope = {
        AudienceKind.SPONSOR: Scope.SPONSOR,
        AudienceKind.VENDOR: Scope.VENDOR,
        AudienceKind.JOINT: Scope.JOINT,
    }[link.audience]
    return Audience(link.study_id, scope, link.audience_org_id, link.study.sponsor_org_id)


def narrowest(person: Audience, channel: Audience | None) -> Audience:
    """What may be shown to this person in this channel: never more than either allows.

    Ephemeral replies still respect the channel, so that a screen-share or a forwarded
    message in a vendor channel cannot carry another vendor's rows.
    """
    if channel is None or channel.study_id != person.study_id:
        return person
    if person.scope == Scope.SPONSOR:
        return channel
    if person.scope == Scope.VENDOR:
        if channel.scope == Scope.VENDOR and channel.org_id != person.org_id:
            return Audience(person.study_id, Scope.PUBLIC, None, person.sponsor_org_id)
        if channel.scope == Scope.JOINT:
            if channel.org_id in (None, person.org_id):
                return channel  # joint:X for X itself, or the multi-vendor joint view
            return Audience(person.study_id, Scope.PUBLIC, None, person.sponsor_org_id)
        return person
    return person if _RANK[person.scope] <= _RANK[channel.scope] else channel


def _joint_vendor(org_col: InstrumentedAttribute[int | None], aud: Audience) -> ColumnElement[bool]:
    """The one vendor of a joint:X channel; a multi-vendor joint channel has none."""
    return false() if aud.org_id is None else org_col == aud.org_id


def milestone_filter(aud: Audience) -> ColumnElement[bool]:
    base = Milestone.study_id == aud.study_id
    if aud.scope == Scope.SPONSOR:
        return base
    if aud.scope == Scope.VENDOR:
        return and_(base, or_(Milestone.org_id == aud.org_id, Milestone.shared.is_(True)))
    not_pending = Milestone.status != MilestoneStatus.DONE
    if aud.scope == Scope.JOINT:
        return and_(
            base,
            not_pending,
            or_(Milestone.shared.is_(True), _joint_vendor(Milestone.org_id, aud)),
        )
    return and_(base, not_pending, Milestone.shared.is_(True))


def action_filter(aud: Audience) -> ColumnElement[bool]:
    base = ActionItem.study_id == aud.study_id
    if aud.scope == Scope.SPONSOR:
        return base
    if aud.scope == Scope.VENDOR:
        return and_(base, or_(ActionItem.owner_org_id == aud.org_id, ActionItem.shared.is_(True)))
    if aud.scope == Scope.JOINT:
        shown = or_(ActionItem.shared.is_(True), _joint_vendor(ActionItem.owner_org_id, aud))
        return and_(base, shown)
    return and_(base, ActionItem.shared.is_(True))


def kpi_filter(aud: Audience) -> ColumnElement[bool]:
    base = KpiUpdate.study_id == aud.study_id
    if aud.scope == Scope.SPONSOR:
        return base
    if aud.scope == Scope.VENDOR:
        return and_(base, KpiUpdate.org_id == aud.org_id)
    if aud.scope == Scope.JOINT:
        approved = KpiUpdate.approval_state == ApprovalState.APPROVED
        study_level = KpiUpdate.org_id == aud.sponsor_org_id
        return and_(base, approved, or_(study_level, _joint_vendor(KpiUpdate.org_id, aud)))
    return and_(base, false())


def site_filter(aud: Audience) -> ColumnElement[bool]:
    base = Site.study_id == aud.study_id
    if aud.scope == Scope.SPONSOR:
        return base
    if aud.scope == Scope.VENDOR:
        return and_(base, Site.org_id == aud.org_id)
    if aud.scope == Scope.JOINT:
        return and_(base, or_(Site.org_id == aud.sponsor_org_id, _joint_vendor(Site.org_id, aud)))
    return and_(base, false())


def site_report_filter(aud: Audience) -> ColumnElement[bool]:
    """The enrolment reports of the sites an audience sees (join `Site`): all of them for
    the sponsor and the site's own vendor, approved ones for a joint channel."""
    if aud.scope in (Scope.SPONSOR, Scope.VENDOR):
        return site_filter(aud)
    return and_(site_filter(aud), SiteReport.approval_state == ApprovalState.APPROVED)


def approval_filter(aud: Audience) -> ColumnElement[bool]:
    """Pending/decided approvals: the sponsor sees all, a vendor only its own."""
    base = Approval.study_id == aud.study_id
    if aud.scope == Scope.SPONSOR:
        return base
    if aud.scope == Scope.VENDOR:
        return and_(base, Approval.org_id == aud.org_id)
    return and_(base, false())


def is_visible(session: Session, aud: Audience, row: Milestone | ActionItem | KpiUpdate) -> bool:
    """Whether one row may be shown to an audience (e.g. before announcing it in a channel)."""
    if isinstance(row, Milestone):
        stmt = select(Milestone.id).where(Milestone.id == row.id, milestone_filter(aud))
    elif isinstance(row, ActionItem):
        stmt = select(ActionItem.id).where(ActionItem.id == row.id, action_filter(aud))
    else:
        stmt = select(KpiUpdate.id).where(KpiUpdate.id == row.id, kpi_filter(aud))
    return session.scalar(stmt) is not None


def scorecard_orgs(aud: Audience, vendor_org_ids: set[int]) -> set[int]:
    """The vendors whose scorecards an audience may see: every vendor of the study for the
    sponsor, a vendor its own only. A joint channel sees none: a scorecard is computed from
    pending and rejected submissions too."""
    if aud.scope == Scope.SPONSOR:
        return set(vendor_org_ids)
    if aud.scope == Scope.VENDOR and aud.org_id in vendor_org_ids:
        return {aud.org_id}
    return set()
