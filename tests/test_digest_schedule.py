"""Digest schedules: DST-correct fire times per zone, validation, audit, live scheduler update."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import func, select

from crobot.bot.scheduling import DigestScheduler
from crobot.digests.runner import DigestRunner
from crobot.digests.schedule import Schedule, ScheduleChange
from crobot.handlers.commands.digest import digest_command
from crobot.services.errors import UserError
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import AuditEvent, ChannelLink
from tests.conftest import C_APEX, C_SPONSOR, World
from tests.digest_helpers import Clock, bot_test_settings, ctx_for

ALL_DAYS = "mon,tue,wed,thu,fri,sat,sun"


def fires_on(sched: Schedule, local_day: date) -> list[datetime]:
    zone = sched.zone
    start = datetime.combine(local_day, datetime.min.time(), zone) - timedelta(days=1)
    fires = sched.fires_between(start.astimezone(UTC), start.astimezone(UTC) + timedelta(days=3))
    return [f for f in fires if f.astimezone(zone).date() == local_day]


# (zone, spring-forward day, fall-back day, an ambiguous local time on the fall-back day)
DST_ZONES = [
    ("Europe/Berlin", date(2026, 3, 29), date(2026, 10, 25), "02:30"),
    ("America/New_York", date(2026, 3, 8), date(2026, 11, 1), "01:30"),
    ("Australia/Sydney", date(2026, 10, 4), date(2026, 4, 5), "02:30"),
]


@pytest.mark.parametrize("zone,spring,fall,_amb", DST_ZONES)
def test_nine_oclock_fires_once_at_nine_local_on_dst_days(
    zone: str, spring: date, fall: date, _amb: str
) -> None:
    sched = Schedule(ALL_DAYS, "09:00", zone)
    for day in (spring - timedelta(days=1), spring, fall - timedelta(days=1), fall):
        fires = fires_on(sched, day)
        assert len(fires) == 1, (zone, day, fires)
        local = fires[0].astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (9, 0)
        assert sched.period_key(fires[0]) == f"{day.isoformat()}T09:00"


@pytest.mark.parametrize("zone,spring,_fall,_amb", DST_ZONES)
def test_nonexistent_time_on_spring_forward_fires_once_after_the_gap(
    zone: str, spring: date, _fall: date, _amb: str
) -> None:
    sched = Schedule(ALL_DAYS, "02:30", zone)
    fires = fires_on(sched, spring)
    assert len(fires) == 1
    local = fires[0].astimezone(ZoneInfo(zone))
    # Policy: shifted forward by the one-hour gap, i.e. 03:30 local wall time.
    assert (local.hour, local.minute) == (3, 30)
    assert sched.period_key(fires[0]) == f"{spring.isoformat()}T02:30"


@pytest.mark.parametrize("zone,_spring,fall,amb", DST_ZONES)
def test_repeated_time_on_fall_back_fires_once_at_first_occurrence(
    zone: str, _spring: date, fall: date, amb: str
) -> None:
    sched = Schedule(ALL_DAYS, amb, zone)
    fires = fires_on(sched, fall)
    assert len(fires) == 1, fires
    z = ZoneInfo(zone)
    h, m = (int(x) for x in amb.split(":"))
    first = datetime(fall.year, fall.month, fall.day, h, m, fold=0, tzinfo=z).astimezone(UTC)
    assert fires[0] == first
    # And the next day is unaffected.
    assert len(fires_on(sched, fall + timedelta(days=1))) == 1


def test_kolkata_half_hour_offset() -> None:
    sched = Schedule("mon,thu", "09:00", "Asia/Kolkata")
    fires = sched.fires_between(
        datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    )
    assert fires == [
        datetime(2026, 11, 23, 3, 30, tzinfo=UTC),
        datetime(2026, 11, 26, 3, 30, tzinfo=UTC),
    ]
    late = Schedule(ALL_DAYS, "02:30", "Asia/Kolkata")
    assert late.next_fire(datetime(2026, 11, 25, 12, tzinfo=UTC)) == datetime(
        2026, 11, 25, 21, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "days,time,zone,expected",
    [
        ("Mon,Thu", "09:00", None, ("mon,thu", "09:00", None)),
        ("thu, mon", "9:05", "Asia/Kolkata", ("mon,thu", "09:05", "Asia/Kolkata")),
        ("mon-fri", "17:30", None, ("mon,tue,wed,thu,fri", "17:30", None)),
        ("daily", "00:00", None, (ALL_DAYS, "00:00", None)),
    ],
)
def test_schedule_change_validates(
    days: str, time: str, zone: str | None, expected: tuple[str, str, str | None]
) -> None:
    data: dict[str, object] = {"days": days, "time": time}
    if zone:
        data["timezone"] = zone
    inp = ScheduleChange.model_validate(data)
    assert (inp.days, inp.time, inp.timezone) == expected


def _link(db: Database, channel: str) -> ChannelLink:
    with db.read() as s:
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == channel)).one()
    return link


def _snapshot(db: Database) -> tuple[object, ...]:
    with db.read() as s:
        rows = s.execute(
            select(
                ChannelLink.id,
                ChannelLink.digest_enabled,
                ChannelLink.digest_days,
                ChannelLink.digest_time,
                ChannelLink.timezone,
            ).order_by(ChannelLink.id)
        ).all()
        audits = s.scalar(select(func.count()).select_from(AuditEvent))
    return tuple(rows), audits


@pytest.mark.parametrize(
    "args",
    [
        ["schedule", "Mon,Thu 25:00"],
        ["schedule", "Mon,Thu 09:00", "tz:Mars/Olympus"],
        ["schedule", "Funday 09:00"],
        ["schedule", "09:00"],
        ["schedule"],
        ["scedule", "Mon 09:00"],
    ],
)
def test_bad_schedule_is_rejected_and_changes_nothing(world: World, args: list[str]) -> None:
    runtime = Runtime(world.db)
    before = _snapshot(world.db)
    with pytest.raises(UserError):
        digest_command(ctx_for(world, runtime, "USPONSOR", C_SPONSOR), args)
    assert _snapshot(world.db) == before


def test_vendor_cannot_change_sponsor_channel_schedule(world: World) -> None:
    runtime = Runtime(world.db)
    before = _snapshot(world.db)
    with pytest.raises(UserError, match="sponsor"):
        digest_command(ctx_for(world, runtime, "UAPEX", C_SPONSOR), ["schedule", "Mon 09:00"])
    assert _snapshot(world.db) == before


def test_schedule_is_stored_audited_and_updates_running_scheduler(world: World) -> None:
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    runtime = Runtime(world.db, now=clock)
    sched = DigestScheduler(bot_test_settings(world.db), runtime, client=_dummy_client())
    sched.scheduler.start(paused=True)  # real jobs, nothing runs
    sched.sync_jobs()
    runtime.schedule_listeners.append(sched.on_schedule_changed)
    link = _link(world.db, C_APEX)
    assert f"digest:{link.id}" in sched.job_ids()

    reply = digest_command(
        ctx_for(world, runtime, "UAPEX", C_APEX),
        ["schedule", "Mon,Thu 09:00", "tz:Asia/Kolkata"],
    )
    assert reply.in_channel and "Mon,Thu 09:00 (Asia/Kolkata)" in reply.text
    assert "Thu 26 Nov 09:00 IST (03:30 UTC)" in reply.text
    stored = _link(world.db, C_APEX)
    assert (stored.digest_days, stored.digest_time, stored.timezone) == (
        "mon,thu",
        "09:00",
        "Asia/Kolkata",
    )
    with world.db.read() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "digest.schedule")).one()
    assert ev.after == {
        "digest_enabled": True,
        "digest_days": "mon,thu",
        "digest_time": "09:00",
        "timezone": "Asia/Kolkata",
    }
    job = sched.job(f"digest:{link.id}")
    nxt = job.trigger.get_next_fire_time(None, clock())
    assert nxt == datetime(2026, 11, 26, 3, 30, tzinfo=UTC)

    digest_command(ctx_for(world, runtime, "UAPEX", C_APEX), ["off"])
    assert f"digest:{link.id}" not in sched.job_ids()
    assert not _link(world.db, C_APEX).digest_enabled
    sched.shutdown(wait=False)


def test_scheduled_job_sends_within_grace_and_skips_beyond(world: World) -> None:
    from tests.digest_helpers import RecordingDelivery

    link = _link(world.db, C_APEX)  # default Monday 09:00, Asia/Kolkata
    clock = Clock(datetime(2026, 11, 30, 3, 40, tzinfo=UTC))  # Mon 09:10 IST
    runtime = Runtime(world.db, now=clock)
    delivery = RecordingDelivery()
    runner = DigestRunner(runtime, delivery, grace=timedelta(hours=6))  # type: ignore[arg-type]
    runner.scheduled(link.id)
    assert delivery.sent == [(link.id, "2026-11-30T09:00")]
    clock.set(datetime(2026, 11, 30, 9, 31, tzinfo=UTC))  # 6 h 1 min late
    runner.scheduled(link.id)
    assert len(delivery.sent) == 1


def _dummy_client() -> WebClient:
    return WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/")
