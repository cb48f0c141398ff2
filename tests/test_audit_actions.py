"""EU Annex 11 §9 / 21 CFR 11.10(e): every change event records who, what, when and, for a
change of an existing record, the previous value — for every action the code can emit.

The actions are collected from the code itself (every `audit.record(...)` call), so a new
write path cannot escape the check: it must be listed in `services.audit_actions` and
driven by the scenario below.
"""

from __future__ import annotations

import ast
import importlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crobot.digests import schedule
from crobot.services import (
    actions,
    approval_log,
    approvals,
    directory,
    enrolment,
    escalations,
    kpi_admin,
    kpi_import,
    kpi_targets,
    kpis,
    milestones,
    qtl,
    signatures,
    sites,
    snoozes,
)
from crobot.services.actor import SYSTEM
from crobot.services.audit_actions import ACTIONS, CREATE, EVENT, UPDATE, UPSERT
from crobot.services.kpi_catalog import iso_week_label
from crobot.storage.models import Approval, AuditEvent, ChannelLink, QtlBreach, utcnow
from tests.conftest import TODAY, World
from tests.test_sites import history

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("services", "handlers", "digests", "bot", "storage")
PERSON = re.compile(r"^[^:\s]+:[^:\s].*$")  # TEAM:USER (or cli:ACCOUNT, crobot:system)


def _module_name(path: Path) -> str:
    return "crobot." + ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _resolve(node: ast.expr, module: Any) -> set[str]:
    if isinstance(node, ast.IfExp):
        return _resolve(node.body, module) | _resolve(node.orelse, module)
    # A literal, a module constant (POSTED) or another module's (signatures.PIN_WRONG).
    value = eval(compile(ast.Expression(node), "<action>", "eval"), vars(module))
    assert isinstance(value, str), f"{module.__name__}: action {ast.unparse(node)} not a str"
    return {value}


