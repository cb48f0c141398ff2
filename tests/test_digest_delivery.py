"""Exactly-once delivery against the fake Slack Web API (real HTTP), on every backend."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update

from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client, run_key
from crobot.digests.runner import DigestRunner
from crobot.services import actions, kpis, milestones
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState, MilestoneStatus
from tests.conftest import C_APEX, C_JOINT, C_LAB, C_SPONSOR, TODAY, World
from tests.digest_helpers import Clock, link_id, seed
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls

NOW = datetime(2026, 11, 30, 3, 35, tzinfo=UTC)  # Monday 09:05 in Kolkata


class SimulatedCrash(BaseException):
    """Stands in for the process dying (BaseException: nothing in delivery catches it)."""


@dataclass
class Env:
    world: World
    fake: FakeSlack
    clock: Clock
    runtime: Runtime

    def delivery(self, **kw: object) -> Delivery:
        client = delivery_client(WebClient(token="xoxb-test", base_url=self.fake.base_url))
        kw.setdefault("backoff", 0.01)
        kw.setdefault("pacer", ChannelPacer(0.0))
        return Delivery(self.runtime, client, **kw)  # type: ignore[arg-type]

    def run(self, channel: str, period: str = "2026-11-30T09:00") -> DigestRun:
        with self.world.db.read() as s:
            return s.scalars(
                select(DigestRun).where(
                    DigestRun.target == f"link:{link_id(self.world.db, channel)}",
                    DigestRun.period_key == period,
                )
            ).one()


@pytest.fixture
def env(world: World, fake_slack: FakeSlack) -> Iterator[Env]:
    clock = Clock(NOW)
    yield Env(world, fake_slack, clock, Runtime(world.db, now=clock))


def posts(fake: FakeSlack, channel: str) -> list[dict[str, object]]:
    return [c.params for c in fake.calls_to("chat.postMessage") if c.params["channel"] == channel]


def test_digest_posts_once_with_run_key_metadata(env: Env) -> None:
    seed(env.world, 2)
    d = env.delivery()
    lid = link_id(env.world.db, C_APEX)
    first = d.send_link(lid, "2026-11-30T09:00")
    again = d.send_link(lid, "2026-11-30T09:00")
    assert first.state == "sent" and again.state == "duplicate"
    msgs = env.fake.posted(C_APEX)
    assert len(msgs) == 1
    assert msgs[0]["metadata"]["event_payload"]["run_key"] == run_key(
        f"link:{lid}", "2026-11-30T09:00"
    )
    run = env.run(C_APEX)
    assert (run.state, run.slack_ts, run.slack_channel, run.attempts) == (
        DigestRunState.SENT,
        msgs[0]["ts"],
        C_APEX,
        1,
    )
    # Charts are blocks of the message now: no image is drawn or uploaded.
    assert env.fake.calls_to("files.getUploadURLExternal") == []


def test_charts_can_be_turned_off_per_channel(env: Env) -> None:
    _off_target_kpis(env)
    sponsor = link_id(env.world.db, C_SPONSOR)
    assert env.delivery().send_link(sponsor, "on").state == "sent"
    with env.world.db.write() as s:
        s.execute(update(ChannelLink).where(ChannelLink.id == sponsor).values(charts_enabled=False))
    assert env.delivery().send_link(sponsor, "off").state == "sent"
    on, off = [m["blocks"] for m in env.fake.posted(C_SPONSOR) if not m.get("thread_ts")]
    assert isinstance(on, list) and isinstance(off, list)
    assert any(b["type"] == "data_visualization" for b in on)
    assert not any(b["type"] == "data_visualization" for b in off)
    assert any(b["type"] == "table" for b in off)  # the values stay, as a table


def test_429_with_retry_after_then_success_posts_one_message(env: Env) -> None:
    env.fake.fail("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    out = env.delivery().send_link(link_id(env.world.db, C_APEX), "2026-11-30T09:00")
    assert out.state == "sent"
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert len(env.fake.calls_to("chat.postMessage")) == 2
    assert len(env.fake.posted(C_APEX)) == 1


def test_long_retry_after_is_rescheduled_not_slept(env: Env) -> None:
    env.fake.fail("chat.postMessage", status=429, retry_after=120)
    started = time.monotonic()
    out = env.delivery().send_link(link_id(env.world.db, C_APEX), "2026-11-30T09:00")
    assert time.monotonic() - started < 5
    assert out.state == "pending" and out.retry_at == NOW + timedelta(seconds=120)
    assert env.fake.posted(C_APEX) == []
    # The follow-up (what the scheduler's one-off retry job calls) posts it once.
    assert env.delivery().resume(out.run_id or 0).state in ("sent", "pending")


def test_crash_between_claim_and_post_is_resumed_once(env: Env) -> None:
    def crash(_run_id: int) -> None:
        raise SimulatedCrash

    dying = env.delivery(after_claim=crash)
    lid = link_id(env.world.db, C_APEX)
    with pytest.raises(SimulatedCrash):
        dying.send_link(lid, "2026-11-30T09:00")
    assert env.run(C_APEX).state == DigestRunState.PENDING
    assert env.fake.calls_to("chat.postMessage") == []

    # A restart within the lease leaves it alone (the first process might still be alive).
    restarted = env.delivery()
    assert [o.state for o in restarted.resume_pending()] == ["pending"]
    assert env.fake.calls_to("chat.postMessage") == []

    env.clock.advance(timedelta(minutes=3))  # lease (2 min) expired
    outcomes = restarted.resume_pending()
    assert [o.state for o in outcomes] == ["sent"]
    assert env.delivery().resume_pending() == []
    assert len(env.fake.posted(C_APEX)) == 1
    assert env.run(C_APEX).state == DigestRunState.SENT


def test_unknown_outcome_is_not_posted_twice(env: Env) -> None:
    # The fake performs the post, then drops the connection without an answer.
    env.fake.fail("chat.postMessage", after_effect=True, reset=True)
    out = env.delivery().send_link(link_id(env.world.db, C_APEX), "2026-11-30T09:00")
    assert out.state == "sent" and out.detail == "found in history"
    assert len(env.fake.posted(C_APEX)) == 1
    assert len(env.fake.calls_to("chat.postMessage")) == 1
    assert len(env.fake.calls_to("conversations.history")) == 1
    run = env.run(C_APEX)
    assert run.slack_ts == env.fake.posted(C_APEX)[0]["ts"] and run.attempts == 2


def test_server_error_is_retried_after_checking_history(env: Env) -> None:
    env.fake.fail("chat.postMessage", status=503)
    out = env.delivery().send_link(link_id(env.world.db, C_APEX), "2026-11-30T09:00")
    assert out.state == "sent"
    assert len(env.fake.calls_to("chat.postMessage")) == 2
    assert len(env.fake.calls_to("conversations.history")) == 1
    assert len(env.fake.posted(C_APEX)) == 1


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
def test_permanent_error_fails_the_run_and_tells_the_sponsor_once(env: Env, error: str) -> None:
    env.fake.fail("chat.postMessage", error=error, count=1000)
    lid = link_id(env.world.db, C_APEX)
    d = env.delivery()
    out = d.send_link(lid, "2026-11-30T09:00")
    assert out.state == "failed" and out.detail == error
    run = env.run(C_APEX)
    assert (run.state, run.error, run.attempts) == (DigestRunState.FAILED, error, 1)
    apex_calls = posts(env.fake, C_APEX)
    assert len(apex_calls) == 1  # no retry storm
    # The notice went through the same fault (count=1000), so clear it and retry paths:
    env.fake.reset()
    for _ in range(3):
        d.send_link(lid, "2026-11-30T09:00")
        d.resume_pending()
        DigestRunner(env.runtime, d).catch_up()
    assert posts(env.fake, C_APEX) == []


def test_permanent_error_notice_reaches_sponsor_channel_once(env: Env) -> None:
    env.fake.fail("chat.postMessage", error="channel_not_found", count=1)
    lid = link_id(env.world.db, C_LAB)
    d = env.delivery()
    assert d.send_link(lid, "2026-11-30T09:00").state == "failed"
    d.send_link(lid, "2026-11-30T09:00")
    notices = env.fake.posted(C_SPONSOR)
    assert len(notices) == 1
    assert "channel_not_found" in str(notices[0]["text"]) and f"<#{C_LAB}>" in str(
        notices[0]["text"]
    )


def test_user_text_renders_inert_in_the_posted_message(env: Env) -> None:
    evil = "<!channel> ping <@U1> & *bold* _it_ <https://evil.example|click>"
    with env.world.db.write() as s:
        milestones.add(
            s,
            env.world.actor("UAPEX"),
            today=TODAY,
            study="ONC-301",
            name=evil,
            planned=TODAY + timedelta(days=3),
        )
        actions.add(
            s,
            env.world.actor("UAPEX"),
            today=TODAY,
            study="ONC-301",
            title=evil,
            owner_user_id="UAPEX",
            due=TODAY + timedelta(days=3),
        )
    assert env.delivery().send_link(link_id(env.world.db, C_APEX), "p").state == "sent"
    call = posts(env.fake, C_APEX)[0]
    payload = json.dumps({"text": call["text"], "blocks": call["blocks"]}, ensure_ascii=False)
    for bad in ("<!channel>", "<@U1>", "<https://", "*bold*", "_it_", " & "):
        assert bad not in payload
    assert "&lt;!channel&gt;" in payload and "&lt;@U1&gt;" in payload and "&amp;" in payload


def test_block_kit_limits_with_overflow_summarised(env: Env) -> None:
    long = "x" * 190
    with env.world.db.write() as s:
        for i in range(120):
            milestones.add(
                s,
                env.world.actor("USPONSOR"),
                today=TODAY,
                study="ONC-301",
                name=f"{long} {i}",
                planned=TODAY + timedelta(days=1 + i % 10),
                shared=True,  # the joint channel shows shared items only
            )
            actions.add(
                s,
                env.world.actor("USPONSOR"),
                today=TODAY,
                study="ONC-301",
                title=f"{long} {i}",
                owner_user_id="USPONSOR",
                due=TODAY + timedelta(days=1),
                shared=True,
            )
    assert env.delivery().send_link(link_id(env.world.db, C_JOINT), "p").state == "sent"
    blocks = posts(env.fake, C_JOINT)[0]["blocks"]
    assert isinstance(blocks, list) and len(blocks) <= 50
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(t) <= 3000 for t in texts)
    joined = "\n".join(texts)
    shown = sum(1 for line in joined.splitlines() if line.startswith("• "))
    more = [int(n) for n in re.findall(r"…and (\d+) more milestones", joined)]
    assert more and shown + sum(more) == 120  # every milestone shown or counted
    assert "more open actions" in joined
    assert all(line.strip() for line in joined.splitlines())  # no half lines


def test_overdue_nudge_once_per_owner_per_local_day(env: Env) -> None:
    with env.world.db.write() as s:
        actions.add(
            s,
            env.world.actor("UAPEX"),
            today=TODAY,
            allow_past=True,
            study="ONC-301",
            title="Send <!here> the CRFs",
            owner_user_id="UAPEX",
            due=date(2026, 11, 20),
        )
        actions.add(
            s,
            env.world.actor("ULAB"),
            today=TODAY,
            allow_past=True,
            study="ONC-301",
            title="Lab kit",
            owner_user_id="ULAB",
            due=date(2026, 11, 20),
        )
    runner = DigestRunner(env.runtime, env.delivery())
    assert [o.state for o in runner.nudges("Asia/Kolkata")] == ["sent"]
    assert [o.state for o in runner.nudges("Asia/Kolkata")] == ["duplicate"]
    dms = env.fake.posted("DAPEX")
    assert len(dms) == 1 and "&lt;!here&gt;" in json.dumps(dms[0]["blocks"])
    assert env.fake.posted("DLAB") == []  # Dublin's 09:00 has not come yet
    with env.world.db.read() as s:
        run = s.scalars(select(DigestRun).where(DigestRun.target == "dm:T1:UAPEX")).one()
    assert run.period_key == "2026-11-30"


def test_catch_up_sends_missed_digest_within_grace_and_skips_older(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crobot.digests.runner")
    with env.world.db.write() as s:
        s.execute(update(ChannelLink).values(created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    # Monday 09:00 everywhere (default). Now: Mon 30 Nov 10:00 UTC.
    env.clock.set(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    runner = DigestRunner(env.runtime, env.delivery(), grace=timedelta(hours=6))
    outcomes = runner.catch_up()
    # Kolkata fired at 03:30 UTC (6.5 h ago: skipped); Dublin 09:00 UTC, Berlin 08:00 UTC
    # (within grace: sent); New York's 09:00 is 14:00 UTC, so its latest fire is last week.
    assert sorted(o.state for o in outcomes) == ["sent", "sent"]
    assert len(env.fake.posted(C_LAB)) == 1 and len(env.fake.posted(C_JOINT)) == 1
    assert env.fake.posted(C_APEX) == [] and env.fake.posted(C_SPONSOR) == []
    assert runner.catch_up() == []  # once
    skipped = [r.getMessage() for r in caplog.records if "beyond the" in r.getMessage()]
    assert any(f"missed digest for {C_APEX} (2026-11-30T09:00)" in m for m in skipped)


def test_read_timeout_waits_then_finds_the_post_in_history(env: Env) -> None:
    # Slack takes 1.5 s to answer; the client gives up after 1 s. The post did happen.
    env.fake.fail("chat.postMessage", status=200, delay=1.5, after_effect=True)
    client = delivery_client(WebClient(token="xoxb-test", base_url=env.fake.base_url, timeout=1))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    d = Delivery(env.runtime, client, backoff=0.01, pacer=ChannelPacer(0.0), sleep=sleep)
    out = d.send_link(link_id(env.world.db, C_APEX), "2026-11-30T09:00")
    assert out.state == "sent" and out.detail == "found in history"
    assert waits and waits[0] >= 1.0
    assert len(env.fake.posted(C_APEX)) == 1


def test_counts_come_from_count_not_from_the_rows_read(env: Env) -> None:
    """806 open actions and 620 slipped milestones: the digest says so (it said 500)."""
    from crobot.storage.models import ActionItem, Milestone

    with env.world.db.write() as s:
        for i in range(806):
            s.add(
                ActionItem(
                    study_id=env.world.study_id,
                    title=f"action {i}",
                    owner_user_id="UAPEX",
                    owner_team_id="T1",
                    owner_org_id=env.world.apex_id,
                    due_date=TODAY - timedelta(days=1 + i % 2),
                    created_by="test",
                )
            )
        for i in range(620):
            s.add(
                Milestone(
                    study_id=env.world.study_id,
                    org_id=env.world.apex_id,
                    name=f"milestone {i}",
                    planned_date=TODAY - timedelta(days=3),
                    created_by="test",
                )
            )
    assert env.delivery().send_link(link_id(env.world.db, C_SPONSOR), "p").state == "sent"
    message = posts(env.fake, C_SPONSOR)[0]
    blocks = json.dumps(message["blocks"], ensure_ascii=False)
    assert "Open actions: 806, overdue: 806" in blocks
    shown_actions = len(re.findall(r"action \d+", blocks))  # the lines shown
    more_actions = [int(n) for n in re.findall(r"…and (\d+) more open actions", blocks)]
    assert more_actions and shown_actions + more_actions[0] == 806
    more_ms = [int(n) for n in re.findall(r"…and (\d+) more milestones", blocks)]
    shown_ms = len(re.findall(r"milestone \d+", blocks))
    assert more_ms and shown_ms + more_ms[0] == 620
    assert "806 open action(s), 806 overdue" in str(message["text"])
    assert "620 slipped" in str(message["text"])


def _overdue(env: Env, owner: str, count: int = 1, title: str = "Send the CRFs") -> None:
    with env.world.db.write() as s:
        for i in range(count):
            actions.add(
                s,
                env.world.actor(owner),
                today=TODAY,
                allow_past=True,
                study="ONC-301",
                title=f"{title} {i}" if count > 1 else title,
                owner_user_id=owner,
                due=date(2026, 11, 20),
            )


def test_nudges_skip_the_owners_weekend_and_a_late_catch_up(env: Env) -> None:
    _overdue(env, "UAPEX")  # Priya works in Kolkata
    runner = DigestRunner(env.runtime, env.delivery())
    env.clock.set(datetime(2026, 11, 28, 3, 30, tzinfo=UTC))  # Saturday 09:00 in Kolkata
    assert runner.nudges("Asia/Kolkata") == []
    env.clock.set(datetime(2026, 11, 30, 5, 0, tzinfo=UTC))  # Monday 10:30: missed by 90 min
    assert runner.nudge_catch_up() == []
    env.clock.set(datetime(2026, 11, 30, 3, 50, tzinfo=UTC))  # Monday 09:20: still morning
    assert [o.state for o in runner.nudge_catch_up()] == ["sent"]
    assert len(env.fake.posted("DAPEX")) == 1


def test_an_overdue_dm_is_never_cut_mid_title(env: Env) -> None:
    # Titles at their 300-character limit, all `&`: five times longer once escaped.
    _overdue(env, "UAPEX", count=25, title="&" * 290)
    runner = DigestRunner(env.runtime, env.delivery())
    env.clock.set(datetime(2026, 11, 30, 3, 35, tzinfo=UTC))
    assert [o.state for o in runner.nudges("Asia/Kolkata")] == ["sent"]
    (dm,) = env.fake.posted("DAPEX")
    blocks = dm["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    texts += [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert all(len(t) <= 3000 for t in texts)
    items = [ln for t in texts for ln in t.split("\n") if ln.startswith("• #")]
    assert items and all(ln.endswith("day(s) overdue)") for ln in items)  # whole lines
    more = [int(n) for t in texts for n in re.findall(r"…and (\d+) more", t)]
    assert more and len(items) + more[0] == 25
    hint = [b for b in blocks if b["type"] == "context"][-1]
    assert "Mark one done" in hint["elements"][0]["text"]
    assert blocks[-1]["type"] == "actions"  # Snooze and Done, within Slack's limits
    assert validate_calls(env.fake.calls_to("chat.postMessage")) == 1


def test_an_owner_with_an_unknown_zone_is_looked_up_before_the_first_nudge(
    env: Env,
) -> None:
    from crobot.bot.scheduling import DigestScheduler
    from crobot.storage.models import Person
    from tests.digest_helpers import bot_test_settings

    with env.world.db.write() as s:
        s.execute(update(Person).where(Person.slack_user_id == "ULAB").values(timezone=None))
    _overdue(env, "ULAB")
    env.fake.add_user("ULAB", tz="Asia/Tokyo")
    client = WebClient(token="xoxb-test", base_url=env.fake.base_url)
    sched = DigestScheduler(bot_test_settings(env.world.db), env.runtime, client=client)
    sched.scheduler.start(paused=True)
    try:
        sched.sync_jobs()
        assert "nudge:Asia/Tokyo" not in sched.job_ids()
        assert sched.ask_owner_zones() == 1
        assert "nudge:Asia/Tokyo" in sched.job_ids()
        assert sched.ask_owner_zones() == 0  # known now: Slack is not asked again
    finally:
        sched.shutdown(wait=False)
    assert len(env.fake.calls_to("users.info")) == 1


def test_the_history_search_reads_every_page_since_the_first_attempt(env: Env) -> None:
    """Slack accepted the post but the answer was lost; while crobot waited to retry, the
    channel got busy (450 messages: three pages). The retry finds its post on page three
    instead of posting it again."""
    chatter = WebClient(token="xoxb-test", base_url=env.fake.base_url)

    def busy_channel_while_waiting(seconds: float) -> None:
        for i in range(450):
            chatter.chat_postMessage(channel=C_APEX, text=f"chat {i}")

    env.fake.fail("chat.postMessage", after_effect=True, reset=True)
    out = env.delivery(sleep=busy_channel_while_waiting).send_link(
        link_id(env.world.db, C_APEX), "2026-11-30T09:00"
    )
    assert out.state == "sent" and out.detail == "found in history"
    digests = [m for m in env.fake.posted(C_APEX) if m.get("metadata")]
    assert len(digests) == 1
    assert len(env.fake.calls_to("conversations.history")) == 3


def _crowded_sponsor_digest(env: Env) -> None:
    """Names full of `&` (five characters each once escaped) in every section, as a
    sponsor's busy study has them: before, milestones and actions took all 50 blocks and
    the sponsor lost KPIs and pending approvals to "…N more part(s) not shown"."""
    sponsor, apex = env.world.actor("USPONSOR"), env.world.actor("UAPEX")
    with env.world.db.write() as s:
        for i in range(20):
            name = f"{i:02d}" + "&" * 198
            for planned in (TODAY + timedelta(days=8), TODAY - timedelta(days=3), TODAY):
                ms = milestones.add(
                    s,
                    sponsor,
                    today=TODAY,
                    allow_past=True,
                    study="ONC-301",
                    name=name,
                    planned=planned,
                )
                if planned == TODAY:  # completed and accepted: the third milestone section
                    ms.status, ms.actual_date = MilestoneStatus.APPROVED, TODAY
        for i in range(30):
            actions.add(
                s,
                sponsor,
                today=TODAY,
                study="ONC-301",
                title=f"{i:02d}" + "&" * 298,
                owner_user_id="USPONSOR",
                due=TODAY + timedelta(days=8),
            )
        kpis.report(s, apex, today=TODAY, study="ONC-301", kpi="enrollment", value=41)


def test_every_section_keeps_its_place_and_the_detail_goes_in_the_thread(env: Env) -> None:
    _crowded_sponsor_digest(env)
    d = env.delivery()
    assert d.send_link(link_id(env.world.db, C_SPONSOR), "p").state == "sent"
    parent = [m for m in env.fake.posted(C_SPONSOR) if not m.get("thread_ts")]
    assert len(parent) == 1
    blocks = parent[0]["blocks"]
    assert isinstance(blocks, list)
    top = json.dumps(blocks, ensure_ascii=False)
    for heading in ("Milestones due", "Slipped milestones", "Completed since", "*KPIs*"):
        assert heading in top
    assert "Open actions: 30" in top
    assert "Pending approvals: 1" in top and "not shown" not in top
    # A phone-sized summary: header, context, what changed, and one block per section (and
    # the KPI section's native table; one period, so no chart).
    kinds = ["header", "context", "section", *["section"] * 5, "table", "section"]
    assert [b["type"] for b in blocks] == kinds
    assert "30 action(s) opened, 0 closed" in blocks[2]["text"]["text"]
    assert "…and 15 more milestones in the thread" in top
    replies = [m for m in env.fake.posted(C_SPONSOR) if m.get("thread_ts") == parent[0]["ts"]]
    run = env.run(C_SPONSOR, "p")
    keys = sorted(str(m["metadata"]["event_payload"]["run_key"]) for m in replies)
    parts = ("due", "slipped", "completed", "actions")
    assert keys == sorted(f"thread:{run.id}|{k}" for k in parts)
    for reply in replies:  # the fake refuses what Slack would; these were accepted
        detail = json.dumps(reply["blocks"], ensure_ascii=False)
        assert "&amp;" in detail and "<" not in detail and "&&" not in detail
    due = next(r for r in replies if "Milestones due" in json.dumps(r["blocks"]))
    due_text = "\n".join(b["text"]["text"] for b in due["blocks"])
    assert due_text.count("\n• ") == 15 and "…and 5 more milestones" in due_text
    with env.world.db.read() as s:
        digest = DigestRun.target.like("link:%") | DigestRun.target.like("thread:%")
        states = set(s.scalars(select(DigestRun.state).where(digest)))
    assert states == {DigestRunState.SENT}


def test_a_lost_answer_to_a_thread_reply_does_not_post_it_twice(env: Env) -> None:
    _crowded_sponsor_digest(env)
    # The parent goes through; the first reply reaches Slack but its answer is lost.
    env.fake.fail("chat.postMessage", reset=True, after_effect=True, skip=1)
    assert env.delivery().send_link(link_id(env.world.db, C_SPONSOR), "p").state == "sent"
    replies = [m for m in env.fake.posted(C_SPONSOR) if m.get("thread_ts")]
    keys = [str(m["metadata"]["event_payload"]["run_key"]) for m in replies]
    assert len(keys) == 4 and len(set(keys)) == 4
    assert env.fake.calls_to("conversations.replies")  # looked in the thread, found it
    with env.world.db.read() as s:
        digest = DigestRun.target.like("link:%") | DigestRun.target.like("thread:%")
        states = set(s.scalars(select(DigestRun.state).where(digest)))
    assert states == {DigestRunState.SENT}


@pytest.mark.parametrize("error", ["invalid_blocks", "msg_too_long"])
def test_a_digest_slack_refuses_goes_out_shorter_instead_of_failing(env: Env, error: str) -> None:
    env.fake.fail("chat.postMessage", error=error, count=1)
    out = env.delivery().send_link(link_id(env.world.db, C_APEX), "2026-11-30T09:00")
    assert out.state == "sent"
    posted = env.fake.posted(C_APEX)
    assert len(posted) == 1
    text = json.dumps(posted[0]["blocks"], ensure_ascii=False)
    assert "did not fit" in text and "open action(s)" in text
    assert env.run(C_APEX).state == DigestRunState.SENT
    assert env.fake.posted(C_SPONSOR) == []  # nobody told it failed: it did not


def _off_target_kpis(env: Env) -> None:
    from crobot.services import approvals

    values = {  # per reporter, organisation and KPI: three weeks of approved values
        ("UAPEX", None, "enrollment"): [5, 6, 7],  # target ≥ 20: far off
        # On target; enrolment is a CRO's KPI: the sponsor enters the lab's.
        ("USPONSOR", "CentraLab", "enrollment"): [25, 26, 27],
        ("UAPEX", None, "screen_failure_rate"): [30, 32, 35],  # target ≤ 25: off
        ("UAPEX", None, "query_aging"): [3, 3, 3],
    }
    with env.world.db.write() as s:
        for (user, org, kpi), series in values.items():
            for week, value in zip((45, 46, 47), series, strict=True):
                rep = kpis.report(
                    s,
                    env.world.actor(user),
                    today=TODAY,
                    study="ONC-301",
                    org=org,
                    kpi=kpi,
                    value=value,
                    period=f"2026-W{week}",
                )
                assert rep.approval_id is not None
                approvals.decide(s, env.world.actor("UAPPROVER"), rep.approval_id, approve=True)


def test_the_kpi_section_is_a_table_off_target_first_with_charts_of_the_worst_two(
    env: Env,
) -> None:
    _off_target_kpis(env)
    assert env.delivery().send_link(link_id(env.world.db, C_SPONSOR), "p").state == "sent"
    (msg,) = [m for m in env.fake.posted(C_SPONSOR) if not m.get("thread_ts")]
    blocks = msg["blocks"]
    assert isinstance(blocks, list)
    (tbl,) = [b for b in blocks if b["type"] == "table"]
    rows = [[c["text"] for c in row] for row in tbl["rows"]]
    assert rows[0] == ["KPI", "Organisation", "Latest", "Change", "Target", "Status"]
    statuses = [row[5] for row in rows[1:]]
    assert statuses[:2] == ["OFF TARGET", "OFF TARGET"] and "on target" in statuses
    first = rows[1]
    assert first[:2] == ["Enrolment", "Apex CRO"] and first[3] == "▲ +1 better"  # furthest off
    charts = [b for b in blocks if b["type"] == "data_visualization"]
    assert [c["title"] for c in charts] == ["Enrolment by period", "Screen-failure rate by period"]
    names = [s["name"] for s in charts[0]["chart"]["series"]]
    assert names == ["Apex CRO", "CentraLab", "Target (20)"]
    # The KPI lines stay as a section: clients without tables still read the values.
    sections = [json.dumps(b, ensure_ascii=False) for b in blocks if b["type"] == "section"]
    assert any("Enrolment — Apex CRO: 7" in text for text in sections)
    assert validate_calls(env.fake.calls_to("chat.postMessage")) >= 1


def test_nudges_skip_public_holidays_of_the_owners_country(env: Env) -> None:
    """Three countries, two with daylight saving: the owner's recorded country, else their
    zone's, decides; Thanksgiving spares only the American, Christmas everyone."""
    from crobot.storage.models import Person

    with env.world.db.write() as s:
        lab = s.scalars(select(Person).where(Person.slack_user_id == "ULAB")).one()
        lab.timezone = "Europe/Berlin"  # DE by its zone
    for owner in ("UAPEX", "UAPPROVER", "ULAB"):
        _overdue(env, owner)
    runner = DigestRunner(env.runtime, env.delivery())

    def nudged(at: datetime, zone: str) -> list[str]:
        env.clock.set(at)
        return [o.state for o in runner.nudges(zone)]

    # Thursday 26 Nov 2026, Thanksgiving in the US, 09:00 in each owner's zone.
    assert nudged(datetime(2026, 11, 26, 14, 0, tzinfo=UTC), "America/New_York") == []
    assert nudged(datetime(2026, 11, 26, 3, 30, tzinfo=UTC), "Asia/Kolkata") == ["sent"]
    assert nudged(datetime(2026, 11, 26, 8, 0, tzinfo=UTC), "Europe/Berlin") == ["sent"]
    # Friday 25 Dec 2026: a public holiday in all three countries.
    assert nudged(datetime(2026, 12, 25, 14, 0, tzinfo=UTC), "America/New_York") == []
    assert nudged(datetime(2026, 12, 25, 3, 30, tzinfo=UTC), "Asia/Kolkata") == []
    assert nudged(datetime(2026, 12, 25, 8, 0, tzinfo=UTC), "Europe/Berlin") == []
    # A recorded country wins over the zone's: Berlin-based, working to the US calendar.
    with env.world.db.write() as s:
        lab = s.scalars(select(Person).where(Person.slack_user_id == "ULAB")).one()
        lab.country = "US"
    env.fake.reset()
    assert nudged(datetime(2026, 11, 26, 8, 0, tzinfo=UTC), "Europe/Berlin") == []
    assert nudged(datetime(2026, 11, 27, 8, 0, tzinfo=UTC), "Europe/Berlin") == ["sent"]


