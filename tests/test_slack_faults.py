"""Slack misbehaving at a set rate — 429 with Retry-After, 500s, dropped connections —
while digests fan out and `/cro` replies go back through response_url: everything is still
delivered, nothing twice, and every 429 is followed by a pause of at least Retry-After."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select

from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.services.runtime import Runtime
from crobot.storage.models import ActionItem, ChannelLink, DigestRun, DigestRunState
from tests.bot_server import RunningBot
from tests.conftest import APPROVER, C_SPONSOR, World
from tests.fake_slack import Call, FakeSlack
from tests.slash_helpers import slash_bot

RATE = 0.3


def _retry_after_respected(calls: list[Call], statuses: list[int]) -> None:
    """Each call answered 429 is followed by the next call of that kind >= 1 s later."""
    for i, (call, status) in enumerate(zip(calls, statuses, strict=True)):
        if status == 429 and i + 1 < len(calls):
            assert calls[i + 1].at - call.at >= 0.95, (call.method, calls[i + 1].at - call.at)


def test_digest_fanout_survives_random_slack_faults(world: World, fake_slack: FakeSlack) -> None:
    with world.db.write() as s:
        for i in range(26):
            s.add(
                ChannelLink(
                    team_id="T1",
                    channel_id=f"CF{i:03d}",
                    study_id=world.study_id,
                    audience=("sponsor", "vendor", "joint")[i % 3],
                    audience_org_id=world.apex_id if i % 3 == 1 else None,
                    timezone="Asia/Kolkata",
                    charts_enabled=False,
                )
            )
    with world.db.read() as s:
        ids = list(s.scalars(select(ChannelLink.id)))
    fake_slack.chaos("chat.postMessage", RATE, seed=7)
    fake_slack.chaos("conversations.history", RATE, seed=7)
    client = delivery_client(WebClient(token="xoxb-test", base_url=fake_slack.base_url))
    delivery = Delivery(
        Runtime(world.db), client, lease=timedelta(0), backoff=0.05, pacer=ChannelPacer(0.0)
    )
    outcomes = delivery.send_links([(i, "2026-W48") for i in ids], workers=4)
    rounds = 0
    while any(o.state == "pending" for o in outcomes) and rounds < 10:
        rounds += 1  # what the scheduler's retry jobs do: resume once Retry-After has passed
        _sleep_until(min(o.retry_at or datetime.now(UTC) for o in outcomes if o.state == "pending"))
        outcomes = delivery.resume_pending()

    per_channel = Counter(m["channel"] for m in fake_slack.posted())
    with world.db.read() as s:
        runs = s.scalars(select(DigestRun)).all()
    assert len(runs) == len(ids) == 30
    assert {r.state for r in runs} == {DigestRunState.SENT}  # 0 lost
    assert len(per_channel) == 30 and set(per_channel.values()) == {1}  # 0 duplicated
    assert all(r.slack_ts for r in runs)
    injected = fake_slack.state.injected
    assert injected["429"] >= 1 and injected["500"] >= 1 and injected["reset"] >= 1, injected
    by_channel: dict[str, list[Call]] = {}
    for c in fake_slack.calls_to("chat.postMessage"):
        by_channel.setdefault(str(c.params.get("channel")), []).append(c)
    for tries in by_channel.values():
        _retry_after_respected(tries, [c.status or 0 for c in tries])


def _sleep_until(at: datetime) -> None:
    time.sleep(min(5.0, max(0.0, (at - datetime.now(UTC)).total_seconds())))


def _replies_finished(bot: RunningBot, timeout: float = 60.0) -> None:
    """Wait until every reply sender has stopped: Bolt started each command's lazy listener
    on its listener executor before answering the request, so once the executor drains,
    no further response_url call can come."""
    executor = bot.app.listener_runner.listener_executor
    drain = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    drain.start()
    drain.join(timeout)
    assert not drain.is_alive(), f"reply senders still busy after {timeout} s"


def _reply_calls(fake: FakeSlack) -> list[Call]:
    with fake.state.lock:
        return [c for c in fake.state.calls if c.method.startswith("/respond/")]


def test_slash_replies_survive_random_slack_faults(world: World, fake_slack: FakeSlack) -> None:
    with slash_bot(world.db, fake_slack) as slash:
        fake_slack.chaos("/respond/", RATE, seed=11)
        for i in range(20):
            answer = slash.send(
                f'action add ONC-301 "Chase site {i}" <@UAPEX|priya> due:2026-12-{i + 1:02d}',
                APPROVER,
                C_SPONSOR,
            )
            assert answer.deferred and f"Chase site {i}" in answer.text
        _replies_finished(slash.bot)  # the final state: nothing is left to send
        calls = _reply_calls(fake_slack)
    ok = Counter(c.method for c in calls if c.status == 200)
    assert len(ok) == 20 and set(ok.values()) == {1}  # every reply delivered, none twice
    injected = fake_slack.state.injected
    assert sum(injected.values()) >= 3 and len(calls) == 20 + sum(injected.values())
    by_path: dict[str, list[Call]] = {}
    for c in calls:
        by_path.setdefault(c.method, []).append(c)
    for tries in by_path.values():
        _retry_after_respected(tries, [c.status or 0 for c in tries])
    with world.db.read() as s:
        assert len(s.scalars(select(ActionItem)).all()) == 20  # each command stored once


# Web API families crobot could call, as WebClient spells them (`client.chat_postMessage`).
_CALL = re.compile(
    r"\bclient\.((?:auth|bots|chat|conversations|files|pins|reactions|team|users|views)_\w+)"
)
# WebClient helpers that are several Web API calls.
_COMPOSITE = {"files.upload.v2": {"files.getUploadURLExternal", "files.completeUploadExternal"}}


def _methods_called_by_crobot() -> set[str]:
    root = Path(__file__).resolve().parent.parent
    found: set[str] = set()
    for folder in ("bot", "handlers", "services", "digests"):
        for path in (root / folder).rglob("*.py"):
            for attr in _CALL.findall(path.read_text()):
                method = attr.replace("_", ".", 1)
                found |= _COMPOSITE.get(method.replace("_", "."), {method})
    return found


def test_fake_slack_answers_every_method_crobot_calls_and_no_other(
    fake_slack: FakeSlack,
) -> None:
    called = _methods_called_by_crobot()
    assert {"chat.postMessage", "views.publish", "conversations.replies"} <= called
    assert called <= fake_slack.methods, called - fake_slack.methods
    client = WebClient(token="xoxb-test", base_url=fake_slack.base_url)
    with pytest.raises(SlackApiError) as refused:
        client.api_call("chat.getPermalink", params={"channel": "C1", "message_ts": "1.2"})
    assert refused.value.response["error"] == "unknown_method"
    assert client.api_call("auth.test")["ok"] is True
