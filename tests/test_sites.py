"""Sites and enrolment end to end: `/cro site …` and `/cro forecast` through signed
requests, `crobot site import` and `crobot forecast` through the CLI; bad input is a
clear error with nothing stored."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.services import approvals, milestones, sites
from crobot.services.actor import SYSTEM
from crobot.services.kpi_catalog import iso_week_label
from crobot.storage.db import Database
from crobot.storage.models import Approval, AuditEvent, Site, SiteReport, Study, SubjectType
from tests.approval_support import wait_until
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_APEX,
    C_LAB,
    C_SPONSOR,
    LAB_PM,
    SPONSOR,
    TODAY,
    World,
)
from tests.dbstate import assert_unchanged, snapshot
from tests.slack_payloads import message_problems, validate_calls
from tests.slash_helpers import SlashClient

MONDAY = TODAY - timedelta(days=TODAY.weekday())


def history(world: World, n_sites: int, weeks: int, *, per_week: int = 1) -> None:
    """Apex's sites, activated `weeks` weeks ago, each reporting `per_week` (+1 at odd
    sites) every full week since, accepted by the approver."""
    approver = world.actor(APPROVER)
    apex = world.actor(APEX_PM)
    opened = MONDAY - timedelta(weeks=weeks)
    with world.db.write() as s:
        for i in range(n_sites):
            sites.add(
                s,
                SYSTEM,
                today=TODAY,
                study="ONC-301",
                code=f"S{i:02d}",
                name=f"Site {i}",
                country="DE",
                org="Apex CRO",
                activated=opened,
            )
            for w in range(weeks):
                rep = sites.report(
                    s,
                    apex,
                    today=TODAY,
                    study="ONC-301",
                    site=f"S{i:02d}",
                    enrolled=per_week + i % 2,
                    period=iso_week_label(opened + timedelta(weeks=w)),
                )
                assert rep.approval_id is not None  # a vendor's report waits
                approvals.decide(s, approver, rep.approval_id, approve=True, today=TODAY)


def set_target(world: World, target: int) -> None:
    with world.db.write() as s:
        s.get_one(Study, world.study_id).enrolment_target = target


def _reports(db: Database) -> list[SiteReport]:
    with db.read() as s:
        return list(s.scalars(select(SiteReport)))


# --- /cro site -----------------------------------------------------------------------


def test_site_add_report_and_list_through_slack(world: World, slash: SlashClient) -> None:
    a = slash.send(
        'site add ONC-301 de01 "Charité Berlin" country:de org:"Apex CRO" activated:2026-10-05',
        APEX_PM,
        C_APEX,
    )
    assert "Site *DE01* Charité Berlin added to ONC-301" in a.text, a.text
    assert "Germany" in a.text and "activated 2026-10-05" in a.text
    a = slash.send("site report ONC-301 DE01 enrolled 3 period:2026-W47", APEX_PM, C_APEX)
    assert "*3* patient(s)" in a.text and "awaits the sponsor's approval" in a.text
    with world.db.read() as s:
        approval = s.scalars(select(Approval)).one()
        assert approval.subject_type == SubjectType.SITE_REPORT
        assert approval.summary["site"] == "DE01" and approval.summary["new"] == 3
    # The sponsor sees the site and its pending report; the other vendor sees nothing.
    a = slash.send("site list ONC-301", SPONSOR, C_SPONSOR)
    assert "*DE01* Charité Berlin" in a.text and "3 enrolled (3 pending approval)" in a.text
    assert "first site activated 2026-10-05" in a.text
    a = slash.send("site list ONC-301", LAB_PM, C_LAB)
    assert "DE01" not in a.text and "0 site(s)" in a.text
    # The approvers are asked in the sponsor channel, as for a KPI value.
    request = wait_until(
        lambda: [m for m in slash.fake.posted(C_SPONSOR) if "site DE01" in m["text"]]
    )
    assert request[0]["text"].endswith("site DE01 2026-W47: 3 enrolled")
    shown = json.dumps(request[0]["blocks"], ensure_ascii=False)
    assert "Enrolment at site *DE01* (Charité Berlin)" in shown and "→ *3* patient(s)" in shown
    assert message_problems(request[0]) == []
    assert validate_calls(slash.fake.calls_to("chat.postMessage")) > 0


@pytest.mark.parametrize(
    ("text", "user", "channel", "said"),
    [
        (
            'site add ONC-301 XX01 "Nowhere" country:XX org:"Apex CRO"',
            APEX_PM,
            C_APEX,
            "is not an ISO 3166-1 alpha-2 country code",
        ),
        (
            'site add ONC-301 XX01 "Soon" country:FR org:"Apex CRO" activated:2026-12-20',
            APEX_PM,
            C_APEX,
            "is in the future",
        ),
        (
            'site add ONC-301 XX01 "Theirs" country:FR org:CentraLab',
            APEX_PM,
            C_APEX,
            "only report and change their own organisation",
        ),
        ("site report ONC-301 DE01 enrolled -2", APEX_PM, C_APEX, "cannot be negative"),
        ("site report ONC-301 DE01 enrolled two", APEX_PM, C_APEX, "is not a number"),
        (
            "site report ONC-301 DE01 enrolled 2 period:2026-W40",
            APEX_PM,
            C_APEX,
            "was activated on 2026-10-05, after the period 2026-W40",
        ),
        ("site report ONC-301 DE01 enrolled 2", LAB_PM, C_LAB, "no site `DE01` of yours"),
        ("site report ONC-301 PL09 enrolled 2", APEX_PM, C_APEX, "no site `PL09` of yours"),
        (
            'site add ONC-301 de01 "Again" country:DE org:"Apex CRO"',
            APEX_PM,
            C_APEX,
            "already has a site `DE01`",
        ),
    ],
)
def test_bad_site_input_is_refused_and_nothing_is_stored(
    world: World, slash: SlashClient, text: str, user: str, channel: str, said: str
) -> None:
    ok = slash.send(
        'site add ONC-301 DE01 "Charité" country:DE org:"Apex CRO" activated:2026-10-05',
        APEX_PM,
        C_APEX,
    )
    assert "added to ONC-301" in ok.text
    before = snapshot(world.db)
    a = slash.send(text, user, channel)
    assert a.payload.get("response_type") == "ephemeral"
    assert said in a.text, a.text
    assert_unchanged(world.db, before)


# --- /cro forecast -----------------------------------------------------------------------


def test_forecast_through_slack_model_and_fallback(world: World, slash: SlashClient) -> None:
    history(world, 6, 10)
    set_target(world, 200)
    a = slash.send("forecast ONC-301", SPONSOR, C_SPONSOR)
    assert "Enrolment forecast — ONC-301" in a.text
    assert "Poisson–gamma" in a.text and "FALLBACK" not in a.text
    assert "P50 2027-" in a.text and "P10" in a.text and "P90" in a.text
    assert a.deferred and message_problems(a.payload) == []
    # A vendor's view: its own sites only, said so.
    a = slash.send("forecast ONC-301", APEX_PM, C_APEX)
    assert "Computed from the sites you can see" in a.text
    a = slash.send("forecast ONC-301", LAB_PM, C_LAB)
    assert "no active site with enrolment data" in a.text


def test_forecast_draws_reported_enrolment_and_the_three_paths(
    world: World, slash: SlashClient
) -> None:
    """A native line chart: reported months shared by every path, then P10/P50/P90 paths
    fanning out up to the cautious date, with the target; the table has the same figures."""
    history(world, 6, 10)
    set_target(world, 200)
    a = slash.send("forecast ONC-301", SPONSOR, C_SPONSOR)
    assert message_problems(a.payload) == []
    blocks = a.payload["blocks"]
    [chart] = [b for b in blocks if b["type"] == "data_visualization"]
    [values] = [b for b in blocks if b["type"] == "table"]
    months = chart["chart"]["axis_config"]["categories"]
    series = {x["name"]: [pt["value"] for pt in x["data"]] for x in chart["chart"]["series"]}
    high, mid, low = (
        series["Optimistic path (P10 date)"],
        series["Median path (P50 date)"],
        series["Cautious path (P90 date)"],
    )
    assert set(series["Target (200 patients)"]) == {200}
    # 6 sites × 10 weeks: 3 sites at 1 and 3 at 2 a week, 90 patients in all so far.
    now = months.index(f"{TODAY:%Y-%m}")
    assert high[now] == mid[now] == low[now] == 90
    assert high[:now] == mid[:now] == low[:now] and high[:now] == sorted(high[:now])
    assert all(h >= m >= lo for h, m, lo in zip(high, mid, low, strict=True))
    assert high[-1] > low[-1] and low[-1] >= 200 > low[-2]  # up to the cautious date
    assert mid == sorted(mid) and months == sorted(months)
    rows = values["rows"]
    assert [c["text"] for c in rows[0]] == ["Month", "Reported", "Optimistic", "Median", "Cautious"]
    assert [c["text"] for c in rows[now + 1]][:2] == [f"{TODAY:%Y-%m}", "90"]
    assert [c["text"] for c in rows[-1]][2:] == [f"{v[-1]:.0f}" for v in (high, mid, low)]


def test_forecast_fallback_is_labelled(world: World, slash: SlashClient) -> None:
    history(world, 3, 4)
    set_target(world, 100)
    a = slash.send("forecast", SPONSOR, C_SPONSOR)
    assert "FALLBACK" in a.text and "pooled Poisson" in a.text
    assert message_problems(a.payload) == []
    assert "3 active site(s), 4 week(s) of data" in a.text


def test_forecast_without_target_says_how_to_set_one(world: World, slash: SlashClient) -> None:
    history(world, 1, 1)
    a = slash.send("forecast ONC-301", SPONSOR, C_SPONSOR)
    assert "has no enrolment target" in a.text and "--enrolment-target" in a.text


# --- CLI -------------------------------------------------------------------------------

GOOD = """study,site,country,org,activated,period,enrolled
ONC-301,FR01,FR,Apex CRO,2026-09-07,2026-W37,2
ONC-301,FR01,,,,2026-W38,3
ONC-301,PL01,pl,Apex CRO,,,
"""


def test_site_import_all_or_nothing(world: World, cli_env: Database, tmp_path: Path) -> None:
    good = tmp_path / "sites.csv"
    good.write_text(GOOD)
    assert main(["site", "import", str(good)]) == 0
    with world.db.read() as s:
        by_code = {x.code: x for x in s.scalars(select(Site))}
        assert by_code["FR01"].activated_on == date(2026, 9, 7)
        assert by_code["PL01"].activated_on is None and by_code["PL01"].status.value == "planned"
    assert sorted(r.enrolled for r in _reports(world.db)) == [2, 3]
    before = snapshot(world.db)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "study,site,country,org,activated,period,enrolled\n"
        "ONC-301,DE01,DE,Apex CRO,2026-10-05,2026-W41,1\n"
        "ONC-301,ZZ01,ZZ,Apex CRO,2026-10-05,2026-W41,1\n"
        "ONC-301,DE02,DE,Apex CRO,2026-11-20,2026-W40,1\n"
        "ONC-301,DE03,DE,Apex CRO,2026-10-05,2026-W41,-4\n"
        "ONC-301,FR01,FR,Apex CRO,2026-09-08,,\n"
    )
    assert main(["site", "import", str(bad)]) == 2
    assert_unchanged(world.db, before)


def test_site_import_errors_name_each_line(
    world: World, cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "study,site,country,org,activated,period,enrolled\n"
        "ONC-301,ZZ01,ZZ,Apex CRO,2026-10-05,2026-W41,1\n"
        "ONC-301,DE02,DE,Apex CRO,2026-11-20,2026-W40,1\n"
        "ONC-301,DE03,DE,Apex CRO,2026-10-05,2026-W41,-4\n"
    )
    assert main(["site", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "3 bad row(s); nothing was imported" in err
    assert "line 2:" in err and "not an ISO 3166-1 alpha-2 country code" in err
    assert "line 3:" in err and "after the period 2026-W40" in err
    assert "line 4:" in err and "cannot be negative" in err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("study,site,country,org,activated,period,enrolled,extra\n")
    assert main(["site", "import", str(wrong)]) == 2
    assert "unknown column(s): extra" in capsys.readouterr().err


def test_cli_forecast_json_shape(
    world: World, cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    history(world, 6, 10)
    assert main(["study", "update", "ONC-301", "--enrolment-target", "150"]) == 0
    with world.db.write() as s:
        milestones.add(
            s,
            SYSTEM,
            today=TODAY,
            study="ONC-301",
            name="LPI",
            planned=TODAY + timedelta(days=120),
            count=150,
        )
    capsys.readouterr()
    assert main(["forecast", "ONC-301", "--json", "--as-of", TODAY.isoformat()]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [
        "study",
        "target",
        "enrolled",
        "model",
        "rate_per_site_month",
        "p10",
        "p50",
        "p90",
        "milestones",
    ]
    assert out["study"] == "ONC-301" and out["target"] == 150
    assert out["enrolled"] == 6 * 10 + 3 * 10
    assert out["p10"] <= out["p50"] <= out["p90"]
    date.fromisoformat(out["p50"])
    (m,) = out["milestones"]
    assert list(m) == ["id", "name", "planned", "p_on_time", "extra_sites_needed"]
    assert m["name"] == "LPI" and 0 <= m["p_on_time"] <= 1
    assert main(["forecast", "ONC-301", "--target", "0"]) == 2
    assert main(["forecast", "NOPE-1"]) == 2
    assert "There is no study" in capsys.readouterr().err


def test_a_planned_site_is_activated_then_reports_and_closes(
    world: World, slash: SlashClient
) -> None:
    a = slash.send(
        'site add ONC-301 PL01 "Warsaw" country:PL org:"Apex CRO" planned:2026-12-01',
        APEX_PM,
        C_APEX,
    )
    assert "planned 2026-12-01" in a.text
    before = snapshot(world.db)
    a = slash.send("site report ONC-301 PL01 enrolled 1", APEX_PM, C_APEX)
    assert "not active yet" in a.text and "site update ONC-301 PL01 activated:DATE" in a.text
    a = slash.send("site update ONC-301 PL01 activated:2026-11-30", APEX_PM, C_APEX)
    assert "is in the future" in a.text
    a = slash.send("site update ONC-301 PL01 activated:2026-11-02", LAB_PM, C_LAB)
    assert "no site `PL01` of yours" in a.text
    assert_unchanged(world.db, before)
    a = slash.send("site update ONC-301 PL01 activated:2026-11-02", APEX_PM, C_APEX)
    assert "active · activated 2026-11-02" in a.text, a.text
    a = slash.send("site report ONC-301 PL01 enrolled 1", APEX_PM, C_APEX)
    assert "*1* patient(s)" in a.text
    a = slash.send("site update ONC-301 PL01 closed:2026-11-01", APEX_PM, C_APEX)
    assert "cannot close before it was activated" in a.text
    a = slash.send("site update ONC-301 PL01 closed:2026-11-24", APEX_PM, C_APEX)
    assert "closed · activated 2026-11-02, closed 2026-11-24" in a.text
    with world.db.read() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert actions.count("site.update") == 2
