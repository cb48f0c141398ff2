"""`crobot kpi import`: ASCII decimals only, no unknown columns or cells, all rows or none,
each problem on the line of the file it is on."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from crobot.bot.cli import main
from crobot.storage.db import Database
from crobot.storage.models import Approval, ApprovalState, KpiUpdate
from tests.dbstate import assert_unchanged, snapshot

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
