"""Exports never hand a spreadsheet a formula (OWASP CSV injection), whoever typed it.

A vendor types formula-looking text through `/cro` (signed requests, the real stack); an
approver rejects with a formula-looking reason; every CSV export the CLI writes must show
those values as text: the cell starts with a single quote, and reads back as the value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.services import approvals
from crobot.services.csv_cells import neutralise
from crobot.storage.models import Approval
from tests.conftest import APEX_PM, APPROVER, C_APEX, World
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient, slash_bot

HOSTILE = {
    "milestone": '=HYPERLINK("https://evil.example","open")',
    "action": "+SUM(1)",
    "note": "=cmd|' /C calc'!A0",
    "reason": "@SUM(1)",
    "tab": "\t=1+1",
}


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    with slash_bot(world.db, fake_slack) as client:
        yield client


def _cells(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


def test_every_csv_export_neutralises_formulas(
    slash: SlashClient,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CROBOT_DATABASE_URL", world.db.url)
    monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")
    milestone = HOSTILE["milestone"].replace('"', "'")
    for text in (
        f'milestone add "{milestone}" planned:2026-12-18',
        f'action add "{HOSTILE["action"]}" <@{APEX_PM}> due:2026-12-18',
        f'kpi report enrollment 3 note:"{HOSTILE["note"]}"',
    ):
        answer = slash.send(text, APEX_PM, C_APEX)
        assert ":warning:" not in answer.text, answer.text
    with world.db.write() as s:
        approval_id = s.scalars(select(Approval.id)).one()
        approver = world.actor(APPROVER)
        approvals.decide(s, approver, approval_id, approve=False, reason=HOSTILE["reason"])

    typed = {milestone, HOSTILE["action"], HOSTILE["note"], HOSTILE["reason"]}
    exports = {
        "milestones": ["export", "milestones"],
        "actions": ["export", "actions"],
        "kpis": ["export", "kpis"],
        "approvals": ["export", "approvals"],
        "audit": ["audit", "export", "--format", "csv"],
    }
    seen: set[str] = set()
    for name, args in exports.items():
        out = tmp_path / f"{name}.csv"
        assert main([*args, "--out", str(out)]) == 0
        cells = _cells(out)
        assert cells, name
        live = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
        assert not live, f"{name}: live formula cells {live}"
        seen |= {t for t in typed if any(c == "'" + t for c in cells)}
    # Each typed value is still there, readable, in the export that holds it.
    assert seen == typed


def test_neutralise_keeps_numbers_and_plain_text() -> None:
    assert neutralise(-1.5) == -1.5 and neutralise(3) == 3
    assert neutralise("Apex CRO") == "Apex CRO"
    assert neutralise("") == ""
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert neutralise(start + "x") == "'" + start + "x"
