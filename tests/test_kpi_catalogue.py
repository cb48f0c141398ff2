"""The KPI catalogue the sponsor owns, end to end: the operator defines, updates and
retires KPIs (`crobot kpi …`), and no Slack user can; sponsor approvers set a study's
targets, study-wide or for one organisation (`/cro kpi target`, `crobot kpi target`), and
nobody else can; every view (`/cro kpi show | trend`, `/cro status`, the digest and its
charts) measures against the target that applies and says which; a vendor is offered and
may report only the KPIs of its kind; a retired KPI keeps its history and takes no new
value from any door (command, form, CSV). Every refusal is a clear error, nothing stored.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.digests.compose import compose
from crobot.digests.render import render
from crobot.services import approvals, kpi_targets
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import AuditEvent, ChannelLink, KpiTarget
from tests import form_values as form
from tests.approval_support import pending_kpi, send, view_submission
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_APEX,
    C_LAB,
    C_SPONSOR,
    LAB_PM,
    SPONSOR,
    World,
)
from tests.dbstate import assert_unchanged, snapshot
from tests.digest_helpers import count_queries, seed
from tests.fake_slack import FakeSlack
from tests.slack_payloads import message_problems
from tests.slack_requests import command_body, post_signed
from tests.slash_helpers import NOW, SlashClient, slash_bot

THIS_WEEK, LAST_WEEK = "2026-W48", "2026-W47"
DEFINE = [
    "kpi",
    "define",
    "otd_kits",
    "--label",
    "Kits delivered on time",
    "--unit",
    "%",
    "--direction",
    "up",
    "--target",
    "95",
    "--kind",
    "cmo",
    "--description",
    "Share of kit shipments that reached the sites on time.",
]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _events(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as s:
        stmt = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        return list(s.scalars(stmt))


def _approved(
    world: World, user: str, kpi: str, value: float, period: str, org: str | None = None
) -> None:
    approval = pending_kpi(world, value, user, kpi=kpi, period=period, org=org)
    with world.db.write() as s:
        approvals.decide(s, world.actor(APPROVER), approval, approve=True)


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["study", "org", "kpi", "period", "value"], *rows])
    return path


def _kpi_options(fake: FakeSlack, bot_url: str, user: str, channel: str, trigger: str) -> list[str]:
    """The KPIs the report form offers `user` (opened by `/cro kpi report` alone)."""
    opened = len(fake.calls_to("views.open"))
    body = command_body("kpi report", user_id=user, channel_id=channel, trigger_id=trigger)
    status, raw = post_signed(bot_url, body)
    assert status == 200 and raw.strip() == ""
    calls = fake.wait_for("views.open", count=opened + 1, timeout=10)
    (call,) = [c for c in calls if c.params["trigger_id"] == trigger]
    (block,) = [b for b in call.params["view"]["blocks"] if b.get("block_id") == "kpi"]
    return [o["value"] for o in block["element"]["options"]]


def _form_error(slash: SlashClient, user: str, channel: str, kpi: str, value: str) -> str:
    """The KPI form submitted (as Slack would, whatever it offered): the error it shows
    next to the KPI."""
    values = {"study": form.select("ONC-301"), "kpi": form.select(kpi), "value": form.text(value)}
    meta = json.dumps({"channel_id": channel})
    status, body = send(
        slash.bot, view_submission("modal_kpi_report", values, user=user, private_metadata=meta)
    )
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors", answer
    return str(answer["errors"]["kpi"])


# --- the catalogue: the operator's -------------------------------------------------------


def test_the_operator_defines_updates_and_retires_a_kpi_and_slack_shows_it(
    world: World,
    cli_env: Database,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, out, _ = _cli(capsys, *DEFINE)
    assert code == 0 and "defined otd_kits: Kits delivered on time (%, up, target 95" in out
    assert "kind cmo" in out
    with slash_bot(world.db, fake_slack) as slash:
        listed = slash.send("kpi list", APPROVER, C_SPONSOR).text
        assert "`otd_kits` — Kits delivered on time (%, ↑, target 95" in listed, listed
        assert "reported by CMOs" in listed
        lab_list = slash.send("kpi list", LAB_PM, C_LAB).text
        assert "otd_kits" not in lab_list and "sample_turnaround" in lab_list
        assert "KPIs CentraLab reports" in lab_list

        code, out, _ = _cli(
            capsys, "kpi", "update", "otd_kits", "--label", "Kits on time", "--target", "97"
        )
        assert code == 0 and "updated otd_kits: Kits on time (%, up, target 97" in out
        (defined,) = _events(world.db, "kpi.define")
        (updated,) = _events(world.db, "kpi.update")
        assert defined.after and defined.after["kind"] == "cmo" and defined.before is None
        assert updated.before and updated.before["label"] == "Kits delivered on time"
        assert updated.after and (updated.after["label"], updated.after["target"]) == (
            "Kits on time",
            97,
        )
        assert defined.operator and defined.operator.startswith("cli:")

        # The sponsor reports any KPI; a value on record, then the KPI is retired.
        done = slash.send(f"kpi report ONC-301 otd_kits 93 period:{LAST_WEEK}", APPROVER, C_SPONSOR)
        assert ":warning:" not in done.text and "93" in done.text, done.text
        code, out, _ = _cli(capsys, "kpi", "retire", "otd_kits")
        assert code == 0 and "retired otd_kits" in out
        (retired,) = _events(world.db, "kpi.retire")
        assert (
            retired.before == {"retired_at": None} and retired.after and retired.after["retired_at"]
        )

        before = snapshot(world.db)
        refused = slash.send("kpi report ONC-301 otd_kits 95", APPROVER, C_SPONSOR)
        assert ":warning:" in refused.text and "was retired on" in refused.text, refused.text
        assert "takes no new values" in refused.text
        assert "was retired" in _form_error(slash, APPROVER, C_SPONSOR, "otd_kits", "95")
        code, _, err = _cli(
            capsys,
            "kpi",
            "import",
            str(
                _csv(tmp_path / "v.csv", [["ONC-301", "Helix Pharma", "otd_kits", THIS_WEEK, "95"]])
            ),
        )
        assert code == 2 and "line 2:" in err and "was retired" in err
        assert_unchanged(world.db, before)

        # Its history stays readable, said to be retired; the form no longer offers it.
        shown = slash.send("kpi show ONC-301 otd_kits", APPROVER, C_SPONSOR).text
        assert f"{LAST_WEEK}: *93*" in shown and "retired" in shown and "no new values" in shown
        trend = slash.send("kpi trend ONC-301 otd_kits", APPROVER, C_SPONSOR).text
        assert "93 %" in trend and "target 97 (default) ✗" in trend, trend
        listed = slash.send("kpi list", APPROVER, C_SPONSOR).text
        assert "Retired (history kept, no new values): `otd_kits`" in listed
        assert "otd_kits" not in _kpi_options(
            fake_slack, slash.bot.events_url, APPROVER, C_SPONSOR, "1.t"
        )


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--unit", "furlongs"], "`furlongs` is not a unit crobot knows. Units: `%`"),
        (["--min", "50", "--max", "10"], "minimum (50) must be below the maximum (10)"),
        (["--target", "101"], "target (101) must lie in the KPI's range, from 0 to 100"),
        (["--key", "enrollment"], "There is already a KPI `enrollment`"),
        (["--key", "Kits on time"], "cannot be a KPI key"),
        (["--key", "coq"], "another name for `cost_of_quality`"),
        (["--direction", "sideways"], "`direction`"),
        (["--kind", "pharmacy"], "`kind`"),
        (["--unit", "score"], "A score needs its scale"),
    ],
)
def test_bad_definitions_from_the_cli_are_clear_errors_and_store_nothing(
    world: World,
    cli_env: Database,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    words: str,
) -> None:
    args = list(DEFINE)
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    if "--key" in given:
        args[2] = given.pop("--key")
    for flag, value in given.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    if "--unit" in given and given["--unit"] == "score":
        args[args.index("--target") + 1] = "4"
    before = snapshot(world.db)
    code, out, err = _cli(capsys, *args)
    assert code == 2 and out == "" and words in err, err
    assert err.startswith("crobot: ") and "Traceback" not in err
    assert_unchanged(world.db, before)


@pytest.mark.parametrize(
    "argv",
    [
        ["kpi", "update", "no_such_kpi", "--target", "5"],
        ["kpi", "update", "enrollment", "--min", "5", "--max", "1"],
        ["kpi", "update", "enrollment"],
        ["kpi", "retire", "no_such_kpi"],
        ["kpi", "target", "ONC-301", "enrollment"],
        ["kpi", "target", "ONC-301", "enrollment", "30", "--as", "T1:UAPEX"],
    ],
)
def test_bad_updates_retirements_and_targets_from_the_cli_store_nothing(
    world: World, cli_env: Database, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = snapshot(world.db)
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and err.startswith("crobot: ") and "Traceback" not in err, err
    assert_unchanged(world.db, before)


@pytest.mark.parametrize(
    ("user", "channel"),
    [(APPROVER, C_SPONSOR), (SPONSOR, C_SPONSOR), (APEX_PM, C_APEX), (LAB_PM, C_LAB)],
)
def test_no_slack_user_changes_the_catalogue(
    world: World, slash: SlashClient, user: str, channel: str
) -> None:
    before = snapshot(world.db)
    for text in (
        'kpi define otd_kits label:"Kits on time" unit:% direction:up',
        "kpi update enrollment target:5",
        "kpi retire enrollment",
    ):
        answer = slash.send(text, user, channel)
        assert ":warning:" in answer.text and "kept by the sponsor's crobot operator" in answer.text
        assert "crobot kpi define" in answer.text, answer.text
    assert_unchanged(world.db, before)


# --- targets: per study and organisation -------------------------------------------------


@pytest.fixture
def enrolment(world: World) -> None:
    """Two weeks of approved enrolment: Apex CRO 10 then 15; CentraLab's (entered by the
    sponsor on its behalf: enrolment is a CRO's KPI) 25 then 26."""
    for period, apex, lab in ((LAST_WEEK, 10, 25), (THIS_WEEK, 15, 26)):
        _approved(world, APEX_PM, "enrollment", apex, period)
        _approved(world, SPONSOR, "enrollment", lab, period, org="CentraLab")