def emitted_actions() -> dict[str, set[str]]:
    """Every action an `audit.record(session, actor, ACTION, ...)` call in the code writes,
    with the modules that write it."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            calls = [
                n
                for n in ast.walk(tree)
                if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "record"
                and isinstance(n.func.value, ast.Name)
                and n.func.value.id == "audit"
            ]
            if not calls:
                continue
            module = importlib.import_module(_module_name(path))
            for call in calls:
                kw = {k.arg: k.value for k in call.keywords}
                node = call.args[2] if len(call.args) > 2 else kw["action"]
                for action in _resolve(node, module):
                    found.setdefault(action, set()).add(module.__name__)
    return found


def test_every_emitted_action_is_registered() -> None:
    emitted = emitted_actions()
    assert len(emitted) >= 20  # the collector sees the code (a broken one finds nothing)
    missing = {a: sorted(m) for a, m in emitted.items() if a not in ACTIONS}
    assert not missing, f"audit actions missing from services/audit_actions.py: {missing}"
    stale = set(ACTIONS) - set(emitted)
    assert not stale, f"registered actions no code emits: {sorted(stale)}"


def _drive_every_write_path(world: World) -> None:
    """One scenario through every service that writes an audit event."""
    apex, approver = world.actor("UAPEX"), world.actor("UAPPROVER")
    with world.db.write() as s:
        directory.update_study(s, SYSTEM, code="ONC-301", four_eyes=True)
        directory.link_channel(  # a relink: the previous link is the previous value
            s,
            SYSTEM,
            team_id="T1",
            channel_id="CJOINT",
            study="ONC-301",
            audience="joint",
            timezone="Europe/Paris",
        )
        item = actions.add(
            s,
            apex,
            today=TODAY,
            study="ONC-301",
            title="Send monitoring report",
            owner_user_id="UAPEX",
            due=TODAY + timedelta(days=3),
        )
        actions.complete(s, apex, item.id)
        late = actions.add(
            s,
            apex,
            today=TODAY - timedelta(days=10),
            study="ONC-301",
            title="Close site queries",
            owner_user_id="UAPEX",
            due=TODAY - timedelta(days=7),
        )
        assert escalations.escalate(s, escalations.Due(late.id, 5, "UTC"))
        assert not escalations.escalate(s, escalations.Due(late.id, 5, "UTC"))  # once
        ms = milestones.add(
            s,
            apex,
            today=TODAY - timedelta(days=10),
            study="ONC-301",
            name="FPI",
            planned=TODAY - timedelta(days=1),
        )
        milestones.update(s, apex, today=TODAY, id=ms.id, forecast=TODAY + timedelta(days=2))
        done = milestones.update(s, apex, today=TODAY, id=ms.id, status="done")
        kpis.report(s, apex, today=TODAY, study="ONC-301", kpi="enrollment", value=10)
        corrected = kpis.report(s, apex, today=TODAY, study="ONC-301", kpi="enrollment", value=11)
        csv_file = kpi_import.CsvFile.of(
            "values.csv",
            b"study,org,kpi,period,value\nONC-301,Apex CRO,query_aging,2026-W40,4\n",
        )
        kpi_import.import_csv(s, apex, csv_file, today=TODAY)
        assert done.approval_id is not None and corrected.approval_id is not None
        approval = s.get_one(Approval, done.approval_id)
        approval_log.message_posted(s, SYSTEM, approval, "CSPONSOR", "1.000100")
        approval_log.message_posted(s, SYSTEM, approval, "CSPONSOR2", "1.000200")
        approvals.decide(s, approver, done.approval_id, approve=True)
        approvals.decide(s, approver, corrected.approval_id, approve=False, reason="Typo")
        approval_log.message_updated(s, SYSTEM, approval, "CSPONSOR", "1.000100")
        approval_log.submitter_notified(s, SYSTEM, approval, "DAPEX", "1.0003", via="dm")
        approval_log.refused(
            s, apex, done.approval_id, decision="approve", via="button", reason="not yours"
        )
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == "CSPONSOR")).one()
        schedule.set_schedule(s, approver, link, days="Mon,Thu", time="08:00")
        schedule.set_charts(s, approver, link, False)
        schedule.disable(s, approver, link)
        signatures.set_pin(s, approver, "123456", "123456")
        signatures.set_pin(s, approver, "654321", "654321", current="123456")
        signatures.set_pin(s, apex, "111111", "111111")
        signatures.reset_pin(s, SYSTEM, "T1", "UAPEX")
    # Sites and the enrolment forecast: reports accepted, a correction, a site re-planned
    # and activated, and a milestone flagged at risk and recovered.
    history(world, 6, 10)
    with world.db.write() as s:
        sites.add(
            s,
            approver,
            today=TODAY,
            study="ONC-301",
            code="FR01",
            name="Lyon",
            country="FR",
            org="Apex CRO",
            planned=TODAY + timedelta(days=30),
        )
        sites.update(s, approver, today=TODAY, study="ONC-301", site="FR01", planned=TODAY)
        sites.update(s, approver, today=TODAY, study="ONC-301", site="FR01", activated=TODAY)
        planned = sites.add(
            s,
            approver,
            today=TODAY,
            study="ONC-301",
            code="FR02",
            name="Lille",
            country="FR",
            org="Apex CRO",
            planned=TODAY,
        )
        sites.activate(s, approver, planned, TODAY, today=TODAY)  # as the CSV import does
        for enrolled in (2, 3):  # the second corrects the first
            sites.report(s, approver, today=TODAY, study="ONC-301", site="FR02", enrolled=enrolled)
        lpi = milestones.add(
            s,
            SYSTEM,
            today=TODAY,
            study="ONC-301",
            name="LPI",
            planned=TODAY + timedelta(60),
            count=400,
        )
        enrolment.recompute(s, world.study_id, TODAY)  # 300 more in 60 days: at risk
        lpi.target_count = 50
        enrolment.recompute(s, world.study_id, TODAY)  # within reach: recovered
    # Quality tolerance limits: set, set again, a warning, a breach assigned, evaluated and
    # closed, and the limit withdrawn.
    with world.db.write() as s:
        lim = qtl.set_limit(
            s, approver, study="ONC-301", kpi="protocol_deviations", bound="max", limit=5
        )
        qtl.set_limit(
            s,
            approver,
            study="ONC-301",
            kpi="protocol_deviations",
            bound="max",
            limit=6,
            warn=3,
            rationale="Protocol section 9",
        )
        last_week = iso_week_label(TODAY - timedelta(days=7))
        for value, period in ((4, None), (9, last_week)):
            rep = kpis.report(
                s,
                apex,
                today=TODAY,
                study="ONC-301",
                kpi="protocol_deviations",
                value=value,
                period=period,
            )
            assert rep.approval_id is not None
            approvals.decide(s, approver, rep.approval_id, approve=True)
        breach = s.scalars(select(QtlBreach)).one()
        qtl.assign(s, approver, breach.id, team_id="T1", user_id="UAPPROVER")
        evaluation = qtl.Evaluation(False, "Site training gap", "None on safety", True, "Retrain")
        qtl.close(s, approver, breach.id, evaluation, today=TODAY)
        qtl.turn_off(s, approver, lim.id)
    # The KPI catalogue: a KPI defined and changed; a study's target for one organisation
    # set, set again and cleared; the KPI retired.
    with world.db.write() as s:
        kpi_admin.define(
            s, SYSTEM, key="audits_passed", label="Audits passed", unit="%", direction="up"
        )
        kpi_admin.update(s, SYSTEM, key="audits_passed", target="90")
        for target in ("80", "85"):
            kpi_targets.set_target(
                s, approver, study="ONC-301", kpi="audits_passed", value=target, org="Apex CRO"
            )
        kpi_targets.clear_target(s, approver, study="ONC-301", kpi="audits_passed", org="Apex CRO")
        kpi_admin.retire(s, SYSTEM, key="audits_passed", now=utcnow())
    # A workspace registered to an organisation, and its user recognised on first use.
    with world.db.write() as s:
        directory.update_org(s, SYSTEM, name="CentraLab", slack_team_id="TLAB9")
        assert directory.enrol_member(s, "TLAB9", "ULAB9", None, display_name="Lab tech")
        directory.update_person(s, SYSTEM, team_id="TLAB9", user_id="ULAB9", country="IE")
        for days in (1, 4):  # a snooze, then a change of it (its previous value kept)
            snoozes.snooze(s, apex, TODAY + timedelta(days=days))
    for attempt in range(signatures.MAX_ATTEMPTS + 1):  # the last one meets the lock
        with pytest.raises(signatures.PinRefused) as refused, world.db.write() as s:
            signatures.check_pin(s, approver, f"wrong-{attempt}")
        with world.db.write() as s:
            signatures.refused(s, approver, refused.value, subject="approval", subject_id=1)


def test_every_action_records_who_what_when_and_the_previous_value(world: World) -> None:
    _drive_every_write_path(world)
    with world.db.read() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    by_action: dict[str, list[AuditEvent]] = {}
    for ev in events:
        by_action.setdefault(ev.action, []).append(ev)
    not_driven = sorted(set(ACTIONS) - set(by_action))
    assert not not_driven, f"write paths the scenario does not drive: {not_driven}"
    problems = []
    for ev in events:
        where = f"#{ev.seq} {ev.action}"
        kind = ACTIONS.get(ev.action)
        if kind is None:
            problems.append(f"{where}: not a registered action")
            continue
        if not PERSON.match(ev.actor):
            problems.append(f"{where}: actor {ev.actor!r} is not (team, user)")
        if ev.at is None or ev.at.utcoffset() != timedelta(0):
            problems.append(f"{where}: no UTC timestamp")
        if not ev.subject_type or not ev.subject_id:
            problems.append(f"{where}: no subject")
        if kind in (CREATE, UPDATE, UPSERT) and ev.after is None:
            problems.append(f"{where}: no new value")
        if kind == UPDATE and ev.before is None:
            problems.append(f"{where}: an update without its previous value")
        if kind == CREATE and ev.before is not None:
            problems.append(f"{where}: a creation with a previous value")
        assert kind in (CREATE, UPDATE, UPSERT, EVENT)
    for action, kind in ACTIONS.items():
        # An upsert's change (not its first write) carries the previous value too.
        if kind == UPSERT and not any(ev.before is not None for ev in by_action[action]):
            problems.append(f"{action}: no event of a change with its previous value")
    assert not problems, "\n".join(problems)


def test_a_decision_records_why(world: World) -> None:
    """The "why" of a decision: its meaning, and a rejection's reason."""
    _drive_every_write_path(world)
    with world.db.read() as s:
        approve = s.scalars(select(AuditEvent).where(AuditEvent.action == "approval.approve"))
        reject = s.scalars(select(AuditEvent).where(AuditEvent.action == "approval.reject"))
        meanings = [(e.after or {}).get("meaning") for e in approve]
        assert meanings and set(meanings) == {signatures.APPROVED_MEANING}  # every one of them
        assert [(e.after or {})["meaning"] for e in reject] == ["Rejected: Typo"]
