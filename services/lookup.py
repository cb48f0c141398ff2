"""Find named things or raise a NotFound whose message says what exists.

The NotFound names the field it is about by the name every service input uses for it
(`study`, `org`, `kpi`), so a form can show it next to that field.
"""

from __future__ import annotations

import difflib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.services.errors import Msg, NotFound, UserError, msg
from crobot.services.kpi_catalog import normalise_key
from crobot.storage.models import (
    AudienceKind,
    ChannelLink,
    KpiDefinition,
    Organization,
    Study,
    StudyVendor,
)


def _suggest(word: str, options: list[str], *, own: bool = False) -> Msg:
    """Names people stored (study codes, organisation names) are values; crobot's `own`
    words (the shipped KPI keys) are wording."""
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    if close:
        return _names("Did you mean {}?", " or ", close, own)
    if options and len(options) <= 12:
        return _names("Known: {}.", ", ", sorted(options), own)
    return msg("")


def _names(sentence: str, sep: str, names: list[str], own: bool) -> Msg:
    if own:
        return msg(sentence.format(sep.join(f"`{n}`" for n in names)))
    return msg(sentence.format(sep.join("`{}`" for _ in names)), *names)


def study_by_code(session: Session, code: str) -> Study:
    study = session.scalars(select(Study).where(func.upper(Study.code) == code.upper())).first()
    if study is None:
        codes = list(session.scalars(select(Study.code).limit(200)))
        raise NotFound(
            msg("There is no study `{}`.", code), _suggest(code.upper(), codes), field="study"
        )
    return study


def org_by_name(session: Session, name: str) -> Organization:
    org = session.scalars(
        select(Organization).where(func.lower(Organization.name) == name.lower())
    ).first()
    if org is None:
        names = list(session.scalars(select(Organization.name).limit(200)))
        raise NotFound(
            msg("There is no organisation `{}`.", name), _suggest(name, names), field="org"
        )
    return org


def kpi_by_key(session: Session, raw: str) -> KpiDefinition:
    key = normalise_key(raw)
    kpi = session.scalars(select(KpiDefinition).where(KpiDefinition.key == key)).first()
    if kpi is None:
        keys = list(session.scalars(select(KpiDefinition.key)))
        hint = _suggest(key, keys, own=True)
        raise NotFound(msg("There is no KPI `{}`.", raw), hint, field="kpi")
    return kpi


def vendor_org_ids(session: Session, study_id: int) -> set[int]:
    return set(session.scalars(select(StudyVendor.org_id).where(StudyVendor.study_id == study_id)))


def channel_link(session: Session, team_id: str, channel_id: str) -> ChannelLink | None:
    return session.scalars(
        select(ChannelLink).where(
            ChannelLink.team_id == team_id, ChannelLink.channel_id == channel_id
        )
    ).first()


def study_by_id(session: Session, study_id: int) -> Study:
    """A study a stored row points to (e.g. a channel link's); gone means deleted meanwhile."""
    study = session.get(Study, study_id)
    if study is None:
        raise UserError("That study no longer exists.", field="study")
    return study


def channel_link_by_id(session: Session, link_id: int) -> ChannelLink:
    link = session.get(ChannelLink, link_id)
    if link is None:
        raise UserError("This channel is no longer linked.")
    return link


def kpi_definitions(session: Session) -> list[KpiDefinition]:
    """The KPI catalogue, by key."""
    return list(session.scalars(select(KpiDefinition).order_by(KpiDefinition.key)))


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


def vendor_channel(session: Session, study_id: int, org_id: int) -> ChannelLink | None:
    """The vendor's own channel of the study: its first link with audience `vendor:<org>`.

    Never a joint channel (not even `joint:<org>`, which shows approved data only) and
    never another vendor's: what is said there may concern the vendor's pending and
    rejected rows, which only the vendor's own audience (and the sponsor) may see.
    """
    return session.scalars(
        select(ChannelLink)
        .where(
            ChannelLink.study_id == study_id,
            ChannelLink.audience == AudienceKind.VENDOR,
            ChannelLink.audience_org_id == org_id,
        )
        .order_by(ChannelLink.id)
        .limit(1)
    ).first()
