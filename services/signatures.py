"""Approvals as electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.200, §11.300).

A decision is a signature manifest: the signer's printed name (their registered display
name, frozen at signing), the date and time (UTC, and the signer's local time from the
zone known at signing) and the meaning ("Approved: reviewed and accepted as accurate",
"Rejected: <reason>").

Binding (§11.70): at decision time the approval stores `content_hash`, the SHA-256 of a
canonical JSON of exactly what was decided, read from the record itself (study, subject
kind and id, value, period, note, submitter), and `signature_hash`, the SHA-256 of that
hash bound to the approval, the decision, the signer, the time and the meaning. The
decision's audit event carries both, so the hash chain holds a copy no later edit of the
approval row can reach. `verify_signatures` recomputes them from the current record:
a signature copied onto another approval, or signed content changed afterwards, fails.

Part 11 mode (a study's `signatures` is `part11`): a decision needs two components, the
Slack identity and a signing PIN the approver set privately. Only a salted scrypt hash of
the PIN is stored; 5 wrong PINs in a row lock signing for 15 minutes; every wrong PIN,
the lock, and every attempt refused during it are audited. Outside Part 11 mode a decision
is an acknowledgement by the Slack identity, and is never called "signed".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.services.approval_log import ApprovalRecord
from crobot.services.errors import UserError
from crobot.services.permissions import require_known
from crobot.services.user_tz import known_timezone, valid_zone
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    KpiDefinition,
    KpiUpdate,
    Milestone,
    SignatureMode,
    SigningPin,
    SiteReport,
    Study,
    SubjectType,
    utcnow,
)

APPROVED_MEANING = "Approved: reviewed and accepted as accurate"
SIGNED = "part11"  # signature_method of a decision made with identity and PIN
ACKNOWLEDGED = "acknowledged"  # the Slack identity alone

MIN_PIN, MAX_PIN = 6, 64
MAX_ATTEMPTS = 5
LOCK = timedelta(minutes=15)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

PIN_SET = "signature.pin_set"
PIN_RESET = "signature.pin_reset"
PIN_WRONG = "signature.pin_wrong"
PIN_LOCKED = "signature.locked"
PIN_REFUSED_LOCKED = "signature.refused_locked"
HOW_TO_SET = "Set one in crobot's App Home: open crobot, Home tab, “Set signing PIN”."


def meaning(state: ApprovalState, reason: str | None) -> str:
    """What the signature means (§11.50(a)(3))."""
    if state == ApprovalState.APPROVED:
        return APPROVED_MEANING
    if state == ApprovalState.REJECTED:
        return f"Rejected: {reason or '—'}"
    return "Pending"


def method_word(method: str | None) -> str:
    """How the UI names a decision: only a Part 11 decision is "signed"."""
    return "signed" if method == SIGNED else "acknowledged"


# --- the manifest shown with every decision (§11.50) -----------------------------------


@dataclass(frozen=True)
class Manifest:
    name: str  # the signer's printed name
    at: datetime  # UTC
    tz: str | None  # the signer's zone at signing
    meaning: str
    method: str | None

    @property
    def word(self) -> str:
        return method_word(self.method)

    @property
    def utc(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} UTC"

    @property
    def local(self) -> str | None:
        """The signer's local time, `2026-11-25 14:05:00 EST (UTC-05:00)`."""
        zone = valid_zone(self.tz)
        if zone is None:
            return None
        at = self.at.astimezone(ZoneInfo(zone))
        offset = at.strftime("%z")
        return f"{at:%Y-%m-%d %H:%M:%S} {at.tzname()} (UTC{offset[:3]}:{offset[3:]})"


def manifest(rec: ApprovalRecord | Approval) -> Manifest | None:
    """The decision's manifest; None while pending. A decision from before signatures were
    recorded names its decider by their audit label."""
    if rec.state == ApprovalState.PENDING or rec.decided_at is None:
        return None
    return Manifest(
        name=rec.signer_name or rec.decided_by or "unknown",
        at=rec.decided_at,
        tz=rec.signer_tz,
        meaning=meaning(rec.state, rec.reason),
        method=rec.signature_method,
    )


# --- binding (§11.70) -----------------------------------------------------------------


