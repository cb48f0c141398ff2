"""Organisations, studies, study vendors, people and channel links (admin writes)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import SYSTEM, Actor
from crobot.services.countries import check_country
from crobot.services.errors import UserError, validate
from crobot.services.lookup import org_by_name, study_by_code, vendor_org_ids
from crobot.services.zones import canonical_zone
from crobot.storage.models import (
    AudienceKind,
    ChannelLink,
    Organization,
    OrgKind,
    Person,
    Role,
    SignatureMode,
    Study,
    StudyVendor,
    utcnow,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
SlackId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9]{2,32}$")]
# Whose public holidays apply (ISO 3166 alpha-2); None: the time zone's country.
Country = Annotated[str, AfterValidator(check_country)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrgCreate(_Input):
    name: Name
    kind: OrgKind
    slack_team_id: SlackId | None = None
    slack_enterprise_id: SlackId | None = None


class OrgUpdate(_Input):
    name: Name
    slack_team_id: SlackId | None = None
    slack_enterprise_id: SlackId | None = None


# Patients a study plans to enrol (what the enrolment forecast aims at).
EnrolmentTarget = Annotated[int, Field(ge=1, le=10_000_000)]
# Days after a period's end within which a KPI report counts as on time (scorecards).
ReportDays = Annotated[int, Field(ge=0, le=90)]


# Working days an action may be overdue before it is escalated; 0 turns it off.
EscalateAfter = Annotated[int, Field(ge=0, le=60)]


class StudyCreate(_Input):
    code: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$", max_length=40)
    ]
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    sponsor: Name
    phase: Annotated[str, StringConstraints(max_length=20)] | None = None
    four_eyes: bool = False
    signatures: SignatureMode = SignatureMode.ACKNOWLEDGE
    enrolment_target: EnrolmentTarget | None = None
    escalate_after_days: EscalateAfter = 3
    kpi_report_days: ReportDays = 5


class StudyUpdate(_Input):
    code: str
    four_eyes: bool | None = None
    signatures: SignatureMode | None = None
    enrolment_target: EnrolmentTarget | None = None
    escalate_after_days: EscalateAfter | None = None
    kpi_report_days: ReportDays | None = None


class StudyVendorCreate(_Input):
    study: str
    vendor: Name
    scope: Annotated[str, StringConstraints(max_length=300)] | None = None


class PersonPlace(_Input):
    """A person, and where they are: their zone and whose holidays they keep."""

    team_id: SlackId
    user_id: SlackId
    timezone: str | None = None
    country: Country | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else check_zone(v)


class PersonUpdate(PersonPlace):
    role: Role | None = None


class PersonCreate(PersonPlace):
    display_name: Name
    org: Name
    role: Role


class ChannelLinkCreate(_Input):
    team_id: SlackId
    channel_id: SlackId
    study: str
    audience: str = Field(description="sponsor | joint | vendor:ORG | joint:ORG")
    timezone: str = "UTC"
    country: Country | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_zone(v)

    @field_validator("audience")
    @classmethod
    def _audience(cls, v: str) -> str:
        if not re.match(r"^(sponsor|joint|vendor:.+|joint:.+)$", v.strip()):
            raise ValueError("use sponsor, joint, vendor:ORG or joint:ORG")
        return v.strip()


def check_zone(name: str) -> str:
    """A typed time zone: canonical IANA location zones only (services/zones.py)."""
    return canonical_zone(name)


def workspace_owner(session: Session, team_id: str) -> Organization | None:
    """The organisation that registered Slack workspace `team_id`, if any."""
    return session.scalars(
        select(Organization).where(Organization.slack_team_id == team_id)
    ).first()


def enterprise_owner(session: Session, enterprise_id: str) -> Organization | None:
    """The organisation that registered Enterprise Grid org `enterprise_id`, if any."""
    return session.scalars(
        select(Organization).where(Organization.slack_enterprise_id == enterprise_id)
    ).first()


def member_org(session: Session, team_id: str, enterprise_id: str | None) -> Organization | None:
    """The organisation whose members are this workspace's users: the one that registered
    the workspace, else (Enterprise Grid) the one that registered its Grid org without
    naming a single workspace. An installation alone makes nobody a member."""
    org = workspace_owner(session, team_id)
    if org is None and enterprise_id:
        org = enterprise_owner(session, enterprise_id)
        if org is not None and org.slack_team_id not in (None, team_id):
            return None
    return org


def check_workspace(session: Session, org: Organization, team_id: str) -> None:
    """A person's workspace belongs to their organisation: an organisation with a registered
    workspace has its people there, and a workspace registered to one organisation holds no
    other organisation's people (else a look-alike user id in another workspace could act
    as someone else)."""
    owner = workspace_owner(session, team_id)
    if owner is not None and owner.id != org.id:
        raise UserError(
            f"Slack workspace {team_id} is registered to `{owner.name}`, so it cannot hold "
            f"people of `{org.name}`.",
            "Check the person's workspace (team id) and organisation.",
        )
    if org.slack_team_id and org.slack_team_id != team_id:
        raise UserError(
            f"`{org.name}` works in Slack workspace {org.slack_team_id}, not {team_id}.",
            f"Register the person with --team {org.slack_team_id}.",
        )


def add_org(session: Session, actor: Actor, **data: object) -> Organization:
    inp = validate(OrgCreate, data)
    if session.scalars(select(Organization).where(Organization.name == inp.name)).first():
        raise UserError(f"Organisation `{inp.name}` already exists.")
    if inp.slack_team_id and (owner := workspace_owner(session, inp.slack_team_id)):
        raise UserError(f"Slack workspace {inp.slack_team_id} is already `{owner.name}`'s.")
    if inp.slack_enterprise_id and (owner := enterprise_owner(session, inp.slack_enterprise_id)):
        raise UserError(f"Slack org {inp.slack_enterprise_id} is already `{owner.name}`'s.")
    org = Organization(
        name=inp.name,
        kind=inp.kind,
        slack_team_id=inp.slack_team_id,
        slack_enterprise_id=inp.slack_enterprise_id,
    )
    session.add(org)
    session.flush()
    audit.record(
        session,
        actor,
        "org.create",
        "organization",
        org.id,
        after=audit.snapshot(org, "name", "kind", "slack_team_id", "slack_enterprise_id"),
    )
    return org


def update_org(session: Session, actor: Actor, **data: object) -> Organization:
    """Register (or change) an organisation's Slack workspace and Enterprise Grid org:
    from then on that workspace's users are its members (audited, old value kept)."""
    inp = validate(OrgUpdate, data)
    org = org_by_name(session, inp.name)
    changes = inp.model_dump(exclude={"name"}, exclude_none=True)
    if not changes:
        raise UserError("Nothing to change.", "Give --slack-team T… and/or --enterprise E….")
    team = changes.get("slack_team_id")
    if team and (owner := workspace_owner(session, team)) and owner.id != org.id:
        raise UserError(f"Slack workspace {team} is already `{owner.name}`'s.")
    grid = changes.get("slack_enterprise_id")
    if grid and (owner := enterprise_owner(session, grid)) and owner.id != org.id:
        raise UserError(f"Slack org {grid} is already `{owner.name}`'s.")
    if team:
        others = session.scalars(
            select(Person).where(Person.team_id == team, Person.org_id != org.id).limit(1)
        ).first()
        if others is not None:
            raise UserError(
                f"Slack workspace {team} already holds people of another organisation "
                f"({others.team_id}:{others.slack_user_id}).",
                "Check the team id: a workspace belongs to one organisation.",
            )
    before = audit.snapshot(org, *changes)
    for name, value in changes.items():
        setattr(org, name, value)
    session.flush()
    audit.record(
        session,
        actor,
        "org.update",
        "organization",
        org.id,
        before=before,
        after=audit.snapshot(org, *changes),
    )
    return org