def _schedule(env: Env, channel: str, days: str, at: str, zone: str) -> int:
    """`channel`'s digest alone: every other channel's is turned off."""
    with env.world.db.write() as s:
        s.execute(update(ChannelLink).values(digest_enabled=False))
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == channel)).one()
        link.digest_enabled, link.digest_days, link.digest_time = True, days, at
        link.timezone, link.charts_enabled = zone, False
        link.created_at = datetime(2026, 1, 1, tzinfo=UTC)
        return link.id


def test_a_digest_on_a_public_holiday_goes_out_the_next_working_day_once(env: Env) -> None:
    """Three countries, with and without daylight saving: Thanksgiving (US), Christmas on
    a Friday (IN: Monday next), Easter Monday the day after Europe's clocks changed (DE)."""
    cases = [
        # channel, days, zone, holiday fire (UTC), next working day's local 09:00 (UTC)
        (C_SPONSOR, "thu", "America/New_York", (2026, 11, 26, 14, 0), (2026, 11, 27, 14, 0)),
        (C_APEX, "fri", "Asia/Kolkata", (2026, 12, 25, 3, 30), (2026, 12, 28, 3, 30)),
        (C_LAB, "mon", "Europe/Berlin", (2027, 3, 29, 7, 0), (2027, 3, 30, 7, 0)),
    ]
    runner = DigestRunner(env.runtime, env.delivery())
    for channel, days, zone, fire, shifted in cases:
        lid = _schedule(env, channel, days, "09:00", zone)
        env.clock.set(datetime(*fire, tzinfo=UTC))
        assert runner.scheduled(lid) is None, channel  # a day off: not now
        assert runner.shifted() == [] and runner.catch_up() == []
        env.clock.set(datetime(*shifted, tzinfo=UTC) - timedelta(minutes=1))
        assert runner.shifted() == []  # not before its local time
        env.clock.set(datetime(*shifted, tzinfo=UTC) + timedelta(minutes=3))
        assert [o.state for o in runner.shifted()] == ["sent"], channel
        assert [o.state for o in runner.shifted()] == ["duplicate"]  # once
        assert runner.catch_up() == []  # already claimed: nothing more
        posted = [m for m in env.fake.posted(channel) if m.get("metadata")]
        assert len(posted) == 1, channel
        key = posted[0]["metadata"]["event_payload"]["run_key"]
        assert key.endswith(
            datetime(*fire, tzinfo=UTC).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")
        )


