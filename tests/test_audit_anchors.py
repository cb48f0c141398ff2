"""Anchors: the chain's head posted to each study's sponsor channel once a day, read back
from Slack by `crobot audit verify --anchors`, which a rewritten chain fails — even one
rewritten with the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update

from crobot.bot.cli import main
from crobot.bot.scheduling import DigestScheduler
from crobot.digests.delivery import Delivery, delivery_client
from crobot.services import audit, audit_keys, milestones
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import AuditAnchor, AuditEvent, AuditHead, DigestRun
from tests.conftest import C_SPONSOR, SPONSOR, TODAY, World
from tests.dbstate import owner_session
from tests.digest_helpers import bot_test_settings
from tests.fake_slack import FakeSlack
from tests.slack_payloads import message_problems


@pytest.fixture
def slack_cli(
    cli_env: Database, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Database:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("CROBOT_SLACK_API_URL", fake_slack.base_url)
    return cli_env


def _anchors(db: Database) -> list[AuditAnchor]:
    with db.read() as s:
        return list(s.scalars(select(AuditAnchor).order_by(AuditAnchor.id)))


def _add_milestone(world: World, name: str) -> None:
    with world.db.write() as s:
        milestones.add(
            s, world.actor(SPONSOR), today=TODAY, study="ONC-301", name=name, planned=TODAY
        )


def test_anchor_posts_the_head_once_a_day_and_stores_where(
    world: World,
    slack_cli: Database,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", "anchor"]) == 0
    assert main(["audit", "anchor"]) == 0  # the same day: the claim stops a second post
    (posted,) = fake_slack.posted(C_SPONSOR)
    with world.db.read() as s:
        head = s.execute(select(AuditHead.seq, AuditHead.hash)).one()
    assert f"event #{head.seq}" in posted["text"] and head.hash in posted["text"]
    assert posted["metadata"]["event_type"] == "crobot_audit_anchor"
    assert posted["metadata"]["event_payload"]["seq"] == head.seq
    assert message_problems({"text": posted["text"], "blocks": posted["blocks"]}) == []
    (anchor,) = _anchors(world.db)
    assert (anchor.seq, anchor.hash, anchor.channel_id, anchor.slack_ts) == (
        head.seq,
        head.hash,
        C_SPONSOR,
        posted["ts"],
    )
    # Only the sponsor's own channel: never a vendor's or the joint channel.
    assert [m["channel"] for m in fake_slack.posted()] == [C_SPONSOR]


def test_verify_anchors_passes_and_fails_on_a_chain_rewritten_with_the_key(
    world: World,
    slack_cli: Database,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", "anchor"]) == 0
    _add_milestone(world, "After the anchor")
    capsys.readouterr()
    assert main(["audit", "verify", "--anchors"]) == 0
    assert "anchors: 1 read back, all match the chain" in capsys.readouterr().out

    # Someone holding the key (and the database) rewrites an event before the anchor and
    # recomputes every HMAC and the head: the chain alone verifies...
    with world.db.read() as s:
        key = audit_keys.keyring(s, create=False).current_key
    with owner_session(world.db) as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        prev = audit.GENESIS
        for ev in events:
            if ev.seq == 5:
                ev.actor = "T1:UFORGER"
            ev.prev_hash = prev
            ev.hash = prev = audit.keyed_hash(ev, key)
        s.flush()
        s.execute(update(AuditHead).values(hash=prev))
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    # ...but not against what Slack kept.
    assert main(["audit", "verify", "--anchors"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "no longer has that HMAC" in out


def test_an_anchor_gone_from_slack_fails_verify(
    world: World,
    slack_cli: Database,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["audit", "anchor"]) == 0
    with fake_slack.state.lock:
        fake_slack.state.messages[C_SPONSOR].clear()
    capsys.readouterr()
    assert main(["audit", "verify", "--anchors"]) == 1
    assert "no message there in Slack" in capsys.readouterr().out


def test_the_scheduler_anchors_each_day_once(world: World, fake_slack: FakeSlack) -> None:
    now = [datetime(2026, 11, 25, 12, tzinfo=UTC)]
    runtime = Runtime(world.db, now=lambda: now[0])
    client = WebClient(token="xoxb-test-token", base_url=fake_slack.base_url)
    sched = DigestScheduler(bot_test_settings(world.db, fake_slack.base_url), runtime, client)
    sched.anchor()
    sched.anchor()
    assert len(fake_slack.posted(C_SPONSOR)) == 1
    _add_milestone(world, "Next day")
    now[0] += timedelta(days=1)
    sched.anchor()
    anchors = _anchors(world.db)
    assert [a.day.isoformat() for a in anchors] == ["2026-11-25", "2026-11-26"]
    assert anchors[1].seq == anchors[0].seq + 1
    with world.db.read() as s:
        runs = s.scalars(select(DigestRun.target).where(DigestRun.target.like("anchor:%"))).all()
    assert runs == [f"anchor:{world.study_id}"] * 2


def test_an_anchor_whose_answer_was_lost_is_found_in_history_not_posted_twice(
    world: World, fake_slack: FakeSlack
) -> None:
    runtime = Runtime(world.db)
    client = WebClient(token="xoxb-test-token", base_url=fake_slack.base_url)
    delivery = Delivery(runtime, delivery_client(client), backoff=0, sleep=lambda _: None)
    fake_slack.fail("chat.postMessage", after_effect=True)  # posted, but the answer fails
    (outcome,) = delivery.send_anchors("2026-11-25")
    assert outcome.state == "sent" and outcome.detail == "found in history"
    (posted,) = fake_slack.posted(C_SPONSOR)
    (anchor,) = _anchors(world.db)
    assert anchor.slack_ts == posted["ts"]
    assert anchor.seq == posted["metadata"]["event_payload"]["seq"]
    assert anchor.hash == posted["metadata"]["event_payload"]["hash"]
