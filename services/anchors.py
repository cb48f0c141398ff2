"""Anchors: the audit chain's head, witnessed outside the database.

Once a day (and on `crobot audit anchor`) the head — its sequence number and HMAC — is
posted to each study's first sponsor channel through the outbox (target
`anchor:<study id>`, key: the UTC day, so once per study per day), and where it was posted
is stored in `audit_anchors`. Slack keeps the message whatever happens to the database:
`crobot audit verify --anchors` reads every anchor back from Slack and checks that the
chain's event at that sequence number still has that HMAC. A chain rewritten after an
anchor was posted — even by someone holding the key — no longer matches it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services.lookup import sponsor_channels
from crobot.storage.models import AuditAnchor, AuditEvent, AuditHead, Study

TARGET_PREFIX = "anchor:"
METADATA_EVENT = "crobot_audit_anchor"
_TEXT = re.compile(r"event #(\d+)\b.*?\b([0-9a-f]{64})\b", re.S)


def target(study_id: int) -> str:
    return f"{TARGET_PREFIX}{study_id}"


def studies(session: Session) -> list[int]:
    """Studies with a sponsor channel to post their anchor to."""
    ids = session.scalars(select(Study.id).order_by(Study.id))
    return [s for s in ids if sponsor_channels(session, s)]


@dataclass(frozen=True)
class Head:
    study_code: str
    channel: str
    seq: int
    hash: str


def head_for(session: Session, study_id: int) -> Head | None:
    """What a study's anchor states now (the chain's head), and where it goes: the
    study's first sponsor channel. None: no channel, or nothing to anchor yet."""
    study = session.get(Study, study_id)
    head = session.execute(select(AuditHead.seq, AuditHead.hash)).one_or_none()
    if study is None or head is None or head.seq == 0:
        return None
    channels = sponsor_channels(session, study_id)
    if not channels:
        return None
    return Head(study.code, channels[0], head.seq, head.hash)


def delivered(
    session: Session, run_target: str, day: str, channel: str, ts: str, posted: dict[str, Any]
) -> None:
    """Remember where an anchor was posted and what it says (once per study and day)."""
    study_id = int(run_target.removeprefix(TARGET_PREFIX))
    on = date.fromisoformat(day)
    exists = session.scalar(
        select(AuditAnchor.id).where(AuditAnchor.study_id == study_id, AuditAnchor.day == on)
    )
    seq, digest = posted.get("seq"), posted.get("hash")
    if exists is not None or not isinstance(seq, int) or not isinstance(digest, str):
        return
    session.add(
        AuditAnchor(
            study_id=study_id, day=on, seq=seq, hash=digest, channel_id=channel, slack_ts=ts
        )
    )


def read(msg: dict[str, Any]) -> tuple[int, str] | None:
    """(seq, HMAC) an anchor message states: its metadata, else its text."""
    meta = msg.get("metadata") or {}
    if meta.get("event_type") == METADATA_EVENT:
        payload = meta.get("event_payload") or {}
        seq, digest = payload.get("seq"), payload.get("hash")
        if isinstance(seq, int) and isinstance(digest, str):
            return seq, digest
    found = _TEXT.search(str(msg.get("text") or ""))
    return (int(found.group(1)), found.group(2)) if found else None


@dataclass(frozen=True)
class AnchorCheck:
    anchor: AuditAnchor
    ok: bool
    problem: str | None = None

    def describe(self) -> str:
        a = self.anchor
        where = f"{a.day} #{a.seq} ({a.channel_id} {a.slack_ts})"
        return f"anchor {where}: " + ("matches the chain" if self.ok else str(self.problem))


class Unreadable(Exception):
    """Slack would not give the message back (why, as Slack said)."""


# Given (channel, ts), the message Slack holds there (None: no message there).
Fetch = Callable[[str, str], dict[str, Any] | None]


def check(session: Session, fetch: Fetch) -> list[AnchorCheck]:
    """Every stored anchor, read back from Slack and compared with the chain."""
    results = []
    for anchor in session.scalars(select(AuditAnchor).order_by(AuditAnchor.id)):
        results.append(_check_one(session, anchor, fetch))
    return results


def _check_one(session: Session, anchor: AuditAnchor, fetch: Fetch) -> AnchorCheck:
    try:
        msg = fetch(anchor.channel_id, anchor.slack_ts)
    except Unreadable as exc:
        return AnchorCheck(anchor, False, f"cannot be read back from Slack: {exc}")
    if msg is None:
        return AnchorCheck(anchor, False, "no message there in Slack any more (deleted?)")
    stated = read(msg)
    if stated is None:
        return AnchorCheck(anchor, False, "the Slack message there is not an anchor")
    seq, digest = stated
    if (seq, digest) != (anchor.seq, anchor.hash):
        return AnchorCheck(anchor, False, f"Slack says #{seq} {digest}; the stored row differs")
    event_hash = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    if event_hash is None:
        return AnchorCheck(anchor, False, f"the chain has no event #{seq} any more")
    if event_hash != digest:
        return AnchorCheck(anchor, False, f"the chain's event #{seq} no longer has that HMAC")
    return AnchorCheck(anchor, True)