def enrol_member(
    session: Session,
    team_id: str,
    user_id: str,
    enterprise_id: str | None,
    *,
    display_name: str,
) -> Person | None:
    """A user of a registered workspace, on first use: a member of its organisation
    (`sponsor_member` or `vendor_member`; higher roles are still given by `person add`).
    None, and nothing stored, for a workspace no organisation registered. The caller has
    already refused guests."""
    org = member_org(session, team_id, enterprise_id)
    if org is None:
        return None
    role = Role.SPONSOR_MEMBER if org.kind == OrgKind.SPONSOR else Role.VENDOR_MEMBER
    person = Person(
        team_id=team_id,
        slack_user_id=user_id,
        display_name=(display_name.strip() or user_id)[:120],
        org_id=org.id,
        role=role,
    )
    session.add(person)
    session.flush()
    audit.record(
        session,
        SYSTEM,
        "person.enrol",
        "person",
        person.id,
        after=audit.snapshot(person, "team_id", "slack_user_id", "display_name", "org_id", "role"),
    )
    return person


def add_study(session: Session, actor: Actor, **data: object) -> Study:
    inp = validate(StudyCreate, data)
    sponsor = org_by_name(session, inp.sponsor)
    if sponsor.kind != OrgKind.SPONSOR:
        raise UserError(f"`{sponsor.name}` is a {sponsor.kind.value}, not a sponsor.")
    code = inp.code.upper()
    if session.scalars(select(Study).where(Study.code == code)).first():
        raise UserError(f"Study `{code}` already exists.")
    study = Study(
        code=code,
        title=inp.title,
        sponsor_org_id=sponsor.id,
        phase=inp.phase,
        four_eyes=inp.four_eyes,
        signatures=inp.signatures,
        enrolment_target=inp.enrolment_target,
        escalate_after_days=inp.escalate_after_days,
        kpi_report_days=inp.kpi_report_days,
    )
    session.add(study)
    session.flush()
    audit.record(
        session,
        actor,
        "study.create",
        "study",
        study.id,
        study_id=study.id,
        after=audit.snapshot(
            study,
            "code",
            "title",
            "sponsor_org_id",
            "phase",
            "four_eyes",
            "signatures",
            "enrolment_target",
            "escalate_after_days",
            "kpi_report_days",
        ),
    )
    return study


