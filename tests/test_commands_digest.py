"""`/cro digest …` through the real `/cro` router and HTTP stack."""

from __future__ import annotations

from sqlalchemy import select

from crobot.storage.models import ChannelLink
from tests.conftest import APEX_PM, APPROVER, C_APEX, C_LAB, C_SPONSOR, World
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack
from tests.slash_helpers import slash_bot


def _link(world: World, channel: str) -> ChannelLink:
    with world.db.read() as s:
        return s.scalars(select(ChannelLink).where(ChannelLink.channel_id == channel)).one()


def test_digest_preview_schedule_and_refusal(world: World, fake_slack: FakeSlack) -> None:
    with slash_bot(world.db, fake_slack) as slash:
        preview = slash.send("digest preview", APPROVER, C_SPONSOR)
        assert preview.status == 200 and not preview.in_channel
        assert "ONC-301" in preview.text and preview.payload.get("blocks")

        changed = slash.send('digest schedule "Mon,Thu 07:30" tz:Asia/Kolkata', APEX_PM, C_APEX)
        assert changed.status == 200 and "07:30" in changed.text
        link = _link(world, C_APEX)
        assert (link.digest_days, link.digest_time, link.timezone) == (
            "mon,thu",
            "07:30",
            "Asia/Kolkata",
        )
        before = snapshot(world.db)
        refused = slash.send('digest schedule "Tue 08:00"', APEX_PM, C_LAB)
        bad_zone = slash.send('digest schedule "Tue 08:00" tz:Mars/Base', APPROVER, C_SPONSOR)
        assert_unchanged(world.db, before)
    assert "can change its digest" in refused.text and not refused.in_channel
    assert "Mars/Base" in bad_zone.text
    assert refused.payload["response_type"] == "ephemeral"


def test_digest_show_and_now_post_this_periods_digest_once(
    world: World, fake_slack: FakeSlack
) -> None:
    with slash_bot(world.db, fake_slack) as slash:
        shown = slash.send("digest show", APEX_PM, C_APEX)
        assert "Mon 09:00 (Asia/Kolkata)" in shown.text and " UTC)" in shown.text
        assert not shown.in_channel
        first = slash.send("digest now", APEX_PM, C_APEX)
        again = slash.send("digest now", APEX_PM, C_APEX)
        before = snapshot(world.db)
        refused = slash.send("digest now", APEX_PM, C_LAB)  # not Apex's channel
        assert_unchanged(world.db, before)
    assert "posted this channel's digest now" in first.text
    assert "already posted; it is not sent twice" in again.text
    assert "can change its digest" in refused.text
    digests = [m for m in fake_slack.posted(C_APEX) if m.get("metadata")]
    assert len(digests) == 1 and fake_slack.posted(C_LAB) == []
