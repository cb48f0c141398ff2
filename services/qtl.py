"""Quality tolerance limits (ICH E6(R3)) and the loop from a breach to its closure.

- **Limits.** A sponsor approver pre-specifies, per study and KPI, a limit at trial level
  (every organisation's value is checked) or for one organisation, on the side the KPI's
  direction calls for (`max` for lower-is-better, `min` for higher-is-better), with an
  optional warning threshold (a key risk indicator) inside it and the rationale. Setting,
  changing and withdrawing a limit is audited with the rationale.
- **Detection at the moment of truth** (`check`): when a value becomes approved (an
  approver's decision, or a sponsor approver's own entry or import), it is checked against
  the limits in force. Beyond the warning threshold: one warning to the sponsor channel per
  limit, organisation and period. Beyond the limit: one breach record per study, KPI,
  organisation and period, posted through the outbox to the sponsor channels (with the
  Assign owner / Evaluate buttons) and to the vendor's own channel for a vendor's KPI. A
  value awaiting approval, or rejected, is never checked; a later value back inside does
  not close a breach.
- **Evaluation and closure** (`close`): systemic yes/no, root cause, impact on the
  participants' safety or the data's reliability, action needed yes/no and the remedial
  actions (which may create linked action items) are all required; closing is a sponsor
  approver's decision, made as a signature in a Part 11 study, and shown with the same
  manifest as approvals (services/signatures.py).

Outbox rows (digests/delivery.py): `qtl:<breach id>` keyed `open:<channel>` (the breach)
or `closed:<channel>` (its closure), and `qtlwarn:<limit id>` keyed
`<org id>:<period start>:<channel>:<update id>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crobot.services import audit, signatures
from crobot.services.actor import SYSTEM, Actor
from crobot.services.errors import NotFound, UserError, msg
from crobot.services.kpi_values import shown
from crobot.services.lookup import (
    kpi_by_key,
    org_by_name,
    person_named,
    sponsor_channels,
    study_named_by,
    vendor_channel,
    vendor_org_ids,
)
from crobot.services.outbox_rows import enqueue
from crobot.services.permissions import (
    is_sponsor,
    is_sponsor_staff,
    require_breach_closer,
    require_limit_setter,
)
from crobot.services.user_tz import known_timezone
from crobot.services.visibility import Audience, Scope
from crobot.storage.models import (
    ActionItem,
    BreachStatus,
    DigestRun,
    Direction,
    KpiDefinition,
    KpiUpdate,
    QtlBound,
    QtlBreach,
    QualityLimit,
    SignatureMode,
    Study,
    utcnow,
)

SET_HINT = 'Write it as `/cro qtl set STUDY KPI max:N|min:N [warn:N] [org:ORG] [rationale:"..."]`.'
BREACH_PREFIX = "qtl:"
WARN_PREFIX = "qtlwarn:"
EVALUATION_DAYS = 14  # an open breach's evaluation is due this long after detection
MAX_RATIONALE = 500
MAX_TEXT = 3000
LIMIT_FIELDS = (
    "study_id",
    "kpi_id",
    "org_id",
    "bound",
    "limit_value",
    "warn_value",
    "rationale",
    "active",
)
BREACH_FIELDS = (
    "study_id",
    "kpi_id",
    "org_id",
    "period_label",
    "observed",
    "bound",
    "limit_value",
    "kpi_update_id",
    "submitted_by",
    "evaluation_due",
)
EVALUATION_FIELDS = (
    "systemic",
    "root_cause",
    "impact",
    "action_needed",
    "remedial",
    "action_ids",
    "status",
    "closed_by",
    "closed_at",
    "signer_name",
    "signer_tz",
    "signature_method",
)
CLOSED_MEANING = "Evaluated and closed"


def expected_bound(kpi: KpiDefinition) -> QtlBound:
    """A lower-is-better KPI gets a `max`, a higher-is-better one a `min`."""
    return QtlBound.MAX if kpi.direction == Direction.DOWN else QtlBound.MIN


def beyond(bound: QtlBound, limit: float, value: float) -> bool:
    return value > limit if bound == QtlBound.MAX else value < limit


def _number(raw: object, name: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise UserError(msg("`{}` is not a number.", raw), SET_HINT, field=name) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UserError(msg("`{}` is not a number.", raw), SET_HINT, field=name)
    return value


def set_limit(
    session: Session,
    actor: Actor,
    *,
    study: str,
    kpi: str,
    bound: str,
    limit: object,
    warn: object | None = None,
    org: str | None = None,
    rationale: str | None = None,
) -> QualityLimit:
    """Set (or set again: the same study, KPI and organisation) a limit in force."""
    st = study_named_by(session, actor, study)
    require_limit_setter(actor, st)
    definition = kpi_by_key(session, kpi)
    side = QtlBound(bound)
    want = expected_bound(definition)
    if side != want:
        better = "lower" if definition.direction == Direction.DOWN else "higher"
        raise UserError(
            msg(
                "{} is better {}: its limit is a `{}:`, not `{}:`.",
                definition.label,
                better,
                want.value,
                side.value,
            ),
            SET_HINT,
            field="bound",
        )
    value = _number(limit, "limit")
    warning = _number(warn, "warn") if warn is not None else None
    if warning is not None and (beyond(side, value, warning) or warning == value):
        inside = "below" if side == QtlBound.MAX else "above"
        raise UserError(
            msg("The warning threshold must be {} the limit ({}).", inside, shown(value)),
            SET_HINT,
            field="warn",
        )
    org_id = None
    if org:
        o = org_by_name(session, org)
        if o.id not in vendor_org_ids(session, st.id) and o.id != st.sponsor_org_id:
            raise UserError("That organisation is not on this study.", SET_HINT, field="org")
        org_id = o.id
    why = (rationale or "").strip() or None
    if why is not None and len(why) > MAX_RATIONALE:
        raise UserError(f"The rationale is too long (at most {MAX_RATIONALE} characters).")
    row = session.scalars(
        select(QualityLimit).where(
            QualityLimit.study_id == st.id,
            QualityLimit.kpi_id == definition.id,
            QualityLimit.org_id.is_(None) if org_id is None else QualityLimit.org_id == org_id,
            QualityLimit.active.is_(True),
        )
    ).first()
    before = audit.snapshot(row, *LIMIT_FIELDS) if row is not None else None
    if row is None:
        row = QualityLimit(
            study_id=st.id, kpi_id=definition.id, org_id=org_id, created_by=actor.label
        )
        session.add(row)
    row.bound, row.limit_value, row.warn_value, row.rationale = side, value, warning, why
    row.active = True
    session.flush()
    audit.record(
        session,
        actor,
        "qtl.set" if before is None else "qtl.update",
        "qtl_limit",
        row.id,
        study_id=st.id,
        before=before,
        after=audit.snapshot(row, *LIMIT_FIELDS),
    )
    return row


def turn_off(session: Session, actor: Actor, limit_id: int) -> QualityLimit:
    """Withdraw a limit: its breaches stay on record; new values are no longer checked."""
    row = session.get(QualityLimit, limit_id)
    if row is None or not is_sponsor(actor, row.study):
        raise NotFound(msg("There is no quality tolerance limit #{}.", limit_id), field="id")
    require_limit_setter(actor, row.study)
    if not row.active:
        return row
    before = audit.snapshot(row, *LIMIT_FIELDS)
    row.active = False
    session.flush()
    audit.record(
        session,
        actor,
        "qtl.off",
        "qtl_limit",
        row.id,
        study_id=row.study_id,
        before=before,
        after=audit.snapshot(row, *LIMIT_FIELDS),
    )
    return row


def limits(session: Session, study_id: int, audience: Audience) -> list[QualityLimit]:
    """The limits in force an audience sees: the sponsor all, a vendor the trial-level ones
    and its own."""
    stmt = select(QualityLimit).where(
        QualityLimit.study_id == study_id, QualityLimit.active.is_(True)
    )
    if audience.scope != Scope.SPONSOR:
        own = QualityLimit.org_id == audience.org_id if audience.org_id else False
        stmt = stmt.where(QualityLimit.org_id.is_(None) | own)
    return list(session.scalars(stmt.order_by(QualityLimit.id)))


def breaches(
    session: Session,
    audience: Audience | None,
    *,
    study_id: int | None = None,
    open_only: bool = False,
) -> list[QtlBreach]:
    """Breaches an audience sees (None: all): the sponsor every one, a vendor those of its
    own KPIs, anyone else none."""
    stmt = select(QtlBreach)
    if study_id is not None:
        stmt = stmt.where(QtlBreach.study_id == study_id)
    if audience is not None:
        stmt = stmt.where(QtlBreach.study_id == audience.study_id)
        if audience.scope == Scope.VENDOR and audience.org_id is not None:
            stmt = stmt.where(QtlBreach.org_id == audience.org_id)
        elif audience.scope != Scope.SPONSOR:
            return []
    if open_only:
        stmt = stmt.where(QtlBreach.status == BreachStatus.OPEN)
    return list(session.scalars(stmt.order_by(QtlBreach.detected_at, QtlBreach.id)))


def limit_text(bound: QtlBound, value: float) -> str:
    return f"{'≤' if bound == QtlBound.MAX else '≥'} {shown(value)}"


# --- detection -------------------------------------------------------------------------


def check(session: Session, update: KpiUpdate, today: date) -> QtlBreach | None:
    """Check a value that has just become approved; the breach it opened, if any."""
    rows = list(
        session.scalars(
            select(QualityLimit).where(
                QualityLimit.study_id == update.study_id,
                QualityLimit.kpi_id == update.kpi_id,
                QualityLimit.active.is_(True),
                QualityLimit.org_id.is_(None) | (QualityLimit.org_id == update.org_id),
            )
        )
    )
    return _check(session, rows, update, today)


def check_many(session: Session, updates: Sequence[tuple[int, int, int]], today: date) -> None:
    """`check` for a batch of values approved at once (a CSV import), given as (update id,
    study id, KPI id): the limits are read once, and only values of a KPI with a limit
    are loaded to be checked."""
    studies = {study_id for _, study_id, _ in updates}
    limits: dict[tuple[int, int], list[QualityLimit]] = {}
    for lim in session.scalars(
        select(QualityLimit).where(
            QualityLimit.study_id.in_(studies), QualityLimit.active.is_(True)
        )
    ):
        limits.setdefault((lim.study_id, lim.kpi_id), []).append(lim)
    ids = [i for i, study_id, kpi_id in updates if (study_id, kpi_id) in limits]
    for start in range(0, len(ids), 500):
        chunk = select(KpiUpdate).where(KpiUpdate.id.in_(ids[start : start + 500]))
        for update in session.scalars(chunk.order_by(KpiUpdate.id)):
            rows = [
                lim
                for lim in limits[(update.study_id, update.kpi_id)]
                if lim.org_id is None or lim.org_id == update.org_id
            ]
            _check(session, rows, update, today)


def _check(
    session: Session, rows: list[QualityLimit], update: KpiUpdate, today: date
) -> QtlBreach | None:
    # An organisation's own limit speaks before the trial-level one.
    rows.sort(key=lambda r: (r.org_id is None, r.id))
    for lim in rows:
        if beyond(lim.bound, lim.limit_value, update.value):
            return _open(session, lim, update, today)
    for lim in rows:
        if lim.warn_value is not None and beyond(lim.bound, lim.warn_value, update.value):
            _warn(session, lim, update)
            return None
    return None


def _open(session: Session, lim: QualityLimit, update: KpiUpdate, today: date) -> QtlBreach | None:
    where = (
        QtlBreach.study_id == update.study_id,
        QtlBreach.kpi_id == update.kpi_id,
        QtlBreach.org_id == update.org_id,
        QtlBreach.period_start == update.period_start,
    )
    if session.scalars(select(QtlBreach.id).where(*where)).first() is not None:
        return None  # already open (or closed) for this period: never twice
    breach = QtlBreach(
        limit_id=lim.id,
        study_id=update.study_id,
        kpi_id=update.kpi_id,
        org_id=update.org_id,
        period_start=update.period_start,
        period_label=update.period_label,
        observed=update.value,
        bound=lim.bound,
        limit_value=lim.limit_value,
        kpi_update_id=update.id,
        submitted_by=update.submitted_by,
        detected_at=utcnow(),
        evaluation_due=today + timedelta(days=EVALUATION_DAYS),
        status=BreachStatus.OPEN,
    )
    try:
        with session.begin_nested():  # two approvals at once: the second finds the first
            session.add(breach)
            session.flush()
    except IntegrityError:
        return None
    audit.record(
        session,
        SYSTEM,
        "qtl.breach",
        "qtl_breach",
        breach.id,
        study_id=breach.study_id,
        after={**audit.snapshot(breach, *BREACH_FIELDS), "rationale": lim.rationale},
    )
    for channel in _channels(session, breach.study, breach.org_id):
        enqueue(session, f"{BREACH_PREFIX}{breach.id}", f"open:{channel}")
    return breach


def _warn(session: Session, lim: QualityLimit, update: KpiUpdate) -> None:
    target = f"{WARN_PREFIX}{lim.id}"
    prefix = f"{update.org_id}:{update.period_start.isoformat()}:"
    told = session.scalars(
        select(DigestRun.id).where(
            DigestRun.target == target, DigestRun.period_key.startswith(prefix)
        )
    ).first()
    if told is not None:
        return
    channels = sponsor_channels(session, lim.study_id)
    audit.record(
        session,
        SYSTEM,
        "qtl.warning",
        "qtl_limit",
        lim.id,
        study_id=lim.study_id,
        after={
            "kpi_update_id": update.id,
            "org_id": update.org_id,
            "period": update.period_label,
            "value": update.value,
            "warn_value": lim.warn_value,
        },
    )
    for channel in channels:
        enqueue(session, target, f"{prefix}{channel}:{update.id}")


def _channels(session: Session, study: Study, org_id: int) -> list[str]:
    """The study's sponsor channels and, for a vendor's KPI, that vendor's own channel."""
    channels = sponsor_channels(session, study.id)
    if org_id in vendor_org_ids(session, study.id):
        link = vendor_channel(session, study.id, org_id)
        if link is not None and link.channel_id not in channels:
            channels.append(link.channel_id)
    return channels


