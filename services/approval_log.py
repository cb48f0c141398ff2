"""Where approval requests were posted in Slack, and the approval history for an export.

The Approval row keeps the primary message (channel + ts) so it can be updated in place;
every post, message update and thread notice is an audit event, so the audit trail is
also the complete record of where a request was shown (a study may have more than one
sponsor channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.approvals import record_message
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    Organization,
    Study,
    SubjectType,
)

POSTED = "approval.message.post"
UPDATED = "approval.message.update"
NOTIFIED = "approval.notify"


def user_of(label: str | None) -> str | None:
    """The Slack user id of an audit label `TEAM:USER` (None stays None)."""
    if not label:
        return None
    return label.rsplit(":", 1)[-1]


def for_subject(session: Session, subject_type: SubjectType, subject_id: int) -> Approval | None:
    return session.scalars(
        select(Approval).where(
            Approval.subject_type == subject_type, Approval.subject_id == subject_id
        )
    ).one_or_none()


def message_posted(
    session: Session, actor: Actor, approval: Approval, channel_id: str, ts: str
) -> None:
    """Remember a posted request; the first post becomes the message updated in place."""
    primary = approval.message_ts is None
    if primary:
        record_message(session, approval, channel_id, ts)
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


def message_locations(session: Session, approval: Approval) -> list[tuple[str, str]]:
    """Every (channel, ts) the request was posted to, primary first."""
    out: list[tuple[str, str]] = []
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


@dataclass(frozen=True)
class ApprovalRecord:
    """One approval with its decision, for inspections (`crobot audit export`)."""

    id: int
    study: str
    org: str
    subject: str
    summary: dict[str, Any]
    requested_by: str
    requested_at: datetime
    state: ApprovalState
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    channel_id: str | None
    message_ts: str | None

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


def history(session: Session, *, study_id: int | None = None) -> list[ApprovalRecord]:
    """Every approval (pending and decided), oldest first, optionally for one study."""
    stmt = (
        select(Approval, Study.code, Organization.name)
        .join(Study, Study.id == Approval.study_id)
        .join(Organization, Organization.id == Approval.org_id)
        .order_by(Approval.requested_at, Approval.id)
    )
    if study_id is not None:
        stmt = stmt.where(Approval.study_id == study_id)
    return [
        ApprovalRecord(
            id=a.id,
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
