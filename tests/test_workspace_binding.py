"""A person's workspace belongs to their organisation (`crobot person add`, `org add`).

Reproduces the finding: `person add … --team T0EVIL --org "Helix Pharma" --role
sponsor_approver` was accepted although T0EVIL is another organisation's workspace.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.storage.db import Database
from crobot.storage.models import Person
from tests.dbstate import assert_unchanged, snapshot


@pytest.fixture
def cli_env(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("CROBOT_DATABASE_URL", db.url)
    monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")
    assert main(["org", "add", "Helix Pharma", "--kind", "sponsor", "--slack-team", "T0HELIX"]) == 0
    assert main(["org", "add", "Apex CRO", "--kind", "cro", "--slack-team", "T0EVIL"]) == 0
    assert main(["org", "add", "CentraLab", "--kind", "lab"]) == 0
    return db


def person(user: str, team: str, org: str, role: str) -> list[str]:
    return ["person", "add", user, "--team", team, "--name", "X", "--org", org, "--role", role]


def test_a_workspace_holds_only_its_organisations_people(
    cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(cli_env)
    refused = [
        # T0EVIL is Apex's workspace: no sponsor approver can be registered there.
        (person("UDANA", "T0EVIL", "Helix Pharma", "sponsor_approver"), "registered to `Apex"),
        # Helix registered T0HELIX: its people are there, not in an unregistered workspace.
        (person("UDANA", "T0OTHER", "Helix Pharma", "sponsor_approver"), "works in Slack"),
        # CentraLab registered nothing, but T0EVIL is Apex's.
        (person("ULAB", "T0EVIL", "CentraLab", "vendor_member"), "registered to `Apex"),
        # A workspace is registered to one organisation only.
        (["org", "add", "Beta CMO", "--kind", "cmo", "--slack-team", "T0EVIL"], "already"),
    ]
    for args, words in refused:
        assert main(args) != 0, args
        assert words in capsys.readouterr().err, args
    assert_unchanged(cli_env, before)

    assert main(person("UDANA", "T0HELIX", "Helix Pharma", "sponsor_approver")) == 0
    assert main(person("UPRIYA", "T0EVIL", "Apex CRO", "vendor_member")) == 0
    assert main(person("ULAB", "T0LAB", "CentraLab", "vendor_member")) == 0
    with cli_env.read() as s:
        got = {(p.team_id, p.slack_user_id) for p in s.scalars(select(Person))}
    assert got == {("T0HELIX", "UDANA"), ("T0EVIL", "UPRIYA"), ("T0LAB", "ULAB")}