def _chart_series(answer_payload: dict[str, Any]) -> list[str]:
    (chart,) = [b for b in answer_payload["blocks"] if b["type"] == "data_visualization"]
    return [s["name"] for s in chart["chart"]["series"]]


def test_study_and_organisation_targets_apply_in_every_view_and_say_which(
    world: World,
    enrolment: None,
    slash: SlashClient,
    cli_env: Database,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wide = slash.send("kpi target ONC-301 enrollment 20,5", APPROVER, C_SPONSOR)
    assert "Enrolment for ONC-301 study-wide: target 20.5 (study)." in wide.text, wide.text
    own = slash.send('kpi target ONC-301 enrolment 30 org:"Apex CRO"', APPROVER, C_SPONSOR)
    assert "Enrolment for ONC-301 for Apex CRO: target 30 (ONC-301, Apex CRO)." in own.text
    again = slash.send("kpi target ONC-301 enrollment 12", APPROVER, C_SPONSOR)
    assert "target 12 (study) (was 20.5)" in again.text, again.text

    # kpi show: which target each organisation is measured against; one line per target.
    show = slash.send("kpi show ONC-301 enrollment", APPROVER, C_SPONSOR)
    assert message_problems(show.payload) == []
    assert (
        "Targets · Apex CRO: target 30 (ONC-301, Apex CRO); CentraLab: target 12 (study)"
        in show.text
    )
    assert _chart_series(show.payload) == [
        "Apex CRO",
        "CentraLab",
        "Target (30, Apex CRO)",
        "Target (12, CentraLab)",
    ]
    # kpi trend: each organisation on its own target.
    trend = slash.send("kpi trend ONC-301 enrollment", APPROVER, C_SPONSOR)
    assert (
        "*Apex CRO*: 15 patients in 2026-W48 ▲ +5 (better) · target 30 (ONC-301, Apex CRO) ✗"
        in trend.text
    )
    assert "*CentraLab*: 26 patients in 2026-W48 ▲ +1 (better) · target 12 (study) ✓" in trend.text
    # A vendor sees its own target, and nothing of another vendor's.
    apex = slash.send("kpi trend ONC-301 enrollment", APEX_PM, C_APEX)
    assert "target 30 (ONC-301, Apex CRO) ✗" in apex.text and "CentraLab" not in apex.text
    assert _chart_series(apex.payload) == ["Apex CRO", "Target (30, Apex CRO)"]
    # status
    status = slash.send("status ONC-301", APPROVER, C_SPONSOR).text
    assert "Enrolment · Apex CRO: *15* patients ▲ · target 30 (ONC-301, Apex CRO) ✗" in status
    assert "Enrolment · CentraLab: *26* patients ▲ · target 12 (study) ✓" in status
    # the digest: its lines and its table
    digest = slash.send("digest preview", APPROVER, C_SPONSOR)
    line = "Enrolment — Apex CRO: 15 patients (2026-W48) ▲ +5 since 2026-W47"
    assert f"{line} · target ≥ 30 (ONC-301, Apex CRO) ✗" in digest.text, digest.text
    (table,) = [b for b in digest.payload["blocks"] if b["type"] == "table"]
    rows = {(r[0]["text"], r[1]["text"]): r for r in table["rows"][1:]}
    assert rows[("Enrolment", "Apex CRO")][4]["text"] == "≥ 30 patients (ONC-301, Apex CRO)"
    assert rows[("Enrolment", "CentraLab")][4]["text"] == "≥ 12 patients (study)"
    assert rows[("Enrolment", "Apex CRO")][5]["text"] == "OFF TARGET"

    # A computed measure takes a target from the CLI; a cleared target gives way.
    code, out, _ = _cli(capsys, "kpi", "target", "ONC-301", "milestones_on_time", "90")
    assert code == 0 and "ONC-301 milestones_on_time study-wide: target 90 (study)" in out
    cleared = slash.send(
        'kpi target ONC-301 enrollment --clear org:"Apex CRO"', APPROVER, C_SPONSOR
    )
    assert "Enrolment for ONC-301 for Apex CRO: target cleared (was 30)." in cleared.text
    apex = slash.send("kpi trend ONC-301 enrollment", APEX_PM, C_APEX)
    assert "15 patients in 2026-W48 ▲ +5 (better) · target 12 (study) ✓" in apex.text
    with world.db.read() as s:
        rows_left = s.execute(select(KpiTarget.kpi_key, KpiTarget.org_id, KpiTarget.target)).all()
    assert sorted(rows_left) == [("enrollment", None, 12), ("milestones_on_time", None, 90)]
    sets, (clear,) = _events(world.db, "kpi.target.set"), _events(world.db, "kpi.target.clear")
    assert [e.before for e in sets][:2] == [None, None] and sets[2].before
    assert sets[2].before["target"] == 20.5 and clear.after and clear.after["target"] is None


@pytest.mark.parametrize(
    ("user", "channel"), [(APEX_PM, C_APEX), (LAB_PM, C_LAB), (SPONSOR, C_SPONSOR)]
)
def test_only_sponsor_approvers_set_targets(
    world: World, slash: SlashClient, user: str, channel: str
) -> None:
    before = snapshot(world.db)
    for text in ("kpi target ONC-301 enrollment 30", 'kpi target enrollment 5 org:"Apex CRO"'):
        answer = slash.send(text, user, channel)
        assert ":warning:" in answer.text and "Only sponsor approvers for ONC-301" in answer.text
    assert_unchanged(world.db, before)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("kpi target ONC-301 screen_failure_rate 120", "must lie in its range, from 0 to 100"),
        ("kpi target ONC-301 enrollment many", "is not a number"),
        ("kpi target ONC-301 no_such_kpi 5", "no KPI or computed measure"),
        ("kpi target ONC-301 enrollment 5 org:Nowhere", "no organisation"),
        ("kpi target ONC-301 enrollment --clear", "has no target for `enrollment` study-wide"),
        ("kpi target ONC-301 enrollment 5 6", "I don't know what to do with `6`"),
    ],
)
def test_bad_targets_are_clear_errors_and_store_nothing(
    world: World, slash: SlashClient, text: str, words: str
) -> None:
    before = snapshot(world.db)
    answer = slash.send(text, APPROVER, C_SPONSOR)
    assert ":warning:" in answer.text and words in answer.text, answer.text
    assert_unchanged(world.db, before)


