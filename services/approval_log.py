"""What crobot shows in Slack about approvals: the read model, and the outbox rows that post it.

`ApprovalRecord` is the one read model of an approval (messages, the App Home, the audit
export), loaded by one query. An approval's Slack work is a set of outbox rows
(`DigestRun` with target `approval:<id>`, delivered exactly once by digests/delivery.py),
written in the same transaction as the change that calls for them:

- `request:<channel>` — the Approve/Reject post, one per sponsor channel of the study;
- `update:<channel>:<ts>` — a posted copy rewritten to show the decision, at most once
  per copy (a failed rewrite is retried when someone clicks that copy again);
- `dm:<team>:<user>` — the submitter told the decision by direct message;
- `vendor:<channel>` — the vendor's own channel of the study told the decision (the
  first `vendor:<org>` link of the submission's organisation; never a joint channel).

The sponsor channel is not told separately: its copy of the request, rewritten in place,
already shows the decision, the decider, the time and the reason. (Rows `notice:<channel>`
— a thread reply there, written before — are still understood, and skipped.)

The Approval row keeps the primary message (the first one posted) so it can be updated in
place; every post, update and notice is an audit event, so the audit trail is also the
complete record of where a request was shown (a study may have several sponsor channels).
So is every refused attempt to decide (`approval.refused`: who, which approval, why).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import SYSTEM, Actor, resolve_actor
from crobot.services.lookup import sponsor_channels, vendor_channel
from crobot.storage import bulk
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    DigestRun,
    DigestRunState,
    Organization,
    SignatureMode,
    Study,
    SubjectType,
    utcnow,
)

log = logging.getLogger(__name__)

POSTED = "approval.message.post"
UPDATED = "approval.message.update"
NOTIFIED = "approval.notify"
REFUSED = "approval.refused"

TARGET_PREFIX = "approval:"
REQUEST, UPDATE, DM, VENDOR = "request", "update", "dm", "vendor"
LEGACY_NOTICE = "notice"  # the sponsor-thread reply of before: no longer written nor sent

Location = tuple[str, str]  # (channel id, message ts)


# --- the read model -------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval with its study, organisation and decision."""

    id: int
    study_id: int
    study: str  # the study's code
    org_id: int  # the organisation the submission is for
    org: str  # its name
    subject: str  # "<subject type>:<id>"
    summary: dict[str, Any]  # what changed, frozen at request time
    requested_by: str  # audit label TEAM:USER
    requested_at: datetime
    state: ApprovalState
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    channel_id: str | None  # the primary message
    message_ts: str | None
    # The decision as a signature (services/signatures.py); None before one.
    signer_name: str | None = None
    signer_tz: str | None = None
    signature_method: str | None = None
    content_hash: str | None = None
    signature_hash: str | None = None
    part11: bool = False  # the study decides by Part 11 signature (identity and PIN)

    @property
    def pending(self) -> bool:
        return self.state == ApprovalState.PENDING

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "study": self.study,
            "org": self.org,
            "subject": self.subject,
            "summary": self.summary,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "state": self.state.value,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "reason": self.reason,
            "channel_id": self.channel_id,
            "message_ts": self.message_ts,
            "signer_name": self.signer_name,
            "signer_tz": self.signer_tz,
            "signature_method": self.signature_method,
            "content_hash": self.content_hash,
            "signature_hash": self.signature_hash,
        }


def _select() -> Select[Approval, str, str, SignatureMode]:
    return (
        select(Approval, Study.code, Organization.name, Study.signatures)
        .join(Study, Study.id == Approval.study_id)
        .join(Organization, Organization.id == Approval.org_id)
    )