def update_study(session: Session, actor: Actor, **data: object) -> Study:
    """Change a study's settings (four eyes, signatures, enrolment target, escalation
    threshold, KPI report days); audited with the previous value."""
    inp = validate(StudyUpdate, data)
    study = study_by_code(session, inp.code)
    changes = inp.model_dump(exclude={"code"}, exclude_none=True)
    if not changes:
        raise UserError(
            "Nothing to change.",
            "Give --four-eyes, --no-four-eyes, --signatures MODE, --enrolment-target N, "
            "--escalate-after DAYS or --kpi-report-days N.",
        )
    before = audit.snapshot(study, *changes)
    for name, value in changes.items():
        setattr(study, name, value)
    session.flush()
    audit.record(
        session,
        actor,
        "study.update",
        "study",
        study.id,
        study_id=study.id,
        before=before,
        after=audit.snapshot(study, *changes),
    )
    return study


def add_study_vendor(session: Session, actor: Actor, **data: object) -> StudyVendor:
    inp = validate(StudyVendorCreate, data)
    study = study_by_code(session, inp.study)
    org = org_by_name(session, inp.vendor)
    if org.kind == OrgKind.SPONSOR:
        raise UserError(f"`{org.name}` is a sponsor; vendors are CROs, CMOs, labs or other.")
    if org.id in vendor_org_ids(session, study.id):
        raise UserError(f"`{org.name}` is already a vendor on {study.code}.")
    link = StudyVendor(study_id=study.id, org_id=org.id, scope=inp.scope)
    session.add(link)
    session.flush()
    audit.record(
        session,
        actor,
        "study.vendor.add",
        "study_vendor",
        link.id,
        study_id=study.id,
        after={"org": org.name, "scope": inp.scope},
    )
    return link


def update_person(session: Session, actor: Actor, **data: object) -> Person:
    """Change a person's time zone, country (whose holidays their reminders keep) or role
    (a lead, for instance); audited with the previous values."""
    inp = validate(PersonUpdate, data)
    person = session.scalars(
        select(Person).where(Person.team_id == inp.team_id, Person.slack_user_id == inp.user_id)
    ).first()
    if person is None:
        raise UserError(f"{inp.team_id}:{inp.user_id} is not registered.")
    changes = inp.model_dump(include={"timezone", "country", "role"}, exclude_none=True)
    if not changes:
        raise UserError("Nothing to change.", "Give --tz ZONE, --country CC and/or --role ROLE.")
    if inp.role is not None:
        check_role(inp.role, person.org)
    before = audit.snapshot(person, *changes)
    for key, value in changes.items():
        setattr(person, key, value)
    session.flush()
    audit.record(
        session,
        actor,
        "person.update",
        "person",
        person.id,
        before=before,
        after=audit.snapshot(person, *changes),
    )
    return person


