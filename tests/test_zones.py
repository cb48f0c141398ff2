"""Typed time zones: canonical IANA location zones only, with the right spelling suggested.

Reproduces the finding: `tz:EST` (a fixed UTC−5 without daylight saving) and `Etc/GMT-5`
(which is UTC+5) were accepted silently; and a UTC time on another day than the local one
was shown without its date.
"""

from __future__ import annotations

import pytest

from crobot.bot.cli import main
from crobot.services.zones import canonical_zone
from tests.conftest import APPROVER, C_SPONSOR, World
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack
from tests.slash_helpers import slash_bot


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("EST", "fixed offset"),
        ("Etc/GMT-5", "fixed offset"),
        ("asia/kolkata", "Asia/Kolkata"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("US/Eastern", "America/New_York"),
        ("Europe/Berln", "Europe/Berlin"),
        ("../../etc/passwd", "unknown time zone"),
    ],
)
def test_non_canonical_zones_are_refused_with_the_right_spelling(typed: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace(".", r"\.").replace("/", "/")):
        canonical_zone(typed)


def test_canonical_zones_pass() -> None:
    for zone in ("UTC", "Asia/Kolkata", "America/New_York", "America/Argentina/Buenos_Aires"):
        assert canonical_zone(zone) == zone


def test_digest_schedule_refuses_a_fixed_offset_and_dates_a_utc_time_on_another_day(
    world: World, fake_slack: FakeSlack
) -> None:
    with slash_bot(world.db, fake_slack) as slash:
        before = snapshot(world.db)
        for typed, words in (("EST", "fixed offset"), ("Etc/GMT-5", "fixed offset")):
            answer = slash.send(f'digest schedule "Mon 09:00" tz:{typed}', APPROVER, C_SPONSOR)
            assert words in answer.text and not answer.in_channel, answer.text
        spelled = slash.send('digest schedule "Mon 09:00" tz:asia/kolkata', APPROVER, C_SPONSOR)
        assert "Asia/Kolkata" in spelled.text and not spelled.in_channel
        assert_unchanged(world.db, before)
        # 01:00 in Kolkata on Monday is 19:30 UTC on Sunday: the UTC time says so.
        ok = slash.send('digest schedule "Mon 01:00" tz:Asia/Kolkata', APPROVER, C_SPONSOR)
    assert ok.in_channel, ok.text
    assert "Mon 30 Nov 01:00 IST (Sun 29 Nov 19:30 UTC)" in ok.text


def test_cli_refuses_an_old_zone_name(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CROBOT_DATABASE_URL", world.db.url)
    monkeypatch.setenv("CROBOT_LOG_LEVEL", "WARNING")
    before = snapshot(world.db)
    args = ["channel", "link", "C0NEW", "--team", "T1", "--study", "ONC-301"]
    assert main([*args, "--audience", "sponsor", "--tz", "Asia/Calcutta"]) != 0
    assert "Asia/Kolkata" in capsys.readouterr().err
    assert_unchanged(world.db, before)