def records(
    session: Session,
    *where: ColumnElement[bool],
    limit: int | None = None,
    newest_first: bool = False,
) -> list[ApprovalRecord]:
    """Approvals matching `where`, oldest request first (or newest decision first)."""
    order = (
        (Approval.decided_at.desc(), Approval.id.desc())
        if newest_first
        else (Approval.requested_at, Approval.id)
    )
    stmt = _select().where(*where).order_by(*order).limit(limit)
    return [
        ApprovalRecord(
            id=a.id,
            study_id=a.study_id,
            study=code,
            org_id=a.org_id,
            org=org,
            subject=f"{a.subject_type.value}:{a.subject_id}",
            summary=dict(a.summary or {}),
            requested_by=a.requested_by,
            requested_at=a.requested_at,
            state=a.state,
            decided_by=a.decided_by,
            decided_at=a.decided_at,
            reason=a.reason,
            channel_id=a.channel_id,
            message_ts=a.message_ts,
            signer_name=a.signer_name,
            signer_tz=a.signer_tz,
            signature_method=a.signature_method,
            content_hash=a.content_hash,
            signature_hash=a.signature_hash,
            part11=mode == SignatureMode.PART11,
        )
        for a, code, org, mode in session.execute(stmt)
    ]


def record(session: Session, approval_id: int) -> ApprovalRecord | None:
    found = records(session, Approval.id == approval_id)
    return found[0] if found else None


def history(session: Session, *, study_id: int | None = None) -> list[ApprovalRecord]:
    """Every approval (pending and decided), oldest first, optionally for one study."""
    return records(session, *([Approval.study_id == study_id] if study_id is not None else []))


def person_of(label: str | None) -> tuple[str | None, str | None]:
    """(team id, user id) of an audit label `TEAM:USER`; (None, None) for none."""
    if not label:
        return None, None
    team, _, user = label.rpartition(":")
    return team or None, user


def decider(session: Session, rec: ApprovalRecord) -> Actor | None:
    """Who decided, as a person (for their time zone); None while pending."""
    team, user = person_of(rec.decided_by)
    if user is None:
        return None
    return resolve_actor(session, team or "", user)


def rejection_reasons(
    session: Session, subject_type: SubjectType, subject_ids: list[int]
) -> dict[int, str]:
    """Reasons of rejected submissions, so listings can mark them "rejected: <reason>"."""
    if not subject_ids:
        return {}
    rows = session.execute(
        select(Approval.subject_id, Approval.reason).where(
            Approval.subject_type == subject_type,
            Approval.subject_id.in_(subject_ids),
            Approval.state == ApprovalState.REJECTED,
        )
    )
    return {sid: reason or "" for sid, reason in rows}


# --- outbox rows ------------------------------------------------------------------------


def outbox_target(approval_id: int) -> str:
    return f"{TARGET_PREFIX}{approval_id}"


def approval_of(target: str) -> int:
    return int(target.removeprefix(TARGET_PREFIX))


@dataclass(frozen=True)
class Work:
    """What one approval outbox row asks for (parsed from its period key)."""

    kind: str  # REQUEST | UPDATE | DM | VENDOR (| LEGACY_NOTICE)
    channel: str = ""  # where it goes; empty for DM (the channel is opened on delivery)
    ts: str | None = None  # UPDATE: the message to rewrite
    person: str = ""  # DM: the submitter, `TEAM:USER`

    @property
    def key(self) -> str:
        if self.kind == DM:
            return f"{DM}:{self.person}"
        return ":".join(p for p in (self.kind, self.channel, self.ts) if p)

    @classmethod
    def parse(cls, key: str) -> Work:
        kind, _, rest = key.partition(":")
        if kind == DM and ":" in rest:
            return cls(DM, person=rest)
        channel, _, ts = rest.partition(":")
        kinds = (REQUEST, UPDATE, VENDOR, LEGACY_NOTICE)
        if kind not in kinds or not channel or (kind == UPDATE) != bool(ts):
            raise ValueError(f"not an approval outbox key: {key!r}")
        return cls(kind, channel, ts or None)


