"""What crobot shows in Slack about approvals: the read model, and the outbox rows that post it.

`ApprovalRecord` is the one read model of an approval (messages, the App Home, the audit
export), loaded by one query. An approval's Slack work is a set of outbox rows
(`DigestRun` with target `approval:<id>`, delivered exactly once by digests/delivery.py),
written in the same transaction as the change that calls for them:

- `request:<channel>` — the Approve/Reject post, one per sponsor channel of the study;
- `update:<channel>:<ts>` — a posted copy rewritten to show the decision;
- `notice:<channel>` — the submitter told in the thread of the primary message.

The Approval row keeps the primary message (the first one posted) so it can be updated in
place; every post, update and notice is an audit event, so the audit trail is also the
complete record of where a request was shown (a study may have several sponsor channels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import SYSTEM, Actor, resolve_actor
from crobot.services.lookup import sponsor_channels
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    DigestRun,
    DigestRunState,
    Organization,
    Study,
    SubjectType,
    utcnow,
)

log = logging.getLogger(__name__)

POSTED = "approval.message.post"
UPDATED = "approval.message.update"
NOTIFIED = "approval.notify"

TARGET_PREFIX = "approval:"
REQUEST, UPDATE, NOTICE = "request", "update", "notice"

Location = tuple[str, str]  # (channel id, message ts)


# --- the read model -------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval with its study, organisation and decision."""

    id: int
    study_id: int
    study: str  # the study's code
    org: str  # the submitting organisation's name
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
        }


def _select() -> Select[Approval, str, str]:
    return (
        select(Approval, Study.code, Organization.name)
        .join(Study, Study.id == Approval.study_id)
        .join(Organization, Organization.id == Approval.org_id)
    )


def records(
    session: Session, *where: ColumnElement[bool], limit: int | None = None
) -> list[ApprovalRecord]:
    """Approvals matching `where`, oldest request first."""
    stmt = _select().where(*where).order_by(Approval.requested_at, Approval.id).limit(limit)
    return [
        ApprovalRecord(
            id=a.id,
            study_id=a.study_id,
            study=code,
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
        )
        for a, code, org in session.execute(stmt)
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

    kind: str  # REQUEST | UPDATE | NOTICE
    channel: str
    ts: str | None = None  # UPDATE: the message to rewrite

    @property
    def key(self) -> str:
        return ":".join(p for p in (self.kind, self.channel, self.ts) if p)

    @classmethod
    def parse(cls, key: str) -> Work:
        kind, _, rest = key.partition(":")
        channel, _, ts = rest.partition(":")
        if kind not in (REQUEST, UPDATE, NOTICE) or not channel or (kind == UPDATE) != bool(ts):
            raise ValueError(f"not an approval outbox key: {key!r}")
        return cls(kind, channel, ts or None)


def _row(session: Session, approval_id: int, work: Work) -> DigestRun | None:
    return session.scalars(
        select(DigestRun).where(
            DigestRun.target == outbox_target(approval_id), DigestRun.period_key == work.key
        )
    ).one_or_none()


def _enqueue(session: Session, approval_id: int, work: Work, *, again: bool = False) -> None:
    """Add an unclaimed row unless it exists; `again` re-arms a finished one.

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
    elif again and row.state != DigestRunState.PENDING:
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


def enqueue_decision(session: Session, approval: Approval, also: Location | None = None) -> None:
    """Show the decision in every posted copy (and `also`), then tell the submitter."""
    locations = message_locations(session, approval)
    if also is not None and also not in locations:
        locations.append(also)
    for channel, ts in locations:
        _enqueue(session, approval.id, Work(UPDATE, channel, ts))
    if approval.channel_id and approval.message_ts:
        _enqueue(session, approval.id, Work(NOTICE, approval.channel_id))


def show_decision(session: Session, approval: Approval, location: Location) -> None:
    """A copy that still offers buttons after the decision: rewrite it (again)."""
    _enqueue(session, approval.id, Work(UPDATE, *location), again=True)


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
    else:
        submitter_notified(session, SYSTEM, approval, channel, approval.message_ts or ts)


# --- audit of what was shown ------------------------------------------------------------


def message_posted(
    session: Session, actor: Actor, approval: Approval, channel_id: str, ts: str
) -> None:
    """Remember a posted request; the first post becomes the message updated in place."""
    primary = approval.message_ts is None
    if primary:
        approval.channel_id, approval.message_ts = channel_id, ts
        session.flush()
    audit.record(
        session,
        actor,
        POSTED,
        "approval",
        approval.id,
        study_id=approval.study_id,
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
    session: Session, actor: Actor, approval: Approval, channel_id: str, thread_ts: str
) -> None:
    audit.record(
        session,
        actor,
        NOTIFIED,
        "approval",
        approval.id,
        study_id=approval.study_id,
        after={
            "channel": channel_id,
            "thread_ts": thread_ts,
            "user": approval.requested_by,
            "state": approval.state.value,
        },
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
