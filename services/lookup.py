"""Find named things or raise a NotFound whose message says what exists.

The NotFound names the field it is about by the name every service input uses for it
(`study`, `org`, `kpi`), so a form can show it next to that field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crobot.services.actor import Actor
from crobot.services.errors import Msg, NotFound, UserError, msg
from crobot.services.kpi_catalog import normalise_key
from crobot.services.permissions import is_sponsor, is_vendor, reportable_kinds, require_known
from crobot.storage.models import (
    AudienceKind,
    ChannelLink,
    KpiDefinition,
    Organization,
    Person,
    Study,
    StudyVendor,
)

_USER_ID = re.compile(r"[UW][A-Z0-9]{1,31}")


def suggest_names(word: str, options: list[str], *, own: bool = False) -> Msg:
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
    """Any study by its code (the operator's CLI); a person names one with `study_named_by`."""
    study = session.scalars(select(Study).where(func.upper(Study.code) == code.upper())).first()
    if study is None:
        codes = list(session.scalars(select(Study.code).limit(200)))
        raise NotFound(
            msg("There is no study `{}`.", code), suggest_names(code.upper(), codes), field="study"
        )
    return study


def org_studies(session: Session, org_id: int) -> list[Study]:
    """The studies an organisation is on, as their sponsor or as a vendor, by code."""
    on_study = select(StudyVendor.study_id).where(StudyVendor.org_id == org_id)
    return list(
        session.scalars(
            select(Study)
            .where(or_(Study.sponsor_org_id == org_id, Study.id.in_(on_study)))
            .order_by(Study.code)
        )
    )


def study_named_by(
    session: Session, actor: Actor, code: str, *, channel_study_id: int | None = None
) -> Study:
    """The study a person names: one they are on, or the study of the channel they are in.

    Any other study is answered like one that does not exist, and only the person's own
    study codes are suggested: nobody learns which other studies crobot holds.
    """
    require_known(actor)
    study = session.scalars(select(Study).where(func.upper(Study.code) == code.upper())).first()
    if study is not None and (
        actor.trusted
        or study.id == channel_study_id
        or is_sponsor(actor, study)
        or is_vendor(actor, vendor_org_ids(session, study.id))
    ):
        return study
    mine = org_studies(session, actor.org_id) if actor.org_id is not None else []
    raise NotFound(
        msg("There is no study `{}` that you are on.", code),
        suggest_names(code.upper(), [s.code for s in mine]),
        field="study",
    )


def org_by_name(session: Session, name: str) -> Organization:
    org = session.scalars(
        select(Organization).where(func.lower(Organization.name) == name.lower())
    ).first()
    if org is None:
        names = list(session.scalars(select(Organization.name).limit(200)))
        raise NotFound(
            msg("There is no organisation `{}`.", name), suggest_names(name, names), field="org"
        )
    return org


def kpi_by_key(session: Session, raw: str) -> KpiDefinition:
    key = normalise_key(raw)
    kpi = session.scalars(select(KpiDefinition).where(KpiDefinition.key == key)).first()
    if kpi is None:
        keys = list(session.scalars(select(KpiDefinition.key)))
        hint = suggest_names(key, keys, own=True)
        raise NotFound(msg("There is no KPI `{}`.", raw), hint, field="kpi")
    return kpi


def vendor_org_ids(session: Session, study_id: int) -> set[int]:
    return set(session.scalars(select(StudyVendor.org_id).where(StudyVendor.study_id == study_id)))


def study_org_ids(session: Session, study: Study) -> set[int]:
    """The organisations on a study: its sponsor and its vendors."""
    return vendor_org_ids(session, study.id) | {study.sponsor_org_id}


def person_named(
    session: Session, team_id: str, user_id: str, org_ids: Collection[int], *, field: str
) -> Person:
    """The person an `@mention` or a form's user picker names; Slack gives only a user id.

    It is the person (team_id, user_id), `team_id` being the workspace it was typed in.
    Failing that (a Slack Connect channel, where the mentioned user belongs to another
    workspace), the one person with that user id in a workspace registered to one of
    `org_ids` (the study's organisations). Never a guess: nobody, or several, is an error.
    """
    own = session.scalars(
        select(Person).where(Person.team_id == team_id, Person.slack_user_id == user_id)
    ).first()
    if own is not None:
        return own
    registered = select(Organization.slack_team_id).where(
        Organization.id.in_(org_ids), Organization.slack_team_id.is_not(None)
    )
    found = session.scalars(
        select(Person)
        .where(
            Person.slack_user_id == user_id,
            Person.team_id.in_(registered),
            Person.org_id.in_(org_ids),
        )
        .limit(2)
    ).all()
    if len(found) == 1:
        return found[0]
    # A well-formed id is shown as a mention; anything else as the value it is.
    who = msg(f"<@{user_id}>") if _USER_ID.fullmatch(user_id) else msg("`{}`", user_id)
    raise NotFound(
        msg("{} is not registered with crobot in this workspace or the study's.", who),
        "Ask a crobot admin to add them (`crobot person add`); a Slack Connect partner "
        "registers its workspace (`crobot org add … --slack-team`).",
        field=field,
    )


def channel_link(session: Session, team_id: str, channel_id: str) -> ChannelLink | None:
    """The channel's link. A channel is linked once, by its id, whichever workspace it is
    seen from: a Slack Connect channel has the same id in every workspace sharing it, so a
    command from the vendor's side of a channel the sponsor linked finds that link."""
    own = session.scalars(
        select(ChannelLink).where(
            ChannelLink.team_id == team_id, ChannelLink.channel_id == channel_id
        )
    ).first()
    if own is not None:
        return own
    return session.scalars(
        select(ChannelLink)
        .where(ChannelLink.channel_id == channel_id)
        .order_by(ChannelLink.id)
        .limit(1)
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


def reportable_kpis(session: Session, actor: Actor) -> list[KpiDefinition]:
    """The KPIs `actor`'s organisation reports (services/permissions.py
    `reportable_kinds`), not retired, by key: what a form offers and `/cro kpi list`
    shows a vendor."""
    stmt = select(KpiDefinition).where(KpiDefinition.retired_at.is_(None))
    kinds = reportable_kinds(actor)
    if kinds is not None:
        stmt = stmt.where(KpiDefinition.kind.in_(sorted(kinds)))
    return list(session.scalars(stmt.order_by(KpiDefinition.key)))


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