def _row(session: Session, approval_id: int, work: Work) -> DigestRun | None:
    return session.scalars(
        select(DigestRun).where(
            DigestRun.target == outbox_target(approval_id), DigestRun.period_key == work.key
        )
    ).one_or_none()


def _enqueue(session: Session, approval_id: int, work: Work, *, retry: bool = False) -> None:
    """Add an unclaimed row unless it exists; `retry` re-arms one that failed.

    Callers hold the approval's row lock (or create the approval), so the check and the
    insert cannot race another writer of the same approval.
    """
    row = _row(session, approval_id, work)
    now = utcnow()
    if row is None:
        session.add(
            DigestRun(
                target=outbox_target(approval_id),
                period_key=work.key,
                state=DigestRunState.PENDING,
                attempts=0,
                claimed_by=None,
                claimed_at=now,
                created_at=now,
            )
        )
    elif retry and row.state == DigestRunState.FAILED:
        row.state, row.attempts, row.error = DigestRunState.PENDING, 0, None
        row.claimed_by, row.claimed_at = None, now
    session.flush()


def enqueue_requests(session: Session, approval: Approval) -> None:
    """The Approve/Reject post, once for each sponsor channel of the study."""
    channels = sponsor_channels(session, approval.study_id)
    if not channels:
        log.warning("approval %s: its study has no sponsor channel to ask in", approval.id)
    for channel in channels:
        _enqueue(session, approval.id, Work(REQUEST, channel))


def enqueue_requests_many(session: Session, approvals: Sequence[tuple[int, int]]) -> None:
    """`enqueue_requests` for new approvals, given as (approval id, study id): their rows
    cannot exist yet, so they are inserted in bulk without looking."""
    now = utcnow()
    channels: dict[int, list[str]] = {}
    rows = []
    for approval_id, study_id in approvals:
        if study_id not in channels:
            channels[study_id] = sponsor_channels(session, study_id)
            if not channels[study_id]:
                log.warning("study %s has no sponsor channel to ask for approvals in", study_id)
        rows += [
            {
                "target": outbox_target(approval_id),
                "period_key": Work(REQUEST, channel).key,
                "state": DigestRunState.PENDING,
                "attempts": 0,
                "claimed_by": None,
                "claimed_at": now,
                "created_at": now,
            }
            for channel in channels[study_id]
        ]
    bulk.insert_rows(session, DigestRun, rows)


def enqueue_decision(session: Session, approval: Approval, also: Location | None = None) -> None:
    """Show the decision in every posted copy (and `also`), then tell the submitter."""
    locations = message_locations(session, approval)
    if also is not None and also not in locations:
        locations.append(also)
    for channel, ts in locations:
        _enqueue(session, approval.id, Work(UPDATE, channel, ts))
    if submitter(session, approval) is not None:
        _enqueue(session, approval.id, Work(DM, person=approval.requested_by))
    link = vendor_channel(session, approval.study_id, approval.org_id)
    if link is not None:
        _enqueue(session, approval.id, Work(VENDOR, link.channel_id))


def submitter(session: Session, approval: Approval | ApprovalRecord) -> Actor | None:
    """Who is told the decision by DM: the submitter while registered with crobot (someone
    removed since hears nothing more about the study), unless they decided it themselves."""
    if approval.requested_by == approval.decided_by:
        return None
    team, user = person_of(approval.requested_by)
    actor = resolve_actor(session, team or "", user or "")
    return actor if actor.person is not None else None


def show_decision(session: Session, approval: Approval, location: Location) -> None:
    """A decided request clicked in a copy that still offered buttons.

    The copy is rewritten at most once: a rewrite already sent (the clicker saw the copy
    just before it changed) is not sent again, one still on its way is left to arrive,
    and only one that failed is tried again. A location the decision did not know yet
    (a copy posted meanwhile) gets its first rewrite.
    """
    _enqueue(session, approval.id, Work(UPDATE, *location), retry=True)


