"""Which Slack workspace an outbox row posts into (several workspaces: whose token).

A channel is linked once, by its channel id, from the workspace that linked it; that
workspace's copy of crobot posts there (a Slack Connect channel shared with a vendor's
workspace still gets each digest once, from the linking side). A direct message goes
through the person's own workspace.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crobot.services import anchors, approval_log, enrolment, escalations, qtl, scorecard_posts
from crobot.services.approval_log import DM, Work
from crobot.services.lookup import sponsor_channels
from crobot.storage.models import (
    AudienceKind,
    ChannelLink,
    DigestRun,
    Organization,
    Study,
    StudyVendor,
)

GONE_PREFIX = "gone:"  # `gone:<team>`: the sponsor told that crobot left that workspace


def channel_team(session: Session, channel_id: str) -> str | None:
    """The workspace that linked `channel_id` (the first link, should there be two)."""
    return session.scalars(
        select(ChannelLink.team_id)
        .where(ChannelLink.channel_id == channel_id)
        .order_by(ChannelLink.id)
        .limit(1)
    ).first()


def gone_channel(session: Session, team_id: str, study_id: int) -> ChannelLink | None:
    """Where the sponsor of `study_id` hears that crobot left `team_id`: the study's first
    sponsor channel linked from another workspace (the one that left cannot be posted to)."""
    return session.scalars(
        select(ChannelLink)
        .where(
            ChannelLink.study_id == study_id,
            ChannelLink.audience == AudienceKind.SPONSOR,
            ChannelLink.team_id != team_id,
        )
        .order_by(ChannelLink.id)
        .limit(1)
    ).first()


def studies_in(session: Session, team_id: str) -> list[int]:
    """Studies a workspace takes part in: channels linked from it, or an organisation
    (sponsor or vendor of the study) that registered it."""
    orgs = select(Organization.id).where(Organization.slack_team_id == team_id)
    stmt = (
        select(Study.id)
        .outerjoin(StudyVendor, StudyVendor.study_id == Study.id)
        .where(
            or_(
                Study.id.in_(select(ChannelLink.study_id).where(ChannelLink.team_id == team_id)),
                Study.sponsor_org_id.in_(orgs),
                StudyVendor.org_id.in_(orgs),
            )
        )
        .distinct()
        .order_by(Study.id)
    )
    return list(session.scalars(stmt))


def gone_key(event_id: str, study_id: int) -> str:
    return f"{study_id}:{event_id}"[:80]


def gone_study(period_key: str) -> int:
    return int(period_key.partition(":")[0])


def target_team(session: Session, run: DigestRun) -> str | None:
    """The workspace whose bot posts `run`, or None when it names no place any more."""
    kind, _, rest = run.target.partition(":")
    if kind in ("link", "notice", scorecard_posts.TARGET_PREFIX.rstrip(":")):
        link = session.get(ChannelLink, int(rest))
        return link.team_id if link is not None else None
    if kind == "thread":
        parent = session.get(DigestRun, int(rest))
        link = session.get(ChannelLink, parent.channel_link_id or 0) if parent else None
        return link.team_id if link is not None else None
    if kind == "dm":
        return rest.partition(":")[0] or None
    if kind == "approval":
        work = Work.parse(run.period_key)
        if work.kind == DM:
            team, _ = approval_log.person_of(work.person)
            return team
        return channel_team(session, work.channel)
    if kind == anchors.TARGET_PREFIX.rstrip(":"):
        channels = sponsor_channels(session, int(rest))  # as `anchors.head_for` picks
        return channel_team(session, channels[0]) if channels else None
    if kind == enrolment.TARGET_PREFIX.rstrip(":"):
        # period key `<audit seq>:<channel>` (services/enrolment.py): that channel's side.
        return channel_team(session, run.period_key.partition(":")[2])
    if kind in (qtl.BREACH_PREFIX.rstrip(":"), qtl.WARN_PREFIX.rstrip(":")):
        # the channel named in the period key (services/qtl.py): that channel's side.
        return channel_team(session, qtl.channel_of(run.target, run.period_key))
    if kind == escalations.TARGET_PREFIX.rstrip(":"):
        # a lead's DM goes through the lead's workspace, a post through the channel's.
        lead = escalations.dm_of(run.period_key)
        if lead is not None:
            return lead[0]
        return channel_team(session, escalations.channel_of(run.period_key) or "")
    if kind == GONE_PREFIX.rstrip(":"):
        link = gone_channel(session, rest, gone_study(run.period_key))
        return link.team_id if link is not None else None
    return None