def channel_of(target: str, key: str) -> str:
    """The channel an outbox row of this module posts to."""
    if target.startswith(WARN_PREFIX):
        return key.split(":")[2]
    return key.partition(":")[2]


# --- evaluation and closure ------------------------------------------------------------


def reachable_breach(session: Session, actor: Actor, breach_id: int) -> QtlBreach:
    """The breach, if `actor` is the sponsor's staff or the vendor whose KPI it is; the
    same NotFound for anyone else as for an unknown id."""
    breach = session.get(QtlBreach, breach_id)
    if breach is not None:
        if actor.trusted or is_sponsor_staff(actor.person, breach.study):
            return breach
        if actor.org_id is not None and actor.org_id == breach.org_id:
            return breach
    raise NotFound(msg("There is no QTL breach #{}.", breach_id))


def assign(
    session: Session, actor: Actor, breach_id: int, *, team_id: str, user_id: str
) -> QtlBreach:
    """The sponsor's staff name who evaluates a breach."""
    breach = reachable_breach(session, actor, breach_id)
    if not is_sponsor(actor, breach.study):
        raise NotFound(msg("There is no QTL breach #{}.", breach_id))
    owner = person_named(
        session,
        team_id,
        user_id,
        vendor_org_ids(session, breach.study_id) | {breach.study.sponsor_org_id},
        field="owner",
    )
    before = audit.snapshot(breach, "owner_team_id", "owner_user_id")
    breach.owner_team_id, breach.owner_user_id = owner.team_id, owner.slack_user_id
    session.flush()
    audit.record(
        session,
        actor,
        "qtl.assign",
        "qtl_breach",
        breach.id,
        study_id=breach.study_id,
        before=before,
        after=audit.snapshot(breach, "owner_team_id", "owner_user_id"),
    )
    return breach


