"""Every /cro subcommand end to end: signed HTTP -> uvicorn -> Bolt -> services -> DB."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from sqlalchemy import select

from crobot.services import directory
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import (
    ActionItem,
    ActionStatus,
    ApprovalState,
    KpiUpdate,
    Milestone,
    MilestoneStatus,
)
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_APEX,
    C_JOINT,
    C_LAB,
    C_SPONSOR,
    LAB_PM,
    SPONSOR,
    STRANGER,
    World,
)
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient, settle, slash_bot, snapshot, tz_cache_rows


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    with slash_bot(world.db, fake_slack) as client:
        yield client


def test_help_and_unknown_subcommand(slash: SlashClient) -> None:
    a = slash.send("help", APEX_PM, C_APEX)
    assert a.status == 200 and not a.deferred and not a.in_channel
    assert "milestone add" in a.text and "digest" in a.text and a.payload["blocks"]
    a = slash.send("", APEX_PM, C_APEX)
    assert "/cro commands" in a.text
    a = slash.send("help kpi", APEX_PM, C_APEX)
    assert "kpi report" in a.text
    a = slash.send("milstone list", APEX_PM, C_APEX)
    assert "Did you mean `milestone`" in a.text and not a.in_channel
    a = slash.send("kpi shw enrollment", APEX_PM, C_APEX)
    assert "Did you mean `show`" in a.text


def test_milestones_end_to_end(slash: SlashClient, world: World) -> None:
    db = world.db
    # Study omitted in a linked channel; weekday resolved in the user's zone (Kolkata).
    a = slash.send('milestone add "First patient in" planned:fri', APEX_PM, C_APEX)
    assert a.deferred and a.in_channel, a.payload
    assert "First patient in" in a.text and "2026-11-27" in a.text
    a = slash.send('milestone add ONC-301 "Lab kits shipped" planned:+2w', LAB_PM, C_LAB)
    assert a.in_channel and "2026-12-09" in a.text
    with db.read() as s:
        apex_ms, lab_ms = s.scalars(select(Milestone).order_by(Milestone.id)).all()
    assert apex_ms.org_id == world.apex_id and lab_ms.org_id == world.lab_id

    a = slash.send(f"milestone update {apex_ms.id} forecast:2026-12-04", APEX_PM, C_APEX)
    assert a.in_channel and "forecast 2026-12-04" in a.text
    a = slash.send(f"milestone update #{apex_ms.id} status:at_risk", APEX_PM, C_APEX)
    assert "at risk" in a.text
    a = slash.send("milestone list --late", APEX_PM, C_APEX)
    assert not a.deferred and "First patient in" in a.text  # forecast later than planned

    # A vendor's "done" waits for approval; the approvals surface is told after commit.
    a = slash.send(f"milestone update {apex_ms.id} done actual:today", APEX_PM, C_APEX)
    assert "awaits the sponsor's approval" in a.text
    with db.read() as s:
        assert s.get_one(Milestone, apex_ms.id).status == MilestoneStatus.DONE
    assert len(slash.approvals_seen) == 1 and slash.approvals_seen[0][1] is True

    a = slash.send("milestone list ONC-301", SPONSOR, C_SPONSOR)
    assert "First patient in" in a.text and "Lab kits shipped" in a.text
    a = slash.send("milestone list --open", SPONSOR, C_SPONSOR)
    assert "Lab kits shipped" in a.text and "First patient in" not in a.text


def test_actions_end_to_end(slash: SlashClient, world: World) -> None:
    a = slash.send(
        'action add ONC-301 "Send lab manual" <@ULAB|liam> due:next fri priority:high',
        SPONSOR,
        C_SPONSOR,
    )
    assert a.in_channel and "2026-12-04" in a.text and "high" in a.text, a.text
    a = slash.send(
        'action add "Close site 12 queries" <@UAPEX|priya> due:tomorrow', APEX_PM, C_APEX
    )
    assert a.in_channel and "2026-11-26" in a.text
    with world.db.read() as s:
        lab_item, apex_item = s.scalars(select(ActionItem).order_by(ActionItem.id)).all()
    a = slash.send("action list mine", APEX_PM, C_APEX)
    assert "Close site 12 queries" in a.text and "Send lab manual" not in a.text
    a = slash.send("action list ONC-301 <@ULAB|liam>", SPONSOR, C_SPONSOR)
    assert "Send lab manual" in a.text and "Close site" not in a.text
    a = slash.send(f"action done {apex_item.id}", APEX_PM, C_APEX)
    assert a.in_channel and "done" in a.text
    with world.db.read() as s:
        assert s.get_one(ActionItem, apex_item.id).status == ActionStatus.DONE
    a = slash.send("action list --overdue", SPONSOR, C_SPONSOR)
    assert "0 overdue action(s)" in a.text
    a = slash.send("action list --all", APEX_PM, C_APEX)
    assert "Close site 12 queries" in a.text


def test_kpis_end_to_end(slash: SlashClient, world: World) -> None:
    a = slash.send('kpi report enrollment 12 note:"two new sites"', APEX_PM, C_APEX)
    assert a.deferred and a.in_channel and "awaits the sponsor's approval" in a.text
    a = slash.send("kpi report ONC-301 enrolment 14 period:2026-W47", APEX_PM, C_APEX)
    assert "2026-W47" in a.text
    a = slash.send("kpi report ONC-301 screen_failure_rate 18.5", APPROVER, C_SPONSOR)
    assert "awaits" not in a.text  # an approver's own sponsor numbers need no approval
    with world.db.read() as s:
        rows = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id)).all()
    assert [r.approval_state for r in rows] == [
        ApprovalState.PENDING,
        ApprovalState.PENDING,
        ApprovalState.APPROVED,
    ]
    assert [i for i, committed in slash.approvals_seen if committed] and len(
        slash.approvals_seen
    ) == 2
    a = slash.send("kpi show ONC-301 enrollment last:4w", SPONSOR, C_SPONSOR)
    assert not a.deferred and "Apex CRO" in a.text and "2026-W48" in a.text
    a = slash.send("kpi trend enrollment", APEX_PM, C_APEX)
    assert "▲" in a.text or "▼" in a.text
    a = slash.send("kpi list", APEX_PM, C_APEX)
    assert "screen_failure_rate" in a.text
    a = slash.send("status", SPONSOR, C_SPONSOR)
    assert "ONC-301" in a.text and "Enrolment" in a.text and "await approval" in a.text


BAD_INPUTS = [
    ("milestone add ONC-301 First patient planned:2026-12-01", APEX_PM, C_APEX, "Quote names"),
    ('milestone add "X" planned:2020-01-01', APEX_PM, C_APEX, "in the past"),
    ('milestone add "X" planned:someday', APEX_PM, C_APEX, "don't understand the planned date"),
    ('milestone add "X"', APEX_PM, C_APEX, "needs a planned date"),
    ('milestone add "X" planned:2026-02-30', APEX_PM, C_APEX, "not a real planned date"),
    ('milestone add NOPE-1 "X" planned:fri', APEX_PM, C_APEX, "no study `NOPE-1`"),
    ('milestone add "X" planned:fri org:CentraLab', APEX_PM, C_APEX, "own organisation"),
    ('milestone add "X" planned:fri', APEX_PM, "CUNLINKED", "Which study"),
    ('milestone add "X" plannd:fri', APEX_PM, C_APEX, "Did you mean `planned`"),
    ("milestone update 999 forecast:fri", APEX_PM, C_APEX, "no milestone #999"),
    ("milestone update abc forecast:fri", APEX_PM, C_APEX, "not a milestone ID"),
    ("milestone update 1 status:finished", APEX_PM, C_APEX, "not a milestone status"),
    ('milestone add "unterminated planned:fri', APEX_PM, C_APEX, "quote is not closed"),
    ('action add "T" due:fri', APEX_PM, C_APEX, "exactly one owner"),
    ('action add "T" @priya due:fri', APEX_PM, C_APEX, "can't tell who"),
    ('action add "T" <@ULAB|liam> due:fri', APEX_PM, C_APEX, "own people"),
    ('action add "T" <@UAPEX|p> due:yesterday', APEX_PM, C_APEX, "in the past"),
    ('action add "T" <@UAPEX|p> due:fri priority:urgent', APEX_PM, C_APEX, "not a priority"),
    ('action add "T" <@UAPEX|p> due:fri', STRANGER, C_JOINT, "crobot does not know you"),
    ("action done 4242", APEX_PM, C_APEX, "no action #4242"),
    ("action done", APEX_PM, C_APEX, "exactly one action ID"),
    ("kpi report enrollment -3", APEX_PM, C_APEX, "cannot be below 0"),
    ("kpi report screen_failure_rate 130", APEX_PM, C_APEX, "cannot be above 100"),
    ("kpi report enrollment 2.5", APEX_PM, C_APEX, "whole number"),
    ("kpi report enrollment lots", APEX_PM, C_APEX, "not a number"),
    ("kpi report enrolment 5 period:2027-W01", APEX_PM, C_APEX, "has not started"),
    ("kpi report enrolment 5 period:2026-W60", APEX_PM, C_APEX, "not a week"),
    ("kpi report velocity 5", APEX_PM, C_APEX, "no KPI `velocity`"),
    ("kpi report enrollment 5 org:CentraLab", APEX_PM, C_APEX, "own organisation"),
    ("kpi show enrollment last:forever", APEX_PM, C_APEX, "span"),
    ("kpi dance", APEX_PM, C_APEX, "Unknown kpi command"),
    ("status NOPE-1", APEX_PM, C_APEX, "no study"),
    ("help nonsense", APEX_PM, C_APEX, "no help topic"),
    ("milestone list --lat", APEX_PM, C_APEX, "Did you mean `--late`"),
]


def test_bad_inputs_are_explained_and_store_nothing(slash: SlashClient, world: World) -> None:
    # One row of each kind to aim at, so IDs that exist are in play too.
    slash.send('milestone add "Kick-off" planned:fri', APEX_PM, C_APEX)
    before = snapshot(world.db)
    for text, user, channel, expect in BAD_INPUTS:
        a = slash.send(text, user, channel)
        assert a.status == 200, text
        assert not a.in_channel, text
        assert ":warning:" in a.text and expect in a.text, (text, a.text)
        assert "Traceback" not in a.text
    assert snapshot(world.db) == before


def test_visibility_two_vendors(slash: SlashClient, world: World) -> None:
    # CentraLab's rows...
    slash.send('milestone add "Central lab go-live" planned:+1w', LAB_PM, C_LAB)
    slash.send('action add "Calibrate centrifuge" <@ULAB|liam> due:+3d', LAB_PM, C_LAB)
    slash.send("kpi report query_aging 9", LAB_PM, C_LAB)
    # ...and Apex's.
    slash.send('milestone add "Apex SIV wave 1" planned:+1w', APEX_PM, C_APEX)
    slash.send("kpi report query_aging 11", APEX_PM, C_APEX)
    secrets = ("CentraLab", "Central lab go-live", "Calibrate centrifuge")
    for text in (
        "status",
        "milestone list",
        "action list",
        "action list --all",
        "kpi show query_aging",
        "kpi trend query_aging",
        "milestone list ONC-301",
    ):
        for user in (APEX_PM, SPONSOR, APPROVER):
            a = slash.send(text, user, C_APEX)  # in Apex's vendor channel
            for secret in secrets:
                assert secret not in a.text, (user, text, secret)
    assert "Apex SIV wave 1" in slash.send("milestone list", APEX_PM, C_APEX).text
    # The sponsor in its own channel sees both vendors.
    a = slash.send("milestone list", SPONSOR, C_SPONSOR)
    assert "Central lab go-live" in a.text and "Apex SIV wave 1" in a.text
    # Apex staff asking from the lab's channel see nothing of either vendor's.
    a = slash.send("milestone list", APEX_PM, C_LAB)
    assert "Central lab go-live" not in a.text
    # Joint channel: approved data only — the pending KPI values are not there.
    a = slash.send("kpi show query_aging", SPONSOR, C_JOINT)
    assert "11" not in a.text.split("last 8")[1] and "CentraLab" not in a.text
    # The sponsor adding a CentraLab milestone from Apex's channel: not announced there.
    a = slash.send('milestone add "Lab audit" planned:+2w org:CentraLab', SPONSOR, C_APEX)
    assert not a.in_channel and "Only you see this" in a.text


def test_unknown_user_time_zone_from_users_info_then_cached(
    slash: SlashClient, world: World, fake_slack: FakeSlack
) -> None:
    # Auckland is already on 26 November when it is noon UTC on the 25th.
    with world.db.write() as s:  # registered, but crobot does not know their zones
        for user in ("UNEW", "UGHOST"):
            directory.add_person(
                s,
                SYSTEM,
                team_id="T1",
                user_id=user,
                display_name=user,
                org="Apex CRO",
                role="vendor_member",
            )
    fake_slack.add_user("UNEW", tz="Pacific/Auckland")
    fake_slack.fail("users.info", status=200, delay=1.0)  # a slow Slack must not delay the ack
    a = slash.send("status", "UNEW", C_JOINT)
    assert a.deferred and a.ack_seconds < 0.8, a.ack_seconds
    assert "today 2026-11-26" in a.text
    assert tz_cache_rows(world.db) == 1
    a = slash.send("status", "UNEW", C_JOINT)
    assert not a.deferred and "today 2026-11-26" in a.text
    assert len(fake_slack.calls_to("users.info")) == 1
    # Slack does not know the user: the channel's zone (Europe/Berlin) is used.
    a = slash.send("status", "UGHOST", C_JOINT)
    assert "today 2026-11-25" in a.text


def test_acks_are_fast(slash: SlashClient) -> None:
    for text in ("help", "status", "milestone list", "kpi report enrollment 3"):
        started = time.perf_counter()
        slash.send(text, APEX_PM, C_APEX)
        assert time.perf_counter() - started < 2.0


class CountingExecutor(ThreadPoolExecutor):
    """The listener executor, counting what is started on it (lazy listeners included)."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="test-listener")
        self.started = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.started += 1
        return super().submit(fn, *args, **kwargs)


