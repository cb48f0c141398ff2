"""Find named things or raise a NotFound whose message says what exists."""

from __future__ import annotations

import difflib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.services.errors import NotFound
from crobot.services.kpi_catalog import normalise_key
from crobot.storage.models import (
    AudienceKind,
    ChannelLink,
    KpiDefinition,
    Organization,
    Study,
    StudyVendor,
)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    if close:
        return "Did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
    if options and len(options) <= 12:
        return "Known: " + ", ".join(f"`{o}`" for o in sorted(options)) + "."
    return ""


def study_by_code(session: Session, code: str) -> Study:
    study = session.scalars(select(Study).where(func.upper(Study.code) == code.upper())).first()
    if study is None:
        codes = list(session.scalars(select(Study.code).limit(200)))
        raise NotFound(f"There is no study `{code}`.", _suggest(code.upper(), codes))
    return study


def org_by_name(session: Session, name: str) -> Organization:
    org = session.scalars(
        select(Organization).where(func.lower(Organization.name) == name.lower())
    ).first()
    if org is None:
        names = list(session.scalars(select(Organization.name).limit(200)))
        raise NotFound(f"There is no organisation `{name}`.", _suggest(name, names))
    return org


def kpi_by_key(session: Session, raw: str) -> KpiDefinition:
    key = normalise_key(raw)
    kpi = session.scalars(select(KpiDefinition).where(KpiDefinition.key == key)).first()
    if kpi is None:
        keys = list(session.scalars(select(KpiDefinition.key)))
        raise NotFound(f"There is no KPI `{raw}`.", _suggest(key, keys))
    return kpi


def vendor_org_ids(session: Session, study_id: int) -> set[int]:
    return set(session.scalars(select(StudyVendor.org_id).where(StudyVendor.study_id == study_id)))


def channel_link(session: Session, team_id: str, channel_id: str) -> ChannelLink | None:
    return session.scalars(
        select(ChannelLink).where(
            ChannelLink.team_id == team_id, ChannelLink.channel_id == channel_id
        )
    ).first()


def sponsor_channels(session: Session, study_id: int, *, team_id: str | None = None) -> list[str]:
    """The study's sponsor channels: the channel ids of its links with audience `sponsor`.

    Only the sponsor's internal channels count (never a vendor's or a joint channel, which
    must not see pending submissions), oldest link first, so the first is the study's
    primary sponsor channel. `team_id` keeps the channels of one workspace (what a bot in
    that workspace can post to). Approval requests go to all of them; a failed digest's
    notice goes to the first one in the failed channel's workspace.
    """
    stmt = select(ChannelLink.channel_id).where(
        ChannelLink.study_id == study_id, ChannelLink.audience == AudienceKind.SPONSOR
    )
    if team_id is not None:
        stmt = stmt.where(ChannelLink.team_id == team_id)
    return list(session.scalars(stmt.order_by(ChannelLink.id)))
