"""CSV/JSON exports: milestones, actions, KPI values, and the audit trail for inspections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import approval_log, audit, qtl, signatures
from crobot.services.actor import Actor
from crobot.services.csv_cells import SafeWriter
from crobot.services.lookup import study_by_code
from crobot.storage.models import (
    ActionItem,
    AuditEvent,
    KpiDefinition,
    KpiUpdate,
    Milestone,
    Organization,
    Study,
)

BATCH = 5000


def _study_id(session: Session, code: str | None) -> int | None:
    return study_by_code(session, code).id if code else None


def _rows(session: Session, what: str, study_id: int | None) -> tuple[list[str], Iterator[Any]]:
    stmt: Any  # three differently shaped selects
    if what == "milestones":
        cols = [
            "id",
            "study",
            "org",
            "name",
            "planned_date",
            "forecast_date",
            "actual_date",
            "status",
            "shared",
        ]
        stmt = (
            select(
                Milestone.id,
                Study.code,
                Organization.name,
                Milestone.name,
                Milestone.planned_date,
                Milestone.forecast_date,
                Milestone.actual_date,
                Milestone.status,
                Milestone.shared,
            )
            .join(Study, Study.id == Milestone.study_id)
            .outerjoin(Organization, Organization.id == Milestone.org_id)
            .order_by(Milestone.id)
        )
        if study_id:
            stmt = stmt.where(Milestone.study_id == study_id)
    elif what == "actions":
        cols = [
            "id",
            "study",
            "title",
            "owner_user_id",
            "owner_org",
            "due_date",
            "priority",
            "status",
            "completed_at",
        ]
        stmt = (
            select(
                ActionItem.id,
                Study.code,
                ActionItem.title,
                ActionItem.owner_user_id,
                Organization.name,
                ActionItem.due_date,
                ActionItem.priority,
                ActionItem.status,
                ActionItem.completed_at,
            )
            .join(Study, Study.id == ActionItem.study_id)
            .outerjoin(Organization, Organization.id == ActionItem.owner_org_id)
            .order_by(ActionItem.id)
        )
        if study_id:
            stmt = stmt.where(ActionItem.study_id == study_id)
    elif what == "kpis":
        cols = [
            "id",
            "study",
            "org",
            "kpi",
            "period",
            "value",
            "unit",
            "note",
            "submitted_by",
            "submitted_at",
            "approval_state",
            "supersedes_id",
        ]
        stmt = (
            select(
                KpiUpdate.id,
                Study.code,
                Organization.name,
                KpiDefinition.key,
                KpiUpdate.period_label,
                KpiUpdate.value,
                KpiDefinition.unit,
                KpiUpdate.note,
                KpiUpdate.submitted_by,
                KpiUpdate.submitted_at,
                KpiUpdate.approval_state,
                KpiUpdate.supersedes_id,
            )
            .join(Study, Study.id == KpiUpdate.study_id)
            .join(Organization, Organization.id == KpiUpdate.org_id)
            .join(KpiDefinition, KpiDefinition.id == KpiUpdate.kpi_id)
            .order_by(KpiUpdate.id)
        )
        if study_id:
            stmt = stmt.where(KpiUpdate.study_id == study_id)
    else:
        raise ValueError(what)
    return cols, session.execute(stmt.execution_options(yield_per=BATCH))


def _cell(value: Any) -> Any:
    if hasattr(value, "value") and not isinstance(value, int | float | str):
        return value.value  # enums
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def export_csv(session: Session, what: str, out: IO[str], *, study: str | None = None) -> int:
    cols, rows = _rows(session, what, _study_id(session, study))
    writer = SafeWriter(out)
    writer.writerow(cols)
    count = 0
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        count += 1
    return count


AUDIT_COLS = [
    "seq",
    "at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "study_id",
    "before",
    "after",
    "prev_hash",
    "hash",
    "key_id",
    "operator",
]
# A decision event's signature manifest (21 CFR 11.50), in columns of its own.
MANIFEST_COLS = ["signer", "signed_at_utc", "signer_local_time", "meaning", "signature"]


def _audit_events(session: Session, study_id: int | None) -> Iterator[AuditEvent]:
    for ev in audit.iter_events(session):
        if study_id is None or ev.study_id == study_id:
            yield ev


def _event_manifest(ev: AuditEvent) -> dict[str, Any]:
    """The manifest of a decision event, from what the event itself recorded."""
    after = ev.after or {}
    if ev.action not in ("approval.approve", "approval.reject") or not after.get("decided_at"):
        return dict.fromkeys(MANIFEST_COLS, "")
    m = signatures.Manifest(
        name=str(after.get("signer_name") or after.get("decided_by") or ""),
        at=datetime.fromisoformat(str(after["decided_at"])),
        tz=after.get("signer_tz"),
        meaning=str(after.get("meaning") or ""),
        method=after.get("signature_method"),
    )
    return _manifest_cells(m)


def _manifest_cells(m: signatures.Manifest | None) -> dict[str, Any]:
    if m is None:
        return dict.fromkeys(MANIFEST_COLS, "")
    return {
        "signer": m.name,
        "signed_at_utc": m.utc,
        "signer_local_time": m.local or "",
        "meaning": m.meaning,
        "signature": m.word,
    }


def _audit_dict(ev: AuditEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "at": ev.at.isoformat(),
        "actor": ev.actor,
        "action": ev.action,
        "subject_type": ev.subject_type,
        "subject_id": ev.subject_id,
        "study_id": ev.study_id,
        "before": ev.before,
        "after": ev.after,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        "key_id": ev.key_id,  # the HMAC key's id; empty: plain SHA-256 (before 0008)
        "operator": ev.operator,  # who ran it, when not the actor (CLI, console)
        **_event_manifest(ev),
    }


def export_audit(session: Session, out: IO[str], *, fmt: str, study: str | None = None) -> int:
    """Every event (approval requests and decisions included), with its chain hashes, so an
    inspector can re-verify the chain outside crobot."""
    study_id = _study_id(session, study)
    count = 0
    if fmt == "csv":
        writer = SafeWriter(out)
        cols = AUDIT_COLS + MANIFEST_COLS
        writer.writerow(cols)
        for ev in _audit_events(session, study_id):
            d = _audit_dict(ev)
            d["before"] = json.dumps(d["before"], sort_keys=True) if d["before"] is not None else ""
            d["after"] = json.dumps(d["after"], sort_keys=True) if d["after"] is not None else ""
            writer.writerow([d[c] for c in cols])
            count += 1
    elif fmt == "json":
        out.write("[\n")
        for ev in _audit_events(session, study_id):
            out.write((",\n" if count else "") + json.dumps(_audit_dict(ev), sort_keys=True))
            count += 1
        out.write("\n]\n")
    else:
        raise ValueError(fmt)
    return count


APPROVAL_COLS = [
    "id",
    "study",
    "org",
    "subject",
    "summary",
    "requested_by",
    "requested_at",
    "state",
    "decided_by",
    "decided_at",
    "reason",
    "channel_id",
    "message_ts",
    *MANIFEST_COLS,
    "content_hash",
    "signature_hash",
]


def export_approvals(session: Session, out: IO[str], *, study: str | None = None) -> int:
    """Approval history (pending and decided, with reasons) as CSV, for an inspection."""
    writer = SafeWriter(out)
    writer.writerow(APPROVAL_COLS)
    records = approval_log.history(session, study_id=_study_id(session, study))
    for rec in records:
        row = rec.as_dict() | _manifest_cells(signatures.manifest(rec))
        row["summary"] = json.dumps(row["summary"], sort_keys=True)
        writer.writerow([row[c] for c in APPROVAL_COLS])
    return len(records)


QTL_COLS = [
    "breach",
    "study",
    "parameter",
    "limit",
    "rationale",
    "observed",
    "period",
    "detected",
    "evaluation",
    "systemic",
    "actions",
    "status",
    "closed",
]
QTL_HEADINGS = [
    "#",
    "Study",
    "Parameter",
    "Limit",
    "Rationale",
    "Observed",
    "Period",
    "Detected",
    "Evaluation",
    "Systemic",
    "Actions (status)",
    "Status",
    "Closed by, when",
]


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def export_qtl(
    session: Session,
    out: IO[str],
    *,
    fmt: str = "csv",
    study: str | None = None,
    actor: Actor | None = None,
) -> int:
    """The CSR section 9.6 table: one row per QTL breach. `actor` (default: the operator,
    every breach) limits it to what that person sees: a vendor its own KPIs' breaches."""
    rows = [
        qtl.as_row(session, b)
        for b in qtl.breaches(session, None, study_id=_study_id(session, study))
        if actor is None or qtl.visible_to(actor, b)
    ]
    if fmt == "md":
        out.write("| " + " | ".join(QTL_HEADINGS) + " |\n")
        out.write("|" + "---|" * len(QTL_HEADINGS) + "\n")
        for row in rows:
            out.write("| " + " | ".join(_md_cell(row[c]) for c in QTL_COLS) + " |\n")
        return len(rows)
    writer = SafeWriter(out)
    writer.writerow(QTL_COLS)
    for row in rows:
        writer.writerow([row[c] for c in QTL_COLS])
    return len(rows)
