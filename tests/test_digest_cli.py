"""`crobot digest preview | send | list` through the real CLI entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.services import milestones
from crobot.storage.models import AuditEvent, ChannelLink, DigestRun, DigestRunState
from tests.conftest import C_APEX, C_SPONSOR, TODAY, World
from tests.fake_slack import FakeSlack


@pytest.fixture
def cli_env(world: World, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("CROBOT_DATABASE_URL", world.db.url)
    monkeypatch.setenv("CROBOT_SLACK_API_URL", fake_slack.base_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    return world


def test_preview_prints_the_channels_digest(
    cli_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with cli_env.db.write() as s:
        milestones.add(
            s,
            cli_env.actor("UAPEX"),
            today=TODAY,
            study="ONC-301",
            name="FPI <!channel>",
            planned=datetime.now(UTC).date() + timedelta(days=3),
        )
    assert main(["digest", "preview", "--channel", C_APEX]) == 0
    out = capsys.readouterr().out
    assert "ONC-301 digest" in out and "FPI &lt;!channel&gt;" in out
    assert "Milestones due in the next 14 days" in out


def test_preview_unknown_channel_is_a_one_line_error(
    cli_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["digest", "preview", "--channel", "CNOPE"]) == 2
    assert "CNOPE is not linked" in capsys.readouterr().err


def test_list_shows_schedule_and_next_fire_local_and_utc(
    cli_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["digest", "list"]) == 0
    out = capsys.readouterr().out
    apex = next(line for line in out.splitlines() if line.startswith(C_APEX))
    assert "Mon 09:00 (Asia/Kolkata)" in apex
    assert "09:00 IST / " in apex and "03:30 UTC" in apex


def test_send_now_goes_through_the_exactly_once_path(
    cli_env: World, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["digest", "send", "--channel", C_SPONSOR]) == 0
    assert main(["digest", "send", "--channel", C_SPONSOR]) == 0  # same period: no repost
    assert len(fake_slack.posted(C_SPONSOR)) == 1
    out = capsys.readouterr().out
    assert "sent ts=" in out and "duplicate" in out
    with cli_env.db.read() as s:
        run = s.scalars(select(DigestRun)).one()
    assert run.state == DigestRunState.SENT and run.target.startswith("link:")


def test_schedule_sets_a_channels_digest_audited_as_the_operator(
    cli_env: World, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["digest", "schedule", "--channel", C_APEX, "Mon,Thu 07:30", "--tz", "Europe/Berlin"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Mon,Thu 07:30 (Europe/Berlin)" in out and " UTC" in out
    with cli_env.db.read() as s:
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == C_APEX)).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "digest.schedule")).one()
    assert (link.digest_days, link.digest_time, link.timezone) == (
        "mon,thu",
        "07:30",
        "Europe/Berlin",
    )
    assert event.actor.startswith("cli:") and event.before is not None
    assert main(["digest", "schedule", "--channel", C_APEX, "Mon 09:00", "--tz", "EST"]) == 2
    assert "EST" in capsys.readouterr().err
