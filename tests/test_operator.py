"""The CLI records who really ran it: the operating-system account from the process's
uid (never LOGNAME or USER), and whom it acted as. `kpi import --as` imports as a
registered person, whose role decides which rows wait."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.services import audit
from crobot.storage.db import Database
from crobot.storage.models import ApprovalState, AuditEvent, KpiUpdate
from tests.conftest import APEX_PM, APPROVER, C_APEX, World
from tests.dbstate import assert_unchanged, snapshot

ACCOUNT = pwd.getpwuid(os.getuid()).pw_name
HEADER = "study,org,kpi,period,value,note\n"
ROWS = HEADER + (
    "ONC-301,Helix Pharma,query_aging,2026-W40,3,\nONC-301,Apex CRO,enrollment,2026-W40,12,\n"
)


@pytest.fixture
def posing(cli_env: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The environment claims to be the approver; it must change nothing."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, APPROVER)
    return cli_env


def _events(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _import(tmp_path: Path, text: str, *extra: str) -> int:
    path = tmp_path / "values.csv"
    path.write_text(text, encoding="utf-8")
    return main(["kpi", "import", str(path), *extra])


def test_console_is_audited_as_the_user_with_the_real_operator(
    world: World, posing: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["console", "--user", APEX_PM, "--channel", C_APEX, "-c"]
    assert main([*argv, '/cro milestone add "Operator check" planned:+1w']) == 0
    assert "Operator check" in capsys.readouterr().out
    (event,) = _events(posing, "milestone.create")
    assert event.actor == f"T1:{APEX_PM}"
    assert event.operator == f"console:{ACCOUNT} as T1:{APEX_PM}"
    assert APPROVER not in event.operator
    with posing.read() as s:
        assert audit.verify(s).ok  # the operator is inside the HMAC


def test_import_without_as_is_the_operator_and_every_row_waits(
    world: World, posing: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _import(tmp_path, ROWS) == 0
    with posing.read() as s:
        states = [r.approval_state for r in s.scalars(select(KpiUpdate).order_by(KpiUpdate.id))]
    assert states == [ApprovalState.PENDING, ApprovalState.PENDING]
    # One event for the import (one study), by the operator: both rows, both waiting.
    (event,) = _events(posing, "kpi.import")
    assert (event.actor, event.operator) == (f"cli:{ACCOUNT}", f"cli:{ACCOUNT}")
    assert event.after is not None and (event.after["rows"], event.after["waiting"]) == (2, 2)
    assert _events(posing, "kpi.report") == []


def test_import_as_an_approver_approves_only_the_sponsors_own_rows(
    world: World, posing: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _import(tmp_path, ROWS, "--as", f"T1:{APPROVER}") == 0
    with posing.read() as s:
        rows = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id)).all()
    # The approver's own sponsor value needs no one else; a vendor's value waits.
    assert [r.approval_state for r in rows] == [ApprovalState.APPROVED, ApprovalState.PENDING]
    (event,) = _events(posing, "kpi.import")
    assert (event.actor, event.operator) == (f"T1:{APPROVER}", f"cli:{ACCOUNT} as T1:{APPROVER}")
    assert event.after is not None and (event.after["rows"], event.after["waiting"]) == (2, 1)


def test_import_as_a_vendor_is_held_to_the_vendors_rights(
    world: World, posing: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(posing)
    assert _import(tmp_path, ROWS, "--as", APEX_PM) == 2
    err = capsys.readouterr().err
    assert "line 2:" in err and "own organisation" in err and "nothing was imported" in err
    assert_unchanged(posing, before)


@pytest.mark.parametrize("who", ["UNOBODY", "T9:" + APPROVER])
def test_import_as_someone_unregistered_is_refused(
    world: World, posing: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str], who: str
) -> None:
    before = snapshot(posing)
    assert _import(tmp_path, ROWS, "--as", who) == 2
    assert "not a registered person" in capsys.readouterr().err
    assert_unchanged(posing, before)


def test_an_empty_org_is_an_error_and_nothing_is_imported(
    world: World, posing: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(posing)
    text = ROWS + "ONC-301,,query_aging,2026-W41,4,\n"
    assert _import(tmp_path, text, "--as", APPROVER) == 2
    err = capsys.readouterr().err
    assert "line 4: The org is empty" in err and "1 bad row(s)" in err
    assert_unchanged(posing, before)


def test_everything_a_cli_process_writes_names_its_account(
    posing: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo writes as its sample people (the approver decides its history): each of
    those events still says which account ran the command."""
    assert main(["demo"]) == 0
    with posing.read() as s:
        rows = s.execute(select(AuditEvent.actor, AuditEvent.operator)).all()
    assert {a for a, _ in rows} >= {"crobot:system", "TDEMO:UDEMOAPPR", "TDEMO:UDEMOCRO"}
    assert {o for _, o in rows} == {f"cli:{ACCOUNT}"}
