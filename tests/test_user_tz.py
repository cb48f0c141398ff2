"""The user's zone, decided in one place (`services.user_tz`) for commands, forms and nudges:
Person.timezone, else the cached `users.info` zone, else the channel's or the default."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from crobot.digests.nudges import overdue_owners, owner_zones
from crobot.services import actions, directory
from crobot.services.actor import SYSTEM
from crobot.services.lookup import channel_link
from crobot.services.user_tz import CACHE_TTL, remember_timezone, zone_for
from tests.conftest import APEX_PM, C_JOINT, SPONSOR, TODAY, World

NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)


def _overdue_for(world: World, owner: str) -> None:
    with world.db.write() as s:
        actions.add(
            s,
            world.actor(SPONSOR),
            today=TODAY,
            allow_past=True,
            study="ONC-301",
            title="Overdue",
            owner_user_id=owner,
            due=date(2026, 11, 1),
        )


def test_zone_for_prefers_the_person_then_the_cache_then_the_channel(world: World) -> None:
    with world.db.write() as s:
        remember_timezone(s, "T1", "UCACHED", "Pacific/Auckland", now=NOW)
        remember_timezone(s, "T1", "USTALE", "Asia/Tokyo", now=NOW - CACHE_TTL - timedelta(1))
    with world.db.read() as s:
        link = channel_link(s, "T1", C_JOINT)  # Europe/Berlin
        assert zone_for(s, world.actor(APEX_PM), link, now=NOW, default="UTC") == (
            "Asia/Kolkata",
            True,
        )
        cached = world.actor("UCACHED")
        assert zone_for(s, cached, link, now=NOW, default="UTC") == ("Pacific/Auckland", True)
        # A stale answer is asked of Slack again: meanwhile the channel's zone is used.
        stale = world.actor("USTALE")
        assert zone_for(s, stale, link, now=NOW, default="UTC") == ("Europe/Berlin", False)
        assert zone_for(s, stale, None, now=NOW, default="UTC") == ("UTC", False)


def test_nudges_read_owner_zones_through_the_same_rule(world: World) -> None:
    with world.db.write() as s:
        # A background job has nobody to ask: even a stale cached answer beats the default.
        remember_timezone(s, "T1", "USTALE", "Asia/Tokyo", now=NOW - CACHE_TTL - timedelta(1))
        for user in ("USTALE", "UNKNOWN"):  # registered without a zone of their own
            directory.add_person(
                s,
                SYSTEM,
                team_id="T1",
                user_id=user,
                display_name=user,
                org="Helix Pharma",
                role="sponsor_member",
            )
    for owner in (APEX_PM, "USTALE", "UNKNOWN"):
        _overdue_for(world, owner)
    with world.db.read() as s:
        zones = {o.user_id: o.timezone for o in overdue_owners(s, NOW, "America/Chicago")}
        assert zones == {
            APEX_PM: "Asia/Kolkata",  # the person's own
            "USTALE": "Asia/Tokyo",  # the cache
            "UNKNOWN": "America/Chicago",  # the default
        }
        assert owner_zones(s, "UTC") == {"Asia/Kolkata", "Asia/Tokyo", "UTC"}