def test_the_digest_keeps_its_query_budget_with_targets(world: World) -> None:
    seed(world, 3)
    with world.db.write() as s:
        for value, org in ((30, None), (40, "Apex CRO")):
            kpi_targets.set_target(
                s, SYSTEM, study="ONC-301", kpi="enrollment", value=value, org=org
            )
    with count_queries(world.db) as statements, world.db.read() as s:
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == C_SPONSOR)).one()
        view = compose(s, link, NOW)
    assert len(statements) <= 8, statements
    text = render(view).full_text
    assert "target ≥ 40 (ONC-301, Apex CRO)" in text and "target ≥ 30 (study)" in text, text


# --- kinds: a vendor reports its own kind's KPIs ------------------------------------------


def test_a_vendor_is_offered_and_may_report_only_its_kinds_kpis(
    world: World,
    fake_slack: FakeSlack,
    cli_env: Database,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    with slash_bot(world.db, fake_slack) as slash:
        lab = _kpi_options(fake_slack, slash.bot.events_url, LAB_PM, C_LAB, "2.t")
        assert "sample_turnaround" in lab and "query_aging" in lab and "open_capas" in lab
        assert not {
            "otif_delivery",
            "right_first_time",
            "enrollment",
            "supplier_performance",
        } & set(lab)
        apex = _kpi_options(fake_slack, slash.bot.events_url, APEX_PM, C_APEX, "3.t")
        assert "enrollment" in apex and "otif_delivery" not in apex
        everything = _kpi_options(fake_slack, slash.bot.events_url, APPROVER, C_SPONSOR, "4.t")
        assert {"otif_delivery", "enrollment", "sample_turnaround", "supplier_performance"} <= set(
            everything
        )

        before = snapshot(world.db)
        refused = slash.send("kpi report ONC-301 otif_delivery 90", LAB_PM, C_LAB)
        assert ":warning:" in refused.text
        assert (
            "CentraLab does not report On-time-in-full delivery (`otif_delivery`): it is a CMO KPI."
            in refused.text
        )
        assert "It reports:" in refused.text and "`sample_turnaround`" in refused.text
        assert "does not report" in _form_error(slash, LAB_PM, C_LAB, "otif_delivery", "90")
        code, _, err = _cli(
            capsys,
            "kpi",
            "import",
            str(
                _csv(
                    tmp_path / "lab.csv",
                    [["ONC-301", "CentraLab", "otif_delivery", THIS_WEEK, "90"]],
                )
            ),
            "--as",
            "T1:ULAB",
        )
        assert code == 2 and "line 2:" in err and "does not report" in err
        assert_unchanged(world.db, before)

        # Its own kind's KPI is taken; and the sponsor reports any KPI, for any vendor.
        ok = slash.send("kpi report ONC-301 sample_turnaround 36", LAB_PM, C_LAB)
        assert ":warning:" not in ok.text and "Sample result turnaround" in ok.text, ok.text
        rated = slash.send(
            "kpi report ONC-301 supplier_performance 4 org:CentraLab", APPROVER, C_SPONSOR
        )
        assert ":warning:" not in rated.text, rated.text