def _sha256(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _person(label: str) -> list[str]:
    team, _, user = label.rpartition(":")
    return [team, user]


def signed_content(session: Session, approval: Approval) -> dict[str, Any]:
    """Exactly what a decision is about, read from the record it decides."""
    study = session.get_one(Study, approval.study_id)
    content: dict[str, Any] = {
        "study": study.code,
        "subject_type": approval.subject_type.value,
        "subject_id": approval.subject_id,
    }
    if approval.subject_type == SubjectType.KPI_UPDATE:
        update = session.get_one(KpiUpdate, approval.subject_id)
        kpi = session.get_one(KpiDefinition, update.kpi_id)
        content |= {
            "org_id": update.org_id,
            "kpi": kpi.key,
            "value": update.value,
            "period": update.period_label,
            "note": update.note,
            "submitter": _person(update.submitted_by),
        }
    elif approval.subject_type == SubjectType.SITE_REPORT:
        report = session.get_one(SiteReport, approval.subject_id)
        content |= {
            "org_id": report.org_id,
            "site": report.site.code,
            "value": report.enrolled,
            "period": report.period_label,
            "note": None,
            "submitter": _person(report.submitted_by),
        }
    else:
        ms = session.get_one(Milestone, approval.subject_id)
        # A rejection withdraws the reported date from the milestone: what was decided on
        # is then the date as reported (frozen in the request).
        if approval.state == ApprovalState.REJECTED:
            actual = approval.summary.get("actual")
        else:
            actual = ms.actual_date.isoformat() if ms.actual_date else None
        content |= {
            "org_id": ms.org_id,
            "milestone": ms.name,
            "value": actual,
            "period": ms.planned_date.isoformat(),
            "note": None,
            "submitter": _person(approval.requested_by),
        }
    return content


def _signature_digest(approval: Approval) -> str:
    at = approval.decided_at.isoformat() if approval.decided_at else None
    return _sha256(
        {
            "approval": approval.id,
            "content": approval.content_hash,
            "decision": approval.state.value,
            "signer": approval.decided_by,
            "signer_name": approval.signer_name,
            "signer_tz": approval.signer_tz,
            "at": at,
            "meaning": meaning(approval.state, approval.reason),
            "method": approval.signature_method,
        }
    )


SIGNATURE_FIELDS = (
    "signer_name",
    "signer_tz",
    "signature_method",
    "content_hash",
    "signature_hash",
)


def sign(session: Session, approval: Approval, actor: Actor, *, method: str) -> None:
    """Stamp a decision just made (state, decider, time and reason already set) as a
    signature; call it before the decision is carried onto its subject."""
    person = actor.person
    approval.signer_name = person.display_name if person is not None else actor.label
    approval.signer_tz = known_timezone(session, actor, now=utcnow())
    approval.signature_method = method
    approval.content_hash = _sha256(signed_content(session, approval))
    approval.signature_hash = _signature_digest(approval)


DECISIONS = ("approval.approve", "approval.reject")


def _chained_signatures(session: Session) -> dict[str, str | None]:
    """The signature hash each approval's decision event recorded (the last one), by
    approval id: one pass over the decision events."""
    rows = session.execute(
        select(AuditEvent.subject_id, AuditEvent.after)
        .where(AuditEvent.subject_type == "approval", AuditEvent.action.in_(DECISIONS))
        .order_by(AuditEvent.seq)
    )
    return {str(sid): (after or {}).get("signature_hash") for sid, after in rows}


def verify_signatures(session: Session) -> list[str]:
    """Every problem with the decisions' signatures (empty: all bound to what they sign)."""
    chained = _chained_signatures(session)
    problems: list[str] = []
    stmt = select(Approval).order_by(Approval.id).execution_options(yield_per=1000)
    for approval in session.scalars(stmt):
        problems += _problems(session, approval, chained.get(str(approval.id)))
    return problems


def _problems(session: Session, approval: Approval, chained: str | None) -> list[str]:
    name = f"approval #{approval.id}"
    signed = approval.signature_hash is not None or approval.content_hash is not None
    if approval.state == ApprovalState.PENDING:
        return [f"{name}: pending, yet it carries a signature"] if signed else []
    if not signed:
        # Decided before signatures were recorded; unless the audit trail says otherwise.
        return [f"{name}: its signature was removed"] if chained else []
    out = []
    if _sha256(signed_content(session, approval)) != approval.content_hash:
        out.append(f"{name}: the signed content changed after the decision")
    if _signature_digest(approval) != approval.signature_hash:
        out.append(f"{name}: the signature does not belong to this decision (copied or edited)")
    if chained != approval.signature_hash:
        out.append(f"{name}: the signature differs from the one in the audit trail")
    return out


# --- the signing PIN (§11.200(a), §11.300) ----------------------------------------------


class PinRefused(UserError):
    """A Part 11 decision refused for its PIN; `wrong` when a PIN was given and is wrong
    (it counts towards the lock), else no PIN, none set, or signing is locked."""

    def __init__(self, message: str, hint: str | None = None, *, wrong: bool = False) -> None:
        super().__init__(message, hint, field="pin")
        self.wrong = wrong


def _hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _pin_matches(stored: str, pin: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def _pin_row(session: Session, actor: Actor, *, lock: bool = False) -> SigningPin | None:
    stmt = select(SigningPin).where(
        SigningPin.team_id == actor.team_id, SigningPin.user_id == actor.user_id
    )
    return session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()


def has_pin(session: Session, actor: Actor) -> bool:
    return _pin_row(session, actor) is not None


def _locked(row: SigningPin, now: datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def _lock_message(row: SigningPin) -> PinRefused:
    until = f"{row.locked_until:%H:%M} UTC" if row.locked_until else "later"
    return PinRefused(
        f"Signing is locked after {MAX_ATTEMPTS} wrong PINs; try again after {until}.",
        "Nothing was decided.",
    )


def set_pin(
    session: Session, actor: Actor, pin: str, confirm: str, *, current: str | None = None
) -> None:
    """Set (or change) the actor's signing PIN; changing it needs the current one."""
    require_known(actor)
    if pin != confirm:
        raise UserError("The two PINs differ.", "Type the same PIN twice.", field="confirm")
    if not MIN_PIN <= len(pin) <= MAX_PIN or pin.strip() != pin:
        raise UserError(
            f"A signing PIN has {MIN_PIN} to {MAX_PIN} characters, no leading or trailing spaces.",
            field="pin",
        )
    now = utcnow()
    row = _pin_row(session, actor, lock=True)
    if row is not None:
        check_pin(session, actor, current)  # a wrong current PIN counts as a wrong PIN
    before = {"set_at": row.set_at.isoformat()} if row is not None else None
    if row is None:
        row = SigningPin(team_id=actor.team_id, user_id=actor.user_id, failed_attempts=0)
        session.add(row)
    row.pin_hash, row.set_at = _hash_pin(pin), now
    row.failed_attempts, row.locked_until = 0, None
    session.flush()
    audit.record(
        session,
        actor,
        PIN_SET,
        "signing_pin",
        row.id,
        before=before,
        after={"set_at": now.isoformat()},  # never the PIN, nor its hash
    )


def reset_pin(session: Session, actor: Actor, team_id: str, user_id: str) -> None:
    """An administrator removes a forgotten PIN (the CLI's operator); the person then sets a
    new one in the App Home. Audited with when the removed PIN was set."""
    row = session.scalars(
        select(SigningPin)
        .where(SigningPin.team_id == team_id, SigningPin.user_id == user_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise UserError(f"{team_id}:{user_id} has no signing PIN.")
    before = {"person": f"{team_id}:{user_id}", "set_at": row.set_at.isoformat()}
    pin_id = row.id
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor,
        PIN_RESET,
        "signing_pin",
        pin_id,
        before=before,
        after={"person": f"{team_id}:{user_id}", "removed": True},
    )


def check_pin(session: Session, actor: Actor, pin: str | None) -> None:
    """The second component of a signature: raises `PinRefused` unless `pin` is the actor's
    PIN and signing is not locked. A right PIN clears the count of wrong ones; a wrong one
    is counted by `refused` in a transaction of its own (this one is rolled back)."""
    row = _pin_row(session, actor, lock=True)
    if row is None:
        raise PinRefused("You have not set a signing PIN yet.", HOW_TO_SET)
    now = utcnow()
    if _locked(row, now):
        raise _lock_message(row)
    if not pin:
        raise PinRefused("Enter your signing PIN.")
    if not _pin_matches(row.pin_hash, pin):
        left = MAX_ATTEMPTS - (row.failed_attempts + 1)
        hint = f"{left} more wrong PIN(s) lock signing for 15 minutes." if left > 0 else None
        raise PinRefused("That is not your signing PIN; nothing was decided.", hint, wrong=True)
    if row.failed_attempts or row.locked_until:
        row.failed_attempts, row.locked_until = 0, None
        session.flush()


def refused(
    session: Session, actor: Actor, exc: PinRefused, *, subject: str, subject_id: object
) -> None:
    """Count and audit a refused PIN (`exc` from `check_pin`): each wrong PIN, the lock it
    may trigger, and each attempt made while locked. Its own write transaction."""
    row = _pin_row(session, actor, lock=True)
    if row is None:
        return
    now = utcnow()
    where = {"subject": f"{subject}:{subject_id}"}
    if _locked(row, now):
        until = row.locked_until.isoformat() if row.locked_until else None
        audit.record(
            session,
            actor,
            PIN_REFUSED_LOCKED,
            "signing_pin",
            row.id,
            after={**where, "locked_until": until},
        )
        return
    if not exc.wrong:
        return
    before = {"failed_attempts": row.failed_attempts}
    row.failed_attempts += 1
    session.flush()
    audit.record(
        session,
        actor,
        PIN_WRONG,
        "signing_pin",
        row.id,
        before=before,
        after={**where, "failed_attempts": row.failed_attempts},
    )
    if row.failed_attempts >= MAX_ATTEMPTS:
        lock_before = {"failed_attempts": row.failed_attempts, "locked_until": None}
        row.failed_attempts, row.locked_until = 0, now + LOCK
        session.flush()
        audit.record(
            session,
            actor,
            PIN_LOCKED,
            "signing_pin",
            row.id,
            before=lock_before,
            after={"failed_attempts": 0, "locked_until": row.locked_until.isoformat()},
        )


def mode(session: Session, study_id: int) -> SignatureMode:
    return session.get_one(Study, study_id).signatures