SPONSOR_SIDE_ROLES = (Role.SPONSOR_APPROVER, Role.SPONSOR_MEMBER, Role.SPONSOR_LEAD)
VENDOR_SIDE_ROLES = (Role.VENDOR_MEMBER, Role.VENDOR_LEAD)


def check_role(role: Role, org: Organization) -> None:
    """Sponsor roles belong to the sponsor's people, vendor roles to a vendor's."""
    if role in SPONSOR_SIDE_ROLES and org.kind != OrgKind.SPONSOR:
        raise UserError(
            f"{role.value} needs a sponsor organisation; `{org.name}` is not.",
            "Use vendor_member or vendor_lead for a vendor's people.",
        )
    if role in VENDOR_SIDE_ROLES and org.kind == OrgKind.SPONSOR:
        raise UserError(
            f"{role.value} needs a vendor organisation; `{org.name}` is a sponsor.",
            "Use sponsor_member, sponsor_lead or sponsor_approver for the sponsor's people.",
        )


def add_person(session: Session, actor: Actor, **data: object) -> Person:
    inp = validate(PersonCreate, data)
    org = org_by_name(session, inp.org)
    check_role(inp.role, org)
    check_workspace(session, org, inp.team_id)
    existing = session.scalars(
        select(Person).where(Person.team_id == inp.team_id, Person.slack_user_id == inp.user_id)
    ).first()
    if existing is not None:
        raise UserError(f"{inp.team_id}:{inp.user_id} is already registered.")
    person = Person(
        team_id=inp.team_id,
        slack_user_id=inp.user_id,
        display_name=inp.display_name,
        org_id=org.id,
        role=inp.role,
        timezone=inp.timezone,
        country=inp.country,
    )
    session.add(person)
    session.flush()
    audit.record(
        session,
        actor,
        "person.create",
        "person",
        person.id,
        after=audit.snapshot(person, "team_id", "slack_user_id", "display_name", "org_id", "role"),
    )
    return person


def link_channel(session: Session, actor: Actor, **data: object) -> ChannelLink:
    inp = validate(ChannelLinkCreate, data)
    study = study_by_code(session, inp.study)
    kind_word, _, org_name = inp.audience.partition(":")
    kind = AudienceKind(kind_word)
    org_id = None
    if org_name:
        org = org_by_name(session, org_name)
        if org.id not in vendor_org_ids(session, study.id):
            raise UserError(
                f"`{org.name}` is not a vendor on {study.code}.",
                f'Add it first: crobot study vendor add {study.code} "{org.name}"',
            )
        org_id = org.id
    link = session.scalars(
        select(ChannelLink).where(
            ChannelLink.team_id == inp.team_id, ChannelLink.channel_id == inp.channel_id
        )
    ).first()
    elsewhere = session.scalars(
        select(ChannelLink.team_id).where(
            ChannelLink.channel_id == inp.channel_id, ChannelLink.team_id != inp.team_id
        )
    ).first()
    if link is None and elsewhere is not None:
        # A shared (Slack Connect) channel has one id in every workspace: linked once.
        raise UserError(
            f"Channel {inp.channel_id} is already linked from Slack workspace {elsewhere}.",
            f"Relink it with --team {elsewhere}: that workspace's crobot posts its digests.",
        )
    before = None
    if link is None:
        link = ChannelLink(team_id=inp.team_id, channel_id=inp.channel_id)
        session.add(link)
    else:
        before = audit.snapshot(
            link, "study_id", "audience", "audience_org_id", "timezone", "country"
        )
        if link.timezone != inp.timezone:
            link.schedule_changed_at = utcnow()  # the same wall time is another instant now
    link.study_id, link.audience, link.audience_org_id = study.id, kind, org_id
    link.timezone, link.country = inp.timezone, inp.country
    session.flush()
    audit.record(
        session,
        actor,
        "channel.link",
        "channel_link",
        link.id,
        study_id=study.id,
        before=before,
        after=audit.snapshot(
            link,
            "team_id",
            "channel_id",
            "study_id",
            "audience",
            "audience_org_id",
            "timezone",
            "country",
        ),
    )
    return link