def test_a_holiday_before_a_digest_day_and_a_weekend_send_nothing_extra(env: Env) -> None:
    runner = DigestRunner(env.runtime, env.delivery())
    # Easter Monday in Berlin, with a Tuesday digest anyway: Tuesday's covers it.
    lid = _schedule(env, C_LAB, "mon,tue", "09:00", "Europe/Berlin")
    env.clock.set(datetime(2027, 3, 29, 7, 0, tzinfo=UTC))
    assert runner.scheduled(lid) is None
    env.clock.set(datetime(2027, 3, 30, 7, 3, tzinfo=UTC))
    assert runner.shifted() == []
    assert runner.scheduled(lid) is not None  # Tuesday's own digest
    # A daily schedule skips the weekend: Saturday's fire is not sent, then or on Monday.
    lid = _schedule(env, C_APEX, "mon,tue,wed,thu,fri,sat,sun", "09:00", "Asia/Kolkata")
    env.clock.set(datetime(2026, 11, 28, 3, 30, tzinfo=UTC))  # Saturday 09:00 IST
    assert runner.scheduled(lid) is None
    env.clock.set(datetime(2026, 11, 30, 3, 33, tzinfo=UTC))  # Monday 09:03 IST
    assert runner.shifted() == []
    assert len([m for m in env.fake.posted(C_APEX) if m.get("metadata")]) == 0
