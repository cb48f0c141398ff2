"""The digest fan-out (issue 18): thread replies queued by channel pace, rendered with their
parent, and the process pool — each digest and each reply exactly once, on every backend."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from slack_sdk import WebClient
from sqlalchemy import select

from crobot.bot.scheduling import DigestBatch, DigestScheduler
from crobot.digests.compose import compose
from crobot.digests.delivery import ChannelPacer, Delivery, Outcome, delivery_client
from crobot.digests.pool import DigestPool, WorkerSpec, split_by_study
from crobot.digests.render import render, render_detail
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState
from tests.conftest import C_APEX, C_JOINT, C_LAB, C_SPONSOR, World
from tests.digest_helpers import Clock, bot_test_settings, link_id, seed
from tests.fake_slack import FakeSlack

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CHANNELS = (C_SPONSOR, C_APEX, C_LAB, C_JOINT)


class RecordingPacer(ChannelPacer):
    """A pacer that records every post that had to sleep for its channel's pace."""

    def __init__(self, interval: float) -> None:
        super().__init__(interval)
        self.slept: list[str] = []

    def wait(self, channel: str) -> None:
        if self.ready_at(channel) > time.monotonic():
            self.slept.append(channel)
        super().wait(channel)


def _items(world: World, period: str) -> list[tuple[int, str]]:
    return [(link_id(world.db, c), period) for c in CHANNELS]


def _delivery(world: World, fake: FakeSlack, pacer: ChannelPacer) -> Delivery:
    client = delivery_client(WebClient(token="xoxb-test", base_url=fake.base_url))
    return Delivery(Runtime(world.db, now=lambda: NOW), client, backoff=0.01, pacer=pacer)


def _assert_each_once(world: World, fake: FakeSlack, period: str) -> dict[str, list[str]]:
    """Every channel: one digest of `period`, its replies in its thread, each reply's run
    key once and in the order its rows were written (the digest's section order); every
    row sent. Returns each channel's reply parts."""
    parts: dict[str, list[str]] = {}
    with world.db.read() as s:
        runs = {
            r.target: r for r in s.scalars(select(DigestRun).where(DigestRun.period_key == period))
        }
        for channel in CHANNELS:
            run = runs[f"link:{link_id(world.db, channel)}"]
            assert run.state == DigestRunState.SENT
            replies = list(
                s.scalars(
                    select(DigestRun)
                    .where(DigestRun.target == f"thread:{run.id}")
                    .order_by(DigestRun.id)
                )
            )
            assert {r.state for r in replies} <= {DigestRunState.SENT}
            posted = fake.posted(channel)
            tops = [m for m in posted if m["metadata"]["event_payload"]["run_key"].endswith(period)]
            assert len(tops) == 1
            in_thread = [m for m in posted if m.get("thread_ts") == tops[0]["ts"]]
            keys = [m["metadata"]["event_payload"]["run_key"] for m in in_thread]
            assert keys == [f"thread:{run.id}|{r.period_key}" for r in replies]
            parts[channel] = [r.period_key for r in replies]
    return parts


def _text(fake: FakeSlack, channel: str) -> str:
    return json.dumps(fake.posted(channel), ensure_ascii=False)


def test_replies_wait_in_the_queue_not_in_a_thread_and_each_goes_out_once(
    world: World, fake_slack: FakeSlack
) -> None:
    seed(world, 12)  # more than fits at the top of every section: replies in each channel
    pacer = RecordingPacer(0.2)
    delivery = _delivery(world, fake_slack, pacer)
    outcomes = delivery.send_links(_items(world, "p1"), workers=2)
    assert [o.state for o in outcomes] == ["sent"] * len(CHANNELS)
    parts = _assert_each_once(world, fake_slack, "p1")
    assert all(parts[c] for c in (C_SPONSOR, C_APEX, C_LAB)), parts  # threads to pace
    # A reply is taken from the queue only once its channel's pace allows: no thread slept.
    assert pacer.slept == []
    assert delivery.details == {}  # the rendered replies are not kept once posted
    # A vendor channel's digest and thread carry no other vendor's rows.
    assert "LABDATA" not in _text(fake_slack, C_APEX)
    assert "APEXDATA" not in _text(fake_slack, C_LAB)
    # Again: every digest and reply is already claimed, nothing more is posted.
    before = len(fake_slack.posted())
    again = delivery.send_links(_items(world, "p1"), workers=2)
    assert {o.state for o in again} == {"duplicate"}
    assert len(fake_slack.posted()) == before


