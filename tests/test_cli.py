"""The `crobot` command line against a real database."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from crobot.bot.cli import main
from crobot.storage.db import Database
from crobot.storage.models import AuditEvent, KpiUpdate, Milestone, Study
from tests.conftest import World
from tests.dbstate import assert_unchanged, owner_session, snapshot


def test_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crobot.bot", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("db", "demo", "org", "study", "person", "channel", "kpi", "export", "audit"):
        assert command in out


def test_directory_commands_and_bad_input(
    cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["org", "add", "Helix Pharma", "--kind", "sponsor"]) == 0
    assert main(["org", "add", "Apex CRO", "--kind", "cro", "--slack-team", "T2"]) == 0
    assert main(["study", "add", "onc-301", "--title", "Onc", "--sponsor", "Helix Pharma"]) == 0
    assert main(["study", "vendor", "add", "ONC-301", "Apex CRO", "--scope", "monitoring"]) == 0
    assert (
        main(
            [
                "person",
                "add",
                "U1",
                "--team",
                "T1",
                "--name",
                "Ann",
                "--org",
                "Helix Pharma",
                "--role",
                "sponsor_approver",
                "--tz",
                "America/New_York",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "channel",
                "link",
                "C1",
                "--team",
                "T1",
                "--study",
                "ONC-301",
                "--audience",
                "vendor:Apex CRO",
                "--tz",
                "Asia/Kolkata",
            ]
        )
        == 0
    )
    before = snapshot(cli_env)
    capsys.readouterr()
    assert main(["study", "add", "ONC-302", "--title", "x", "--sponsor", "Apex CRO"]) == 2
    assert (
        main(
            [
                "person",
                "add",
                "U2",
                "--team",
                "T1",
                "--name",
                "B",
                "--org",
                "Nope",
                "--role",
                "vendor_member",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "channel",
                "link",
                "C2",
                "--team",
                "T1",
                "--study",
                "ONC-301",
                "--audience",
                "sponsor",
                "--tz",
                "Berlin",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "not a sponsor" in err and "no organisation `Nope`" in err and "time zone" in err
    assert "Traceback" not in err
    assert_unchanged(cli_env, before)


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["study", "org", "kpi", "period", "value", "note"], *rows])
    return path


def test_kpi_import_is_all_or_nothing(
    world: World, cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write_csv(
        tmp_path / "bad.csv",
        [
            ["ONC-301", "Apex CRO", "enrollment", "2026-W40", "12", ""],
            ["ONC-301", "Apex CRO", "screen_failure_rate", "2026-W40", "140", ""],
            ["ONC-301", "CentraLab", "compliance_rate", "2026-W40", "ninety", ""],
            ["ONC-301", "Apex CRO", "enrollment", "2026-W41", "14", "ok"],
        ],
    )
    before = snapshot(world.db)
    assert main(["kpi", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "2 bad row(s); nothing was imported" in err
    assert "line 3:" in err and "above 100" in err and "line 4:" in err and "ninety" in err
    assert "line 2:" not in err and "line 5:" not in err
    assert_unchanged(world.db, before)

    good = _write_csv(
        tmp_path / "good.csv",
        [
            ["ONC-301", "Apex CRO", "enrollment", "2026-W40", "12", ""],
            ["ONC-301", "CentraLab", "compliance_rate", "2026-W40", "96.5", "audit"],
        ],
    )
    assert main(["kpi", "import", str(good)]) == 0
    assert "imported 2 KPI value(s) for ONC-301" in capsys.readouterr().out
    with world.db.read() as s:
        assert s.scalar(select(func.count()).select_from(KpiUpdate)) == 2


def test_demo_is_idempotent_and_exports(
    cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    first = capsys.readouterr().out
    assert "DEMO-301" in first and "Pending approvals: 2" in first and "Enrolment" in first
    with cli_env.read() as s:
        counts = (
            s.scalar(select(func.count()).select_from(Milestone)),
            s.scalar(select(func.count()).select_from(KpiUpdate)),
        )
    # 9 milestones, and 6 more of the vendors' recent record (their scorecards); 12 weeks
    # of 10 KPIs, this week's pending value, and 2 values first sent with a typo (rejected).
    assert counts[0] == 9 + 6 and counts[1] == 12 * 10 + 1 + 2
    before = snapshot(cli_env)
    assert main(["demo"]) == 0
    assert_unchanged(cli_env, before)
    assert "already present; nothing changed" in capsys.readouterr().err
    assert main(["demo", "--as", "CentraLab"]) == 0
    lab_view = capsys.readouterr().out
    assert "view: vendor:" in lab_view and "CentraLab" in lab_view
    assert "Apex CRO" not in lab_view

    out = tmp_path / "kpis.csv"
    assert main(["export", "kpis", "--study", "DEMO-301", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 123
    assert {r["approval_state"] for r in rows} == {"approved", "pending", "rejected"}
    approvals_csv = tmp_path / "approvals.csv"
    assert main(["export", "approvals", "--out", str(approvals_csv)]) == 0
    approvals = list(csv.DictReader(approvals_csv.open()))
    pending = [a for a in approvals if a["state"] == "pending"]
    assert [a["subject"].split(":")[0] for a in pending] == ["milestone", "kpi_update"]
    assert json.loads(pending[1]["summary"])["new"] == 23
    # Every vendor value of the history passed the demo approver, but the two typos.
    decided = [a for a in approvals if a["state"] != "pending"]
    assert len(decided) == len(approvals) - 2 > 100
    assert {(a["state"], a["decided_by"]) for a in decided} == {
        ("approved", "TDEMO:UDEMOAPPR"),
        ("rejected", "TDEMO:UDEMOAPPR"),
    }
    assert sum(a["state"] == "rejected" for a in decided) == 2
    assert {a["org"] for a in decided} == {"Apex CRO", "CentraLab"}
    # One quality tolerance limit and one open breach to show (CSR table, Markdown).
    capsys.readouterr()
    assert main(["qtl", "list", "DEMO-301"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["#1", "breach"], listed
    assert main(["export", "qtl", "--study", "DEMO-301", "--format", "md"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and "Protocol deviations (Apex CRO)" in table[2]
    assert "evaluation pending" in table[2] and "Protocol section 9.2" in table[2]
    assert main(["audit", "verify"]) == 0
    assert "hash chain intact" in capsys.readouterr().out
    audit_json = tmp_path / "audit.json"
    assert main(["audit", "export", "--format", "json", "--out", str(audit_json)]) == 0
    events = json.loads(audit_json.read_text())
    assert any(e["action"] == "approval.request" for e in events)

    with owner_session(cli_env) as s:  # the app may not UPDATE it (0008)
        study_id = s.scalar(select(Study.id))
        s.execute(update(AuditEvent).where(AuditEvent.seq == 30).values(actor="T1:UFORGER"))
    assert study_id is not None
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at event seq 30" in capsys.readouterr().out


def test_person_update_records_the_holiday_country_audited(
    cli_env: Database, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["person", "update", "UAPEX", "--team", "T1"]
    assert main([*argv, "--country", "de"]) == 0
    assert "holidays of DE" in capsys.readouterr().out
    with cli_env.read() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "person.update")).one()
    assert event.before == {"country": None} and event.after == {"country": "DE"}
    before = snapshot(cli_env)
    assert main([*argv, "--country", "XX"]) == 2
    assert "not an ISO 3166-1 alpha-2 country code" in capsys.readouterr().err
    assert main(argv) == 2  # nothing to change
    assert_unchanged(cli_env, before)