def delivered(session: Session, target: str, key: str, channel: str, ts: str) -> None:
    """Record what an approval outbox row did in Slack (in the row's finishing transaction)."""
    approval = session.get(Approval, approval_of(target), with_for_update=True)
    if approval is None:
        return
    work = Work.parse(key)
    if work.kind == REQUEST:
        message_posted(session, SYSTEM, approval, channel, ts)
        if approval.state != ApprovalState.PENDING:
            # Decided while this post was on its way: the decision did not know this copy.
            enqueue_decision(session, approval, also=(channel, ts))
    elif work.kind == UPDATE:
        message_updated(session, SYSTEM, approval, channel, work.ts or ts)
    elif work.kind in (DM, VENDOR):
        via = "dm" if work.kind == DM else "vendor channel"
        submitter_notified(session, SYSTEM, approval, channel, ts, via=via)


# --- audit of what was shown ------------------------------------------------------------


def message_posted(
    session: Session, actor: Actor, approval: Approval, channel_id: str, ts: str
) -> None:
    """Remember a posted request; the first post becomes the message updated in place."""
    primary = approval.message_ts is None
    before = None
    if primary:
        # The approval row changes (where its message lives): the previous value is kept.
        before = {"channel_id": approval.channel_id, "message_ts": approval.message_ts}
        approval.channel_id, approval.message_ts = channel_id, ts
        session.flush()
    audit.record(
        session,
        actor,
        POSTED,
        "approval",
        approval.id,
        study_id=approval.study_id,
        before=before,
        after={"channel": channel_id, "ts": ts, "primary": primary},
    )


def message_updated(
    session: Session, actor: Actor, approval: Approval, channel_id: str, ts: str
) -> None:
    audit.record(
        session,
        actor,
        UPDATED,
        "approval",
        approval.id,
        study_id=approval.study_id,
        after={"channel": channel_id, "ts": ts, "state": approval.state.value},
    )


def submitter_notified(
    session: Session, actor: Actor, approval: Approval, channel_id: str, ts: str, *, via: str
) -> None:
    """The decision told to the submitter (`via` "dm") or in the vendor's channel."""
    audit.record(
        session,
        actor,
        NOTIFIED,
        "approval",
        approval.id,
        study_id=approval.study_id,
        after={
            "via": via,
            "channel": channel_id,
            "ts": ts,
            "user": approval.requested_by,
            "state": approval.state.value,
        },
    )


def refused(
    session: Session, actor: Actor, approval_id: int, *, decision: str, via: str, reason: str
) -> None:
    """An attempt to decide that was refused (not an approver of the study, someone crobot
    does not know, no such request): logged, and for a request that exists audited, each
    attempt, in a transaction of its own.

    `decision` is what was asked ("approve" | "reject"), `via` how ("button" | "form"),
    `reason` what the person was told. An id no request has (Slack's buttons only carry
    real ones) has no subject to attach an audit event to: it is logged only.
    """
    approval = session.get(Approval, approval_id)
    log.warning(
        "approval #%s: %s by %s (%s) refused: %s", approval_id, decision, actor.label, via, reason
    )
    if approval is None:
        return
    audit.record(
        session,
        actor,
        REFUSED,
        "approval",
        approval.id,
        study_id=approval.study_id,
        after={"decision": decision, "via": via, "reason": reason},
    )


def message_locations(session: Session, approval: Approval) -> list[Location]:
    """Every (channel, ts) the request was posted to, primary first."""
    out: list[Location] = []
    if approval.channel_id and approval.message_ts:
        out.append((approval.channel_id, approval.message_ts))
    events = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == POSTED,
            AuditEvent.subject_type == "approval",
            AuditEvent.subject_id == str(approval.id),
        )
        .order_by(AuditEvent.seq)
    )
    for ev in events:
        after = ev.after or {}
        loc = (str(after.get("channel")), str(after.get("ts")))
        if loc not in out:
            out.append(loc)
    return out