def test_a_reply_rendered_with_its_parent_is_the_reply_composed_after_a_restart(
    world: World, fake_slack: FakeSlack
) -> None:
    seed(world, 12)
    delivery = _delivery(world, fake_slack, ChannelPacer(0.0))
    assert delivery.send_link(link_id(world.db, C_SPONSOR), "p").state == "sent"
    with world.db.read() as s:
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == C_SPONSOR)).one()
        parent = s.scalars(select(DigestRun).where(DigestRun.target == f"link:{link.id}")).one()
        view = compose(s, link, parent.created_at)  # what a restarted process composes
    replies = [m for m in fake_slack.posted(C_SPONSOR) if m.get("thread_ts")]
    assert replies
    for reply in replies:
        part = reply["metadata"]["event_payload"]["run_key"].rsplit("|", 1)[1]
        again = render_detail(view, part)
        assert again is not None
        assert reply["blocks"] == again.blocks and reply["text"] == again.text
    # And render() carries the same replies as render_detail, from one set of sections.
    out = render(view)
    for part, detail in out.details.items():
        alone = render_detail(view, part)
        assert alone is not None and alone.blocks == detail.blocks


def test_worker_processes_deliver_each_digest_once_even_racing_another_pool(
    world: World, fake_slack: FakeSlack
) -> None:
    seed(world, 12)
    spec = WorkerSpec(world.db.url, fake_slack.base_url, "xoxb-test", pace_seconds=0.0, now=NOW)
    first, second = DigestPool(spec, 2).start(), DigestPool(spec, 2).start()
    try:
        results: dict[str, list[Outcome]] = {}

        def deliver(name: str, pool: DigestPool) -> None:
            results[name] = pool.deliver(world.db, _items(world, "race"))

        racers = [
            threading.Thread(target=deliver, args=(name, pool))
            for name, pool in (("first", first), ("second", second))
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        # Per channel: one pool sent it, the other found it claimed.
        for a, b in zip(results["first"], results["second"], strict=True):
            assert sorted([a.state, b.state]) == ["duplicate", "sent"]
        _assert_each_once(world, fake_slack, "race")
        assert "LABDATA" not in _text(fake_slack, C_APEX)
    finally:
        first.shutdown()
        second.shutdown()


def test_shares_keep_a_study_together_unless_it_is_more_than_a_fair_share(world: World) -> None:
    items = _items(world, "p")
    assert split_by_study(world.db, items, 1) == [items]
    halves = split_by_study(world.db, items, 2)  # one study of four channels: cut in two
    assert sorted(len(h) for h in halves) == [2, 2]
    assert sorted(i for h in halves for i in h) == sorted(items)


def test_digest_jobs_firing_together_are_delivered_as_one_batch() -> None:
    calls: list[list[tuple[int, str]]] = []
    followed = threading.Event()

    def deliver(items: list[tuple[int, str]]) -> list[Outcome]:
        calls.append(items)
        return [Outcome(i, "sent") for i, _ in items]

    batch = DigestBatch(deliver, lambda outcomes: followed.set(), window=0.05)
    for link in (1, 2, 3):
        batch.add(link, "p")
    assert followed.wait(10)
    assert calls == [[(1, "p"), (2, "p"), (3, "p")]]


def test_the_scheduler_uses_worker_processes_only_where_they_can_rebuild_its_runtime(
    world: World,
) -> None:
    settings = bot_test_settings(world.db).model_copy(update={"digest_processes": 2})
    client = WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/")
    real = DigestScheduler(settings, Runtime(world.db), client)
    assert real.pool is not None and real.pool.processes == 2
    # A test's clock, or several workspaces' tokens: a spawned worker has neither.
    clocked = DigestScheduler(settings, Runtime(world.db, now=Clock(NOW)), client)
    assert clocked.pool is None
    tokens = DigestScheduler(settings, Runtime(world.db, bot_token=lambda team: "x"), client)
    assert tokens.pool is None
    one = settings.model_copy(update={"digest_processes": 1})
    assert DigestScheduler(one, Runtime(world.db), client).pool is None
