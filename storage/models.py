"""SQLAlchemy 2 typed models for every entity of the crobot data model.

All timestamps are stored in UTC (timezone-aware on PostgreSQL, naive-UTC on SQLite via
`UtcDateTime`), and rendered in the viewer's or channel's zone at the edge.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Store values (not names) as VARCHAR with a CHECK so SQLite and PostgreSQL agree.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class OrgKind(enum.StrEnum):
    SPONSOR = "sponsor"
    CRO = "cro"
    CMO = "cmo"
    LAB = "lab"
    OTHER = "other"


class Role(enum.StrEnum):
    SPONSOR_APPROVER = "sponsor_approver"
    SPONSOR_MEMBER = "sponsor_member"
    # An organisation's lead: told once when one of its people's actions is overdue by
    # the study's escalation threshold (services/escalations.py).
    SPONSOR_LEAD = "sponsor_lead"
    VENDOR_MEMBER = "vendor_member"
    VENDOR_LEAD = "vendor_lead"
    ADMIN = "admin"


class AudienceKind(enum.StrEnum):
    SPONSOR = "sponsor"
    VENDOR = "vendor"
    JOINT = "joint"


class MilestoneStatus(enum.StrEnum):
    PLANNED = "planned"
    AT_RISK = "at_risk"
    DONE = "done"  # completion reported, awaiting sponsor approval
    APPROVED = "approved"  # completion accepted
    CANCELLED = "cancelled"


class ActionStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class Aggregation(enum.StrEnum):
    LATEST = "latest"
    SUM = "sum"
    AVERAGE = "average"


class KpiKind(enum.StrEnum):
    """Who reports a KPI: vendors of one kind (an organisation's `OrgKind`), any vendor,
    or only the sponsor (a rating of the vendor, never the vendor's own word)."""

    CRO = "cro"
    CMO = "cmo"
    LAB = "lab"
    ANY = "any"
    SPONSOR = "sponsor"


class ApprovalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class SubjectType(enum.StrEnum):
    KPI_UPDATE = "kpi_update"
    MILESTONE = "milestone"
    SITE_REPORT = "site_report"


class SiteStatus(enum.StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    CLOSED = "closed"


class SignatureMode(enum.StrEnum):
    """How a study's decisions are made: a click (acknowledged) or a Part 11 signature."""

    ACKNOWLEDGE = "acknowledge"  # the Slack identity alone: an acknowledgement, not signed
    PART11 = "part11"  # the Slack identity and the signer's PIN (21 CFR 11.200)


class QtlBound(enum.StrEnum):
    """Which side of a quality tolerance limit is acceptable: `max` for a lower-is-better
    KPI (values above it breach), `min` for a higher-is-better one."""

    MAX = "max"
    MIN = "min"


class BreachStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DigestRunState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[OrgKind] = mapped_column(_enum(OrgKind, "org_kind"))
    # Slack Connect: an organisation is recognised by its own workspace's team id.
    slack_team_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # Enterprise Grid: the organisation's Slack org id; its workspaces' users are its members.
    slack_enterprise_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    sponsor_org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    phase: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Four eyes: even a sponsor approver's own entries wait, and for a second approver.
    four_eyes: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Part 11 mode: a decision needs the approver's signing PIN too (services/signatures.py).
    signatures: Mapped[SignatureMode] = mapped_column(
        _enum(SignatureMode, "signature_mode"),
        default=SignatureMode.ACKNOWLEDGE,
        server_default=SignatureMode.ACKNOWLEDGE.value,
    )
    # Patients the study plans to enrol: what `crobot forecast` forecasts by default.
    enrolment_target: Mapped[int | None] = mapped_column(Integer)
    # Working days an open action may be overdue before its owner's lead and the sponsor
    # channel are told (once); 0 turns escalation off for the study.
    escalate_after_days: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # A KPI report counts as on time (vendor scorecards) when submitted within this many
    # days after its period ended.
    kpi_report_days: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sponsor: Mapped[Organization] = relationship(lazy="joined")


class StudyVendor(Base):
    __tablename__ = "study_vendors"
    __table_args__ = (UniqueConstraint("study_id", "org_id", name="uq_study_vendor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    scope: Mapped[str | None] = mapped_column(String(300))

    org: Mapped[Organization] = relationship(lazy="joined")


class Person(Base):
    __tablename__ = "people"
    __table_args__ = (UniqueConstraint("team_id", "slack_user_id", name="uq_person_slack"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str] = mapped_column(String(120))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "person_role"))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # ISO 3166 alpha-2 whose public holidays apply (None: the time zone's country).
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    org: Mapped[Organization] = relationship(lazy="joined")


class ChannelLink(Base):
    __tablename__ = "channel_links"
    __table_args__ = (
        UniqueConstraint("team_id", "channel_id", name="uq_channel_link"),
        # A shared channel is found by its id from any workspace (services/lookup.py).
        Index("ix_channel_links_channel_id", "channel_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    audience: Mapped[AudienceKind] = mapped_column(_enum(AudienceKind, "audience_kind"))
    # vendor:<org> channels name their org; a joint channel may name one vendor it is shared with.
    audience_org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # ISO 3166 alpha-2 whose public holidays apply (None: the time zone's country).
    country: Mapped[str | None] = mapped_column(String(2))
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    digest_days: Mapped[str] = mapped_column(String(40), default="mon")
    digest_time: Mapped[str] = mapped_column(String(5), default="09:00")
    charts_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the digest schedule (days, time, zone, on/off) last changed: a scheduler that
    # learns of a change late still sends a fire time that passed after it, and never
    # one from before it (that time was not the schedule then).
    schedule_changed_at: Mapped[datetime | None] = mapped_column()

    study: Mapped[Study] = relationship(lazy="joined")
    audience_org: Mapped[Organization | None] = relationship(lazy="joined")


class Milestone(Base):
    __tablename__ = "milestones"
    __table_args__ = (Index("ix_milestones_study_org", "study_id", "org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    planned_date: Mapped[date] = mapped_column(Date)
    forecast_date: Mapped[date | None] = mapped_column(Date)
    actual_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[MilestoneStatus] = mapped_column(
        _enum(MilestoneStatus, "milestone_status"), default=MilestoneStatus.PLANNED
    )
    # Study-level items every audience of the study may see.
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # An enrolment milestone: patients enrolled by the planned date (the forecast's odds).
    target_count: Mapped[int | None] = mapped_column(Integer)
    # Why the enrolment forecast marked it at risk; NULL when it was not the forecast.
    risk_reason: Mapped[str | None] = mapped_column(String(300))
    # The sponsor set the status by hand: the forecast leaves it alone.
    status_pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    org: Mapped[Organization | None] = relationship(lazy="joined")
    study: Mapped[Study] = relationship(lazy="joined")


class Site(Base):
    """A study site (hospital, clinic), managed by one organisation of the study."""

    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("study_id", "code", name="uq_site_code"),
        Index("ix_sites_study_org", "study_id", "org_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    planned_activation: Mapped[date | None] = mapped_column(Date)
    activated_on: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[SiteStatus] = mapped_column(
        _enum(SiteStatus, "site_status"), default=SiteStatus.PLANNED
    )
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    org: Mapped[Organization] = relationship(lazy="joined")


class SiteReport(Base):
    """Patients a site enrolled in one period. Corrections are new rows, as KPI values."""

    __tablename__ = "site_reports"
    __table_args__ = (Index("ix_site_reports_site_period", "site_id", "period_start", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    period_start: Mapped[date] = mapped_column(Date)
    period_label: Mapped[str] = mapped_column(String(12))
    enrolled: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    approval_state: Mapped[ApprovalState] = mapped_column(
        _enum(ApprovalState, "site_report_state"), default=ApprovalState.APPROVED
    )
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("site_reports.id"))

    site: Mapped[Site] = relationship(lazy="joined")


class ActionItem(Base):
    __tablename__ = "action_items"
    __table_args__ = (
        Index("ix_actions_study_org", "study_id", "owner_org_id"),
        Index("ix_actions_owner_status", "owner_user_id", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    title: Mapped[str] = mapped_column(String(300))
    owner_team_id: Mapped[str | None] = mapped_column(String(32))
    owner_user_id: Mapped[str] = mapped_column(String(32))
    owner_org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    due_date: Mapped[date] = mapped_column(Date)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"), default=Priority.NORMAL)
    status: Mapped[ActionStatus] = mapped_column(
        _enum(ActionStatus, "action_status"), default=ActionStatus.OPEN
    )
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("milestones.id"))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    # When the overdue action was escalated (set once, by compare-and-set).
    escalated_at: Mapped[datetime | None] = mapped_column()

    owner_org: Mapped[Organization | None] = relationship(lazy="joined")
    study: Mapped[Study] = relationship(lazy="joined")


class KpiDefinition(Base):
    __tablename__ = "kpi_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    label: Mapped[str] = mapped_column(String(80))
    unit: Mapped[str] = mapped_column(String(20))
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "kpi_direction"))
    target: Mapped[float | None] = mapped_column(Float)
    aggregation: Mapped[Aggregation] = mapped_column(_enum(Aggregation, "kpi_aggregation"))
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    integer: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[KpiKind] = mapped_column(
        _enum(KpiKind, "kpi_kind"), default=KpiKind.ANY, server_default=KpiKind.ANY.value
    )
    # Retired: its history stays readable (show, trend, exports); it takes no new values.
    retired_at: Mapped[datetime | None] = mapped_column()


class KpiTarget(Base):
    """A study's own target for one KPI, study-wide (`org_id` NULL) or one organisation's:
    it overrides the catalogue's default (services/kpi_targets.py).

    Keyed by the KPI's key, not its id, so computed measures (services/computed_keys.py),
    which have no definition row, take targets too. One per study, key and organisation:
    NULLs are distinct in a unique constraint on both backends, so the study-wide row
    has its own partial unique index."""

    __tablename__ = "kpi_targets"
    __table_args__ = (
        UniqueConstraint("study_id", "kpi_key", "org_id", name="uq_kpi_target_org"),
        Index(
            "uq_kpi_target_study",
            "study_id",
            "kpi_key",
            unique=True,
            sqlite_where=text("org_id IS NULL"),
            postgresql_where=text("org_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    kpi_key: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    target: Mapped[float] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(80))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class KpiUpdate(Base):
    """One reported value. Corrections are new rows (`supersedes_id`), never UPDATEs of value."""

    __tablename__ = "kpi_updates"
    __table_args__ = (
        Index("ix_kpi_updates_lookup", "study_id", "kpi_id", "org_id", "period_start", "id"),
        # Period ranges per study+KPI (kpi show/trend) and per study (status, digests);
        # see migration 0002 for the benchmark that chose these column orders. They end in
        # approval_state so finding current (not rejected) values reads only the index (0006).
        Index(
            "ix_kpi_updates_series",
            "study_id",
            "kpi_id",
            "period_start",
            "org_id",
            "id",
            "approval_state",
        ),
        Index(
            "ix_kpi_updates_study_period_cover",
            "study_id",
            "period_start",
            "kpi_id",
            "org_id",
            "id",
            "approval_state",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    kpi_id: Mapped[int] = mapped_column(ForeignKey("kpi_definitions.id"))
    # Monday of the ISO week (weekly periods) or the day itself; label keeps what was said.
    period_start: Mapped[date] = mapped_column(Date)
    period_label: Mapped[str] = mapped_column(String(12))
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(String(500))
    submitted_by: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    approval_state: Mapped[ApprovalState] = mapped_column(
        _enum(ApprovalState, "approval_state"), default=ApprovalState.APPROVED
    )
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("kpi_updates.id"))

    kpi: Mapped[KpiDefinition] = relationship(lazy="joined")
    org: Mapped[Organization] = relationship(lazy="joined")


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("subject_type", "subject_id", name="uq_approval_subject"),
        Index("ix_approvals_study_state", "study_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[SubjectType] = mapped_column(_enum(SubjectType, "subject_type"))
    subject_id: Mapped[int] = mapped_column(Integer)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    # What the decision is about (old -> new), frozen at request time for the message.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[ApprovalState] = mapped_column(
        _enum(ApprovalState, "approval_decision"), default=ApprovalState.PENDING
    )
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(String(1000))
    # Where the Approve/Reject message lives, so it can be updated in place.
    channel_id: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # The decision as a signature (services/signatures.py, 21 CFR 11.50 / 11.70): the
    # signer's printed name and zone at signing, how it was made (acknowledge | part11),
    # the SHA-256 of exactly what was decided, and of that bound to signer, time, meaning.
    signer_name: Mapped[str | None] = mapped_column(String(120))
    signer_tz: Mapped[str | None] = mapped_column(String(64))
    signature_method: Mapped[str | None] = mapped_column(String(20))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    signature_hash: Mapped[str | None] = mapped_column(String(64))


class QualityLimit(Base):
    """A quality tolerance limit (ICH E6(R3)) on one KPI of a study: trial level
    (`org_id` NULL) or one organisation's, with an optional warning threshold (a KRI)."""

    __tablename__ = "qtl_limits"
    __table_args__ = (Index("ix_qtl_limits_study_kpi", "study_id", "kpi_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    kpi_id: Mapped[int] = mapped_column(ForeignKey("kpi_definitions.id"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    bound: Mapped[QtlBound] = mapped_column(_enum(QtlBound, "qtl_bound"))
    limit_value: Mapped[float] = mapped_column(Float)
    warn_value: Mapped[float | None] = mapped_column(Float)
    rationale: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(lazy="joined")
    kpi: Mapped[KpiDefinition] = relationship(lazy="joined")
    org: Mapped[Organization | None] = relationship(lazy="joined")


class QtlBreach(Base):
    """An approved value beyond a quality tolerance limit, and its evaluation and closure.

    One per study, KPI, organisation and period; a later value back inside does not close
    it: a sponsor approver does, once it is evaluated (services/qtl.py)."""

    __tablename__ = "qtl_breaches"
    __table_args__ = (
        UniqueConstraint("study_id", "kpi_id", "org_id", "period_start", name="uq_qtl_breach"),
        Index("ix_qtl_breaches_study_status", "study_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    limit_id: Mapped[int] = mapped_column(ForeignKey("qtl_limits.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    kpi_id: Mapped[int] = mapped_column(ForeignKey("kpi_definitions.id"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    period_start: Mapped[date] = mapped_column(Date)
    period_label: Mapped[str] = mapped_column(String(12))
    observed: Mapped[float] = mapped_column(Float)
    # The limit as it was when the breach was detected (a limit may change later).
    bound: Mapped[QtlBound] = mapped_column(_enum(QtlBound, "qtl_breach_bound"))
    limit_value: Mapped[float] = mapped_column(Float)
    kpi_update_id: Mapped[int] = mapped_column(ForeignKey("kpi_updates.id"))
    submitted_by: Mapped[str] = mapped_column(String(32))
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    evaluation_due: Mapped[date] = mapped_column(Date)
    owner_team_id: Mapped[str | None] = mapped_column(String(32))
    owner_user_id: Mapped[str | None] = mapped_column(String(32))
    systemic: Mapped[bool | None] = mapped_column(Boolean)
    root_cause: Mapped[str | None] = mapped_column(Text)
    impact: Mapped[str | None] = mapped_column(Text)
    action_needed: Mapped[bool | None] = mapped_column(Boolean)
    remedial: Mapped[str | None] = mapped_column(Text)
    action_ids: Mapped[list[int] | None] = mapped_column(JSON)
    status: Mapped[BreachStatus] = mapped_column(
        _enum(BreachStatus, "qtl_breach_status"), default=BreachStatus.OPEN
    )
    # The closure as a decision: shown with the same manifest as approvals.
    closed_by: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column()
    signer_name: Mapped[str | None] = mapped_column(String(120))
    signer_tz: Mapped[str | None] = mapped_column(String(64))
    signature_method: Mapped[str | None] = mapped_column(String(20))

    limit: Mapped[QualityLimit] = relationship(lazy="joined")
    study: Mapped[Study] = relationship(lazy="joined")
    kpi: Mapped[KpiDefinition] = relationship(lazy="joined")
    org: Mapped[Organization] = relationship(lazy="joined")


class AuditEvent(Base):
    """Append-only (triggers, migration 0008), HMAC-chained record of every write."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str | None] = mapped_column(String(40))
    study_id: Mapped[int | None] = mapped_column(Integer, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The HMAC key's id (services/audit_keys.py); NULL: plain SHA-256, before the cut-over.
    key_id: Mapped[str | None] = mapped_column(String(32))
    # Who really ran it when not the actor themself: the operating-system account of a
    # CLI command, and whom it acted as (`console:alice as T1:U123`).
    operator: Mapped[str | None] = mapped_column(String(120))


class AuditHead(Base):
    """Single row serialising appends to the audit chain (a row lock on every backend).

    Triggers let it only move forward, to an event that exists (migration 0008)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    # The first keyed event's seq; the events before it are plain SHA-256 (pre-0008).
    keyed_from: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class AuditAnchor(Base):
    """The chain's head as posted to a study's sponsor channel: a witness the database
    administrator cannot rewrite (`crobot audit verify --anchors` reads it back)."""

    __tablename__ = "audit_anchors"
    __table_args__ = (UniqueConstraint("study_id", "day", name="uq_audit_anchor_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    day: Mapped[date] = mapped_column(Date)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(32))
    slack_ts: Mapped[str] = mapped_column(String(32))
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)


class SigningPin(Base):
    """A person's signing PIN (the second component of a Part 11 signature), as a salted
    scrypt hash only, and its wrong-attempt count and lock."""

    __tablename__ = "signing_pins"
    __table_args__ = (UniqueConstraint("team_id", "user_id", name="uq_signing_pin"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    pin_hash: Mapped[str] = mapped_column(String(200))  # scrypt$n$r$p$salt$hash
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()


class DigestRun(Base):
    """One outbox row: a Slack message crobot sends exactly once (digests/delivery.py).

    Kinds, by the prefix of `target`:
    - `link:<channel link id>` — a channel's digest for one period;
    - `dm:<team>:<user>` — an owner's overdue-actions nudge for one day;
    - `notice:<channel link id>` — the sponsor channel told that a digest failed;
    - `anchor:<study id>` — the audit chain's head posted to the study's sponsor channel
      once a day, `period_key` the UTC day (services/anchors.py);
    - `approval:<approval id>` — an approval's Slack work: `period_key` is
      `request:<channel>` (the Approve/Reject post), `update:<channel>:<ts>` (showing the
      decision in that message), `dm:<team>:<user>` (the submitter told by DM) or
      `vendor:<channel>` (the vendor's own channel told); see services/approval_log.py;
    - `forecast:<milestone id>` — an enrolment milestone marked at risk or recovered by the
      forecast, `period_key` `<audit seq>:<channel>`; see services/enrolment.py;
    - `qtl:<breach id>` — a quality tolerance limit breach posted (with its buttons),
      `period_key` `<channel>`; `qtlwarn:<limit id>` — a warning threshold crossed,
      `period_key` `<org id>:<period start>:<channel>`; see services/qtl.py;
    - `escalate:<action id>` — an overdue action escalated, `period_key`
      `<audit seq>:dm:<team>:<user>` (a lead of the owner's organisation) or
      `<audit seq>:ch:<channel>` (a sponsor channel); see services/escalations.py;
    - `scorecard:<channel link id>` — a vendor's quarterly scorecard posted to a sponsor
      channel or to that vendor's own channel, `period_key` `<quarter>:<org id>`
      (`2026-Q4:7`), so once per channel, quarter and vendor; see
      services/scorecard_posts.py.
    A row is claimed by the process that inserts it (digests) or, when enqueued unclaimed
    (`claimed_by` NULL) by the transaction that made the work, by the first deliverer.
    """

    __tablename__ = "digest_runs"
    __table_args__ = (
        UniqueConstraint("target", "period_key", name="uq_digest_run"),
        Index("ix_digest_runs_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(80))
    period_key: Mapped[str] = mapped_column(String(80))
    channel_link_id: Mapped[int | None] = mapped_column(ForeignKey("channel_links.id"))
    state: Mapped[DigestRunState] = mapped_column(
        _enum(DigestRunState, "digest_run_state"), default=DigestRunState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the row was made: a post of an earlier attempt is searched for from here on
    # (claimed_at moves when another process takes the row over).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(300))


class UserTimezoneCache(Base):
    """users.info answers (time zone) cached across processes."""

    __tablename__ = "user_tz_cache"
    __table_args__ = (UniqueConstraint("team_id", "user_id", name="uq_user_tz"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class SeenRequest(Base):
    """Signatures of accepted Slack requests, kept for Slack's 5-minute replay window.

    Shared by every replica, so a captured request replayed to another one is refused too.
    """

    __tablename__ = "seen_requests"

    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


# Slack installations (OAuth distribution): slack_sdk's own store tables, built by its own
# table builders so that the stores (bot/workspaces.py) and the migration (0010) agree.
# Alembic creates them; nothing calls the stores' `create_tables()`.
INSTALLATIONS_TABLE = SQLAlchemyInstallationStore.build_installations_table(
    Base.metadata, "slack_installations"
)
BOTS_TABLE = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, "slack_bots")
OAUTH_STATES_TABLE = SQLAlchemyOAuthStateStore.build_oauth_states_table(
    Base.metadata, "slack_oauth_states"
)


class NudgeSnooze(Base):
    """An owner's overdue-action reminders paused through `until` (their local date)."""

    __tablename__ = "nudge_snoozes"
    __table_args__ = (UniqueConstraint("team_id", "user_id", name="uq_nudge_snooze"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    until: Mapped[date] = mapped_column(Date)
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
