"""`crobot kpi import`: ASCII decimals only, no unknown columns or cells, all rows or none,
each problem on the line of the file it is on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from crobot.bot.cli import main
from crobot.services import audit, kpi_import, kpis, qtl
from crobot.storage.db import Database
from crobot.storage.models import (
    Approval,
    ApprovalState,
    AuditEvent,
    DigestRun,
    KpiDefinition,
    KpiUpdate,
    QtlBreach,
)
from tests.conftest import APEX_PM, APPROVER, C_SPONSOR, TODAY, World
from tests.dbstate import assert_unchanged, owner_session, snapshot

HEADER = "study,org,kpi,period,value,note\n"


def _import(tmp_path: Path, text: str) -> int:
    path = tmp_path / "values.csv"
    path.write_text(text, encoding="utf-8")
    return main(["kpi", "import", str(path)])


@pytest.mark.usefixtures("world")  # ONC-301
@pytest.mark.parametrize(
    ("text", "words"),
    [
        # Extra columns: their data would be dropped silently.
        (
            "study,org,kpi,period,value,note,site,Comment\n"
            "ONC-301,Apex CRO,enrollment,2026-W40,12,,104,x\n",
            ["line 1: unknown column(s): site, comment"],
        ),
        ("study,org,kpi,period,value,\nONC-301,Apex CRO,enrollment,2026-W40,12,\n", ["(empty)"]),
        ("study,org,kpi,value,value\nONC-301,Apex CRO,enrollment,12,12\n", ["named twice: value"]),
        ("study,org,kpi,value\nONC-301,Apex CRO,enrollment,12\n", ["missing column(s): period"]),
    ],
)
def test_the_header_names_exactly_the_known_columns(
    cli_env: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    words: list[str],
) -> None:
    before = snapshot(cli_env)
    assert _import(tmp_path, text) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err
    assert "Traceback" not in err
    assert_unchanged(cli_env, before)


@pytest.mark.usefixtures("world")  # ONC-301
def test_only_ascii_decimals_and_all_rows_or_none_with_line_numbers(
    cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + (
        "ONC-301,Apex CRO,enrollment,2026-W40,12,fine\n"  # line 2
        "ONC-301,Apex CRO,site_activation,2026-W40,1_000,\n"  # 3: underscore
        "ONC-301,Apex CRO,query_aging,2026-W40,١٢,\n"  # 4: Arabic-Indic digits
        'ONC-301,Apex CRO,protocol_deviations,2026-W40,2,"a note\nover two lines"\n'  # 5-6
        "ONC-301,Apex CRO,query_aging,2026-W40,1e308,\n"  # 7: out of range
        "ONC-301,Apex CRO,query_aging,2026-W41,9,,extra cell\n"  # 8: a cell too many
        "ONC-301,CentraLab,compliance_rate,٢٠٢٦-W40,96,\n"  # 9: Arabic-Indic period
        "\n"  # 10: blank, skipped
        "ONC-301,Apex CRO,protocol_deviations,2026-W41,1,5,\n"  # 11: 1,5 split: too many
        'ONC-301,Apex CRO,protocol_deviations,2026-W42,"1,5",\n'  # 12: not whole
    )
    before = snapshot(cli_env)
    assert _import(tmp_path, text) == 2
    err = capsys.readouterr().err
    assert "7 bad row(s); nothing was imported" in err, err
    expected = {
        3: "`1_000` is not a number",
        4: "digits 0-9",
        7: "cannot be above 3650",
        8: "7 cells, but the header names 6 columns",
        9: "period",
        11: "7 cells",
        12: "whole number",
    }
    for line, words in expected.items():
        found = [x for x in err.splitlines() if x.startswith(f"line {line}: ")]
        assert found and words in found[0], (line, words, err)
    for good in (2, 5, 6, 10):
        assert f"line {good}:" not in err
    assert "/cro kpi report" not in err  # the command's hint is no help for a file
    assert_unchanged(cli_env, before)


@pytest.mark.usefixtures("world")  # ONC-301
def test_imported_values_wait_for_an_approver(
    cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + (
        'ONC-301,Apex CRO,enrollment,2026-W40,"1,200",\n'
        'ONC-301,Helix Pharma,query_aging,2026-W40,"2,5",\n'
    )
    assert _import(tmp_path, text) == 0
    assert "imported 2 KPI value(s) for ONC-301" in capsys.readouterr().out
    with cli_env.read() as s:
        rows = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id)).all()
        assert [(r.value, r.approval_state) for r in rows] == [
            (1200, ApprovalState.PENDING),
            (2.5, ApprovalState.PENDING),
        ]
        assert s.scalar(select(func.count()).select_from(Approval)) == 2


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "values.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _history(db: Database, kpi: str) -> list[KpiUpdate]:
    with db.read() as s:
        return list(
            s.scalars(
                select(KpiUpdate)
                .join(KpiDefinition)
                .where(KpiDefinition.key == kpi)
                .order_by(KpiUpdate.id)
            )
        )


def test_a_key_named_twice_corrects_itself_in_file_order(
    world: World, cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each row corrects the current value of its key, as `kpi report` one by one would:
    the stored one for the first row of a key, the row before for the next."""
    with cli_env.write() as s:
        first = kpis.report(
            s,
            world.actor(APEX_PM),
            today=TODAY,
            study="ONC-301",
            kpi="enrollment",
            value=5,
            period="2026-W40",
        )
        old_id = first.update.id
    text = HEADER + (
        "ONC-301,Apex CRO,enrollment,2026-W40,6,\n"
        "ONC-301,Apex CRO,query_aging,2026-W40,3,\n"
        "ONC-301,Apex CRO,enrollment,2026-W40,7,second thoughts\n"
        "ONC-301,Apex CRO,enrollment,2026-W41,8,\n"
    )
    assert _import(tmp_path, text) == 0
    rows = _history(cli_env, "enrollment")
    assert [(r.value, r.period_label) for r in rows] == [
        (5, "2026-W40"),
        (6, "2026-W40"),
        (8, "2026-W41"),
        (7, "2026-W40"),  # stored after the row it corrects
    ]
    six, eight, seven = rows[1], rows[2], rows[3]
    assert (six.supersedes_id, seven.supersedes_id, eight.supersedes_id) == (old_id, six.id, None)
    with cli_env.read() as s:
        olds = {
            a.subject_id: (a.summary["old"], a.summary["new"])
            for a in s.scalars(select(Approval).where(Approval.subject_type == "kpi_update"))
        }
        posts = s.scalars(
            select(DigestRun.period_key).where(DigestRun.target.like("approval:%"))
        ).all()
    assert olds[six.id] == (5, 6) and olds[seven.id] == (6, 7) and olds[eight.id] == (None, 8)
    # Each new approval asks in the study's sponsor channel, once.
    assert sorted(posts) == [f"request:{C_SPONSOR}"] * 5