def test_reads_start_no_work_after_the_ack(slash: SlashClient) -> None:
    executor = CountingExecutor()
    runner = slash.bot.app.listener_runner
    runner.listener_executor = executor
    runner.lazy_listener_runner = ThreadLazyListenerRunner(logging.getLogger("test"), executor)
    for text in ("help", "status", "milestone list", "action list", "kpi show enrollment"):
        a = slash.send(text, APEX_PM, C_APEX)
        assert not a.deferred and a.text.strip(), text
    assert executor.started == 0  # answered in the ack: no lazy listener, no copy
    a = slash.send('action add "Chase the lab" <@UAPEX|priya> due:fri', APEX_PM, C_APEX)
    assert a.deferred and "Chase the lab" in a.text  # a write: answered at response_url
    assert executor.started == 1


def test_forged_stale_missing_and_replayed_requests_are_rejected(
    slash: SlashClient, world: World, fake_slack: FakeSlack, db: Database
) -> None:
    from tests.slack_requests import command_body, post, signed_headers

    url = slash.bot.events_url
    before = snapshot(db)
    body = command_body('milestone add "Forged" planned:fri', user_id=APEX_PM, channel_id=C_APEX)
    good = signed_headers(body)
    forged = signed_headers(body, secret="wrong-secret")
    stale_ts = int(time.time()) - 600
    stale = signed_headers(body, timestamp=stale_ts)
    replay = dict(
        good, **{"X-Slack-Request-Timestamp": str(int(good["X-Slack-Request-Timestamp"]) + 7)}
    )
    missing_sig = {k: v for k, v in good.items() if k != "X-Slack-Signature"}
    missing_ts = {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"}
    tampered = body.replace("Forged", "Tampered")
    for headers, sent in [
        (forged, body),
        (stale, body),
        (replay, body),
        (missing_sig, body),
        (missing_ts, body),
        ({"Content-Type": "application/x-www-form-urlencoded"}, body),
        (good, tampered),
    ]:
        status, _ = post(url, sent, headers)
        assert status == 401
    settle(slash.bot)  # anything wrongly accepted has finished by now
    assert snapshot(db) == before
    assert fake_slack.state.calls == []


def test_user_text_cannot_ping_the_channel(slash: SlashClient) -> None:
    # Slack sends what the user typed HTML-escaped; the name is stored as typed...
    a = slash.send('milestone add "Go &lt;!channel&gt; &amp; more" planned:fri', APEX_PM, C_APEX)
    assert a.in_channel
    # ...and never echoed back as a live mention in a message the channel sees.
    assert "<!channel>" not in a.text and "&lt;!channel&gt;" in a.text
    listing = slash.send("milestone list", APEX_PM, C_APEX)
    assert "<!channel>" not in listing.text


def test_action_list_in_a_direct_message_spans_the_readers_studies(slash: SlashClient) -> None:
    slash.send('action add "Apex task" <@UAPEX|p> due:+3d', APEX_PM, C_APEX)
    slash.send('action add "Lab task" <@ULAB|l> due:+3d', LAB_PM, C_LAB)
    a = slash.send("action list mine", APEX_PM, "D0APEX")  # a DM: no linked study
    assert "Apex task" in a.text and "Lab task" not in a.text and "ONC-301" in a.text
    a = slash.send("action list", LAB_PM, "D0LAB")
    assert "Lab task" in a.text and "Apex task" not in a.text
