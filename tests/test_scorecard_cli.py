"""`crobot scorecard` (text, `--json`, `--csv`), the study's KPI report days, and the demo's
scorecards for Apex CRO and CentraLab, checked by hand against the demo's own tables."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.services import demo, directory, scorecards
from crobot.services.actor import SYSTEM
from crobot.services.quarters import Quarter
from crobot.services.visibility import Audience, Scope
from crobot.storage.db import Database
from crobot.storage.models import Study
from tests.conftest import APEX_PM, C_APEX, TODAY, World
from tests.dbstate import assert_unchanged, snapshot
from tests.test_scorecards import _record


@pytest.fixture
def recorded(world: World, cli_env: Database) -> World:
    _record(world)
    return world


def test_json_has_one_object_per_vendor(
    recorded: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scorecard", "--study", "onc-301", "--quarter", "2026Q4", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["org"] for c in cards] == ["Apex CRO", "CentraLab"]
    for card in cards:
        assert card["period"] == "2026-Q4" and card["study"] == "ONC-301"
        for m in card["measures"]:
            assert {"key", "value", "target", "status", "explanation"} <= set(m)
            assert m["status"] in ("on target", "off target", "no data", "no target")
    apex = {m["key"]: m for m in cards[0]["measures"]}
    # As worked out in tests/test_scorecards.py.
    assert apex["milestones_on_time"] == {
        **apex["milestones_on_time"],
        "value": 33.3,
        "target": 90.0,
        "status": "off target",
        "computed": True,
    }
    assert apex["enrollment"]["computed"] is False and apex["enrollment"]["value"] == 14.0
    assert apex["approval_turnaround_hours"]["side"] == "sponsor"
    # The same quarter written the other way, and one vendor.
    assert main(["scorecard", "--org", "centralab", "--quarter", "2026-Q4", "--json"]) == 0
    (lab,) = json.loads(capsys.readouterr().out)
    assert lab == cards[1] | {"as_of": lab["as_of"]}


def test_csv_cells_cannot_run_as_formulas(
    recorded: World, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = '=HYPERLINK("http://evil.example","x")'
    with recorded.db.write() as s:
        directory.add_org(s, SYSTEM, name=evil, kind="cro")
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor=evil)
    assert main(["scorecard", "--quarter", "2026Q4", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    orgs = {r["org"] for r in rows}
    assert orgs == {"Apex CRO", "CentraLab", "'" + evil}
    apex = {r["key"]: r for r in rows if r["org"] == "Apex CRO"}
    # Numbers stay numbers: Apex's milestone share went from no data in Q3 to 33.3.
    assert apex["milestones_on_time"]["value"] == "33.3"
    assert apex["milestones_on_time"]["computed"] == "yes"
    assert apex["enrollment"]["computed"] == "no" and apex["enrollment"]["status"] == "off target"
    assert all(not r[k].startswith(("=", "+", "@")) for r in rows for k in r)


def test_text_and_bad_input(recorded: World, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(recorded.db)
    assert main(["scorecard", "--quarter", "2026-Q4"]) == 0
    out = capsys.readouterr().out
    assert "Apex CRO — ONC-301 — 2026-Q4" in out and "CentraLab — ONC-301 — 2026-Q4" in out
    assert "Milestones on time [computed]: 33.3 % · target ≥ 90 % (default) · off target" in out
    for args, said in [
        (["--quarter", "2026-Q9"], "I don't understand the quarter `2026-Q9`"),
        (["--org", "Nosuch"], "There is no organisation `Nosuch`"),
        (["--org", "Helix Pharma"], "Helix Pharma is not a vendor on any study."),
        (["--study", "ONC-999"], "There is no study `ONC-999`"),
        (
            ["--study", "ONC-301", "--org", "Helix Pharma"],
            "Helix Pharma is not a vendor on ONC-301.",
        ),
    ]:
        assert main(["scorecard", *args]) == 2
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scorecard", "--json", "--csv"])
    assert_unchanged(recorded.db, before)


def test_the_console_shows_the_table_as_lines(
    recorded: World, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["console", "--user", APEX_PM, "--channel", C_APEX, "-c"]
    assert main([*argv, "/cro scorecard period:2026-Q4"]) == 0
    out = capsys.readouterr().out
    assert "Vendor scorecard — Apex CRO · ONC-301 · 2026-Q4" in out
    assert "  Milestones on time · computed | 33.3 % | ≥ 90 % (default) | OFF TARGET | —" in out
    assert "CentraLab" not in out and '"type"' not in out


def test_kpi_report_days_per_study(cli_env: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["org", "add", "Helix Pharma", "--kind", "sponsor"]) == 0
    assert main(["study", "add", "P1-01", "--title", "Phase 1", "--sponsor", "Helix Pharma"]) == 0
    assert main(["study", "update", "P1-01", "--kpi-report-days", "10"]) == 0
    assert "within 10 day(s) of the period end" in capsys.readouterr().out
    before = snapshot(cli_env)
    assert main(["study", "update", "P1-01", "--kpi-report-days", "-1"]) == 2
    assert "kpi_report_days" in capsys.readouterr().err
    assert_unchanged(cli_env, before)
    with cli_env.read() as s:
        assert s.scalars(select(Study.kpi_report_days)).one() == 10


def test_the_demo_scorecards_by_hand(db: Database) -> None:
    """The demo loaded as of Wednesday 25 Nov 2026; `services/demo.py`'s tables give, for
    2026-Q4 (milestones and actions relative to that day, t):

    Apex CRO — milestones planned in Q4: monitoring plan v2 (t-25, done t-27: on time),
    UAT (t-15, done that day), FR01 close-out (t-8, open: past its date), site initiation
    visits (t-5, done t-1: 4 days late) = 2 of 4 on time, 50 %; mean 4 days late.
    Actions due in Q4: t-20 (closed t-21), t-15 (closed t-12: 3 late), t-9 (closed that
    day), t-3 (open: 3 overdue), t+4 (not yet due) = 2 of 4 by the due date, 50 %;
    median of 3 and 3 = 3 days. KPI values: W40-W48 (9 weeks x 6 KPIs) approved, 2 typos
    rejected: 2 of 56 reviewed = 3.6 %.
    CentraLab — reference ranges (t-22, done t-20: 2 late), resupply (t-12, done t-13),
    biobank (t-3, done that day), validation report (t+10: not yet due) = 2 of 3, 66.7 %;
    mean 2 days late. Actions: t-18 (closed t-19), t-11 (closed t-10: 1 late), t-6
    (closed t-7), t-1 (open: 1 overdue) = 2 of 4, 50 %; median 1 day. No rejections: 0 %.
    """
    with db.write() as s:
        assert demo.load(s, today=TODAY)
    with db.read() as s:
        study = s.scalars(select(Study).where(Study.code == demo.STUDY)).one()
        vendors = scorecards.orgs_for(s, study, _sponsor(study), None)
        apex, lab = scorecards.build(s, study, vendors, Quarter(2026, 4), today=TODAY)
    a = {line.key: line.value for line in apex.lines}
    b = {line.key: line.value for line in lab.lines}
    assert (apex.org_name, lab.org_name) == ("Apex CRO", "CentraLab")
    assert (a["milestones_on_time"], a["milestone_days_late"]) == (50.0, 4.0)
    assert (a["actions_on_time"], a["action_days_overdue"]) == (50.0, 3.0)
    assert a["kpi_rejected_share"] == 3.6
    assert (b["milestones_on_time"], b["milestone_days_late"]) == (66.7, 2.0)
    assert (b["actions_on_time"], b["action_days_overdue"]) == (50.0, 1.0)
    assert b["kpi_rejected_share"] == 0.0
    # Reports sent a day or two after their week (the CRO's some a week late): measured;
    # the current week's were sent at the load, so their share depends on the clock.
    assert a["kpi_reports_on_time"] is not None and b["kpi_reports_on_time"] is not None
    assert a["kpi_reports_on_time"] < 100.0
    # Each has its reported KPIs too.
    assert {"enrollment", "query_aging"} <= set(a) and {"compliance_rate"} <= set(b)


def _sponsor(study: Study) -> Audience:
    return Audience(study.id, Scope.SPONSOR, None, study.sponsor_org_id)


def test_crobot_demo_prints_both_scorecards(
    cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Vendor scorecards" in out
    assert "Apex CRO — DEMO-301 —" in out and "CentraLab — DEMO-301 —" in out
    assert main(["demo", "--as", "Apex CRO"]) == 0
    apex_view = capsys.readouterr().out
    assert "Apex CRO — DEMO-301 —" in apex_view and "CentraLab" not in apex_view
    assert main(["audit", "verify"]) == 0