@dataclass(frozen=True)
class RemedialAction:
    title: str
    owner_team_id: str
    owner_user_id: str
    due: date


@dataclass(frozen=True)
class Evaluation:
    systemic: bool | None
    root_cause: str | None
    impact: str | None
    action_needed: bool | None
    remedial: str | None
    action: RemedialAction | None = None


def missing_fields(ev: Evaluation) -> dict[str, str]:
    """Each required field left empty, with what to say next to it."""
    errors: dict[str, str] = {}
    if ev.systemic is None:
        errors["systemic"] = "Say whether the issue is systemic."
    if not (ev.root_cause or "").strip():
        errors["root_cause"] = "Give the root cause."
    if not (ev.impact or "").strip():
        errors["impact"] = "Describe the impact on participants' safety or data reliability."
    if ev.action_needed is None:
        errors["action_needed"] = "Say whether action is needed."
    if not (ev.remedial or "").strip():
        errors["remedial"] = "Describe the remedial actions (or why none are needed)."
    for name in ("root_cause", "impact", "remedial"):
        if len(getattr(ev, name) or "") > MAX_TEXT:
            errors[name] = f"At most {MAX_TEXT} characters."
    return errors


def close(
    session: Session,
    actor: Actor,
    breach_id: int,
    ev: Evaluation,
    *,
    today: date,
    pin: str | None = None,
) -> QtlBreach:
    """Record the evaluation and close the breach: a sponsor approver's decision."""
    from crobot.services import actions  # actions import lookups this module also uses

    breach = reachable_breach(session, actor, breach_id)
    require_breach_closer(actor, breach.study)
    if breach.status == BreachStatus.CLOSED:
        raise UserError(
            msg("QTL breach #{} was already closed by {}.", breach.id, breach.signer_name or "—")
        )
    errors = missing_fields(ev)
    if errors:
        raise UserError("The evaluation is incomplete: nothing was closed.", field_messages=errors)
    part11 = signatures.mode(session, breach.study_id) == SignatureMode.PART11
    if part11:
        signatures.check_pin(session, actor, pin)
    before = audit.snapshot(breach, *EVALUATION_FIELDS)
    made: list[int] = []
    if ev.action is not None:
        item: ActionItem = actions.add(
            session,
            actor,
            today=today,
            study=breach.study.code,
            title=ev.action.title,
            owner_user_id=ev.action.owner_user_id,
            owner_team_id=ev.action.owner_team_id,
            due=ev.action.due,
        )
        made.append(item.id)
    breach.systemic = ev.systemic
    breach.root_cause = (ev.root_cause or "").strip()
    breach.impact = (ev.impact or "").strip()
    breach.action_needed = ev.action_needed
    breach.remedial = (ev.remedial or "").strip()
    breach.action_ids = made or None
    breach.status = BreachStatus.CLOSED
    breach.closed_by = actor.label
    breach.closed_at = utcnow()
    person = actor.person
    breach.signer_name = person.display_name if person is not None else actor.label
    breach.signer_tz = known_timezone(session, actor, now=breach.closed_at)
    breach.signature_method = signatures.SIGNED if part11 else signatures.ACKNOWLEDGED
    session.flush()
    audit.record(
        session,
        actor,
        "qtl.close",
        "qtl_breach",
        breach.id,
        study_id=breach.study_id,
        before=before,
        after={**audit.snapshot(breach, *EVALUATION_FIELDS), "meaning": CLOSED_MEANING},
    )
    for channel in _channels(session, breach.study, breach.org_id):
        enqueue(session, f"{BREACH_PREFIX}{breach.id}", f"closed:{channel}")
    return breach


