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