def test_one_event_per_import_names_the_file_and_proves_its_rows(
    world: World, cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HEADER + "".join(
        f"ONC-301,Apex CRO,{kpi},2026-W{week},{week},\n"
        for week in range(30, 40)
        for kpi in ("enrollment", "query_aging")
    )
    path = _write(tmp_path, text)
    assert main(["kpi", "import", str(path)]) == 0
    with cli_env.read() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "kpi.import")).all()
        ids = list(s.scalars(select(KpiUpdate.id).order_by(KpiUpdate.id)))
        assert audit.verify(s).ok and kpi_import.verify_imports(s) == []
    after = event.after or {}
    assert after["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (after["file"], after["rows"], after["waiting"]) == ("values.csv", 20, 20)
    assert after["kpi_updates"] == [[ids[0], ids[-1]]] and len(ids) == 20
    assert event.study_id == world.study_id
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()

    # A value changed behind the app's back: the chain is intact, the import is not.
    with owner_session(cli_env) as s:
        s.execute(update(KpiUpdate).where(KpiUpdate.id == ids[7]).values(value=99))
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "IMPORTED ROWS CHANGED" in out and f"#{event.seq}" in out and "values.csv" in out


def test_values_approved_at_once_are_checked_against_the_quality_limits(
    world: World, cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with cli_env.write() as s:
        qtl.set_limit(
            s,
            world.actor(APPROVER),
            study="ONC-301",
            kpi="protocol_deviations",
            bound="max",
            limit=5,
        )
    text = HEADER + (
        "ONC-301,Helix Pharma,protocol_deviations,2026-W40,2,\n"
        "ONC-301,Helix Pharma,protocol_deviations,2026-W41,9,\n"  # beyond the limit
        "ONC-301,Apex CRO,protocol_deviations,2026-W41,12,\n"  # waits: checked when approved
    )
    assert main(["kpi", "import", str(_write(tmp_path, text)), "--as", APPROVER]) == 0
    with cli_env.read() as s:
        breaches = s.scalars(select(QtlBreach)).all()
        states = [r.approval_state for r in s.scalars(select(KpiUpdate).order_by(KpiUpdate.id))]
    assert states == [ApprovalState.APPROVED, ApprovalState.APPROVED, ApprovalState.PENDING]
    assert [(b.observed, b.period_label) for b in breaches] == [(9, "2026-W41")]