def manifest(breach: QtlBreach) -> signatures.Manifest | None:
    """The closure's manifest, as approvals show theirs; None while open."""
    if breach.status != BreachStatus.CLOSED or breach.closed_at is None:
        return None
    return signatures.Manifest(
        name=breach.signer_name or breach.closed_by or "unknown",
        at=breach.closed_at,
        tz=breach.signer_tz,
        meaning=CLOSED_MEANING,
        method=breach.signature_method,
    )


def summary(breach: QtlBreach) -> str:
    """The evaluation in one line (the CSR table's "evaluation summary")."""
    if breach.status != BreachStatus.CLOSED:
        return "evaluation pending"
    return f"Root cause: {breach.root_cause}. Impact: {breach.impact}. Remedial: {breach.remedial}"


def linked_actions(session: Session, breach: QtlBreach) -> list[ActionItem]:
    ids = breach.action_ids or []
    if not ids:
        return []
    return list(session.scalars(select(ActionItem).where(ActionItem.id.in_(ids))))


def as_row(session: Session, breach: QtlBreach) -> dict[str, Any]:
    """One row of the CSR section 9.6 table."""
    acts = "; ".join(
        f"#{a.id} {a.title} ({a.status.value}, due {a.due_date.isoformat()})"
        for a in linked_actions(session, breach)
    )
    systemic = "" if breach.systemic is None else ("yes" if breach.systemic else "no")
    closed = (
        f"{breach.signer_name or breach.closed_by} {breach.closed_at:%Y-%m-%d %H:%M} UTC"
        if breach.closed_at
        else ""
    )
    return {
        "breach": breach.id,
        "study": breach.study.code,
        "parameter": f"{breach.kpi.label} ({breach.org.name})",
        "limit": limit_text(breach.bound, breach.limit_value),
        "rationale": breach.limit.rationale or "",
        "observed": shown(breach.observed),
        "period": breach.period_label,
        "detected": f"{breach.detected_at:%Y-%m-%d}",
        "evaluation": summary(breach),
        "systemic": systemic,
        "actions": acts or (breach.remedial or ""),
        "status": breach.status.value,
        "closed": closed,
    }


