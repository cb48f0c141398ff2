"""Every action crobot writes to the audit trail, and what kind of change it records.

EU Annex 11 §9 and 21 CFR 11.10(e): every change records who (the actor's team and user),
what (action, subject), when (UTC) and the previous value. The kind says what an event
must carry beyond that:

- `CREATE` — a new record: no previous value exists;
- `UPDATE` — an existing record changed: `before` holds its previous value;
- `UPSERT` — creates the record the first time, changes it afterwards (then with `before`);
- `EVENT` — something happened that changes no record's data (a message sent, a refused
  attempt): who, what and when.

tests/test_audit_actions.py collects the action of every `audit.record` call in the code
and fails for one missing here, and drives every write path to check its events.
"""

from __future__ import annotations

CREATE, UPDATE, UPSERT, EVENT = "create", "update", "upsert", "event"

ACTIONS: dict[str, str] = {
    # directory (services/directory.py)
    "org.create": CREATE,
    "org.update": UPDATE,  # its Slack workspace / Enterprise Grid org registered
    "study.create": CREATE,
    "study.update": UPDATE,
    "study.vendor.add": CREATE,
    "person.create": CREATE,
    "person.enrol": CREATE,  # a registered workspace's user, recognised on first use
    "person.update": UPDATE,  # time zone, holiday country or role
    "nudge.snooze": UPSERT,  # a person pauses their own overdue reminders
    "channel.link": UPSERT,
    # work items (services/actions.py, milestones.py, kpis.py)
    "action.create": CREATE,
    "action.done": UPDATE,
    "action.escalate": UPDATE,  # overdue past the study's threshold: lead and sponsor told
    "milestone.create": CREATE,
    "milestone.update": UPDATE,
    "kpi.report": CREATE,
    "kpi.correct": UPDATE,  # a new row superseding the current value: `before` is that value
    # the KPI catalogue and study targets (services/kpi_admin.py, kpi_targets.py)
    "kpi.define": CREATE,
    "kpi.update": UPDATE,
    "kpi.retire": UPDATE,  # `before` has no retirement date, `after` has one
    "kpi.target.set": UPSERT,  # a study's target (study-wide or one organisation's)
    "kpi.target.clear": UPDATE,  # removed: `after` says the target is none
    # a CSV import, one event per study: the file's SHA-256, the rows' ids and their digest
    # (services/kpi_import.py); a correction row names the row it supersedes, kept as it was
    "kpi.import": CREATE,
    # sites and the enrolment forecast (services/sites.py, enrolment.py)
    "site.create": CREATE,
    "site.activate": UPDATE,
    "site.update": UPDATE,
    "site.report": CREATE,
    "site.correct": UPDATE,  # as kpi.correct
    "milestone.forecast_at_risk": UPDATE,
    "milestone.forecast_recovered": UPDATE,
    # quality tolerance limits and their breaches (services/qtl.py)
    "qtl.set": CREATE,
    "qtl.update": UPDATE,  # a limit set again for the same KPI and organisation
    "qtl.off": UPDATE,
    "qtl.warning": EVENT,  # an approved value crossed a warning threshold: posted once
    "qtl.breach": CREATE,
    "qtl.assign": UPDATE,
    "qtl.close": UPDATE,  # evaluated and closed: the closer's decision, with the manifest
    # approvals (services/approvals.py, approval_log.py)
    "approval.request": CREATE,
    "approval.approve": UPDATE,
    "approval.reject": UPDATE,
    "approval.message.post": UPSERT,  # the first post becomes the approval's message
    "approval.message.update": EVENT,
    "approval.notify": EVENT,
    "approval.refused": EVENT,
    # digest schedules (digests/schedule.py)
    "digest.schedule": UPDATE,
    "digest.off": UPDATE,
    "digest.charts": UPDATE,
    # signing PINs (services/signatures.py)
    "signature.pin_set": UPSERT,
    "signature.pin_reset": UPDATE,  # removed by an administrator: `before` says which
    "signature.pin_wrong": UPDATE,
    "signature.locked": UPDATE,
    "signature.refused_locked": EVENT,
}