def overdue(session: Session, team_id: str, user_id: str, today: date) -> list[QtlBreach]:
    """Open breaches whose evaluation this person owns and which are past due."""
    return list(
        session.scalars(
            select(QtlBreach)
            .where(
                QtlBreach.owner_team_id == team_id,
                QtlBreach.owner_user_id == user_id,
                QtlBreach.status == BreachStatus.OPEN,
                QtlBreach.evaluation_due < today,
            )
            .order_by(QtlBreach.evaluation_due, QtlBreach.id)
        )
    )


def outbox_targets(session: Session, approval_id: int) -> list[str]:
    """The QTL outbox targets an approval's decision wrote (delivered with its own rows)."""
    from crobot.storage.models import Approval, SubjectType

    approval = session.get(Approval, approval_id)
    if approval is None or approval.subject_type != SubjectType.KPI_UPDATE:
        return []
    update_id = approval.subject_id
    opened = session.scalars(select(QtlBreach.id).where(QtlBreach.kpi_update_id == update_id))
    warned = session.scalars(
        select(DigestRun.target).where(
            DigestRun.target.startswith(WARN_PREFIX),
            DigestRun.period_key.endswith(f":{update_id}"),
        )
    )
    return [f"{BREACH_PREFIX}{i}" for i in opened] + sorted(set(warned))


def visible_to(actor: Actor, breach: QtlBreach) -> bool:
    """The sponsor's staff (and the operator) see every breach; a vendor its own KPIs'."""
    if actor.trusted or is_sponsor_staff(actor.person, breach.study):
        return True
    return actor.org_id is not None and actor.org_id == breach.org_id


@dataclass(frozen=True)
class OpenBreach:
    """An open breach as `/cro status`, Home and the sponsor digest list it."""

    id: int
    study: str
    kpi: str
    org: str
    period: str
    observed: str
    limit: str
    due: date
    owner_team_id: str | None
    owner_user_id: str | None


def open_breaches(session: Session, audience: Audience) -> list[OpenBreach]:
    return [
        OpenBreach(
            b.id,
            b.study.code,
            b.kpi.label,
            b.org.name,
            b.period_label,
            shown(b.observed),
            limit_text(b.bound, b.limit_value),
            b.evaluation_due,
            b.owner_team_id,
            b.owner_user_id,
        )
        for b in breaches(session, audience, open_only=True)
    ]
