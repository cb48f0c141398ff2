"""Helpers for the approval, modal and App Home end-to-end tests: Slack-shaped payloads."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select

from crobot.services import audit, directory, kpis
from crobot.services.actor import SYSTEM
from crobot.services.approval_log import outbox_target
from crobot.services.approvals import for_subject
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import Approval, AuditEvent, DigestRun, DigestRunState, SubjectType
from tests.bot_server import RunningBot, bot_settings, running_bot
from tests.conftest import TODAY, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import (
    interaction_body,
    new_trigger_id,
    post,
    post_signed,
    signed_headers,
)

T = TypeVar("T")
NOW = datetime(2026, 11, 25, 19, 5, tzinfo=UTC)


@contextmanager
def bot_for(db: Database, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    runtime = Runtime(db, now=lambda: NOW)
    with running_bot(bot_settings(db.url, fake_slack.base_url), runtime) as bot:
        yield bot


def wait_until(fn: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def pending_kpi(
    world: World,
    value: float = 12,
    user: str = "UAPEX",
    note: str | None = None,
    kpi: str = "enrollment",
    period: str | None = None,
    org: str | None = None,
) -> int:
    """A vendor (or a sponsor member, for `org`) reports a KPI value through the service;
    returns the approval id."""
    with world.db.write() as s:
        rep = kpis.report(
            s,
            world.actor(user),
            today=TODAY,
            study="ONC-301",
            kpi=kpi,
            value=value,
            note=note,
            period=period,
            org=org,
        )
        approval = for_subject(s, SubjectType.KPI_UPDATE, rep.update.id)
        assert approval is not None
        return approval.id


APPROVER_2 = "UAPPROVER2"


def second_approver(world: World) -> str:
    """Register a second sponsor approver (Otto, in Berlin); returns the user id."""
    with world.db.write() as s:
        directory.add_person(
            s,
            SYSTEM,
            team_id="T1",
            user_id=APPROVER_2,
            display_name="Otto Approver",
            org="Helix Pharma",
            role="sponsor_approver",
            timezone="Europe/Berlin",
        )
    return APPROVER_2


def posted_request(bot: RunningBot, world: World, approval_id: int) -> dict[str, Any]:
    """Ask for the post the way command handlers do; wait until it is stored."""
    bot.runtime.approval_requested(approval_id)

    def stored() -> Approval | None:
        with world.db.read() as s:
            a = s.get_one(Approval, approval_id)
            return a if a.message_ts else None

    approval = wait_until(stored)
    assert approval.channel_id == "CSPONSOR"
    return {"channel": approval.channel_id, "ts": approval.message_ts}


def message(fake_slack: FakeSlack, channel: str, ts: str) -> dict[str, Any]:
    return next(m for m in fake_slack.posted(channel) if m["ts"] == ts)


def block_action(
    action_id: str,
    approval_id: int,
    *,
    user: str,
    msg: dict[str, Any] | None,
    team: str = "T1",
    trigger_id: str | None = None,
    home: bool = False,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": team, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A1",
        "token": "legacy-unused",
        # Slack gives every interaction its own trigger_id: no two genuine requests
        # share a body (and so a signature, which the replay check remembers).
        "trigger_id": trigger_id or new_trigger_id(),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "approval_actions",
                "value": str(approval_id),
                "action_ts": str(time.time()),
            }
        ],
    }
    if home:
        payload["container"] = {"type": "view", "view_id": "VHOME"}
        payload["view"] = {"id": "VHOME", "type": "home", "blocks": []}
    else:
        assert msg is not None
        payload["container"] = {
            "type": "message",
            "message_ts": msg["ts"],
            "channel_id": msg["channel"],
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": msg["channel"], "name": "study"}
        payload["message"] = {
            "type": "message",
            "ts": msg["ts"],
            "text": msg.get("text"),
            "blocks": msg.get("blocks") or [],
        }
        payload["response_url"] = ""
    return payload


def view_submission(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    user: str,
    private_metadata: str = "",
    team: str = "T1",
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": team, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A1",
        "token": "legacy-unused",
        "trigger_id": new_trigger_id(),
        "view": {
            "id": "VMODAL",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
        },
    }


def send(bot: RunningBot, payload: dict[str, Any]) -> tuple[int, str]:
    return post_signed(bot.events_url, interaction_body(payload))


def click(
    bot: RunningBot,
    action_id: str,
    approval_id: int,
    msg: dict[str, Any],
    *,
    user: str = "UAPPROVER",
    trigger_id: str | None = None,
) -> None:
    """Click a button of a request message (each click is its own interaction, with its
    own trigger_id: the same signed request twice is a replay)."""
    payload = block_action(action_id, approval_id, user=user, msg=msg, trigger_id=trigger_id)
    assert send(bot, payload)[0] == 200


def awaiting(bot: RunningBot, world: World, fake_slack: FakeSlack) -> tuple[int, dict[str, Any]]:
    """Apex's KPI value awaiting approval, and (a copy of) its request message as posted."""
    approval_id = pending_kpi(world, 12)
    msg = message(fake_slack, **posted_request(bot, world, approval_id))
    return approval_id, copy.deepcopy(msg)


def reason_values(text: str) -> dict[str, dict[str, Any]]:
    """The reject modal's state with `text` typed as the reason."""
    return {"reason": {"reason_input": {"type": "plain_text_input", "value": text}}}


def open_reject_modal(
    bot: RunningBot,
    fake_slack: FakeSlack,
    approval_id: int,
    msg: dict[str, Any],
    *,
    user: str = "UAPPROVER",
) -> str:
    """Click Reject on `msg`; returns the private_metadata of the modal it opened."""
    opened = len(fake_slack.calls_to("views.open"))
    click = block_action("approval_reject", approval_id, user=user, msg=msg)
    assert send(bot, click)[0] == 200
    call = fake_slack.wait_for("views.open", opened + 1)[-1]
    assert call.params["trigger_id"] == click["trigger_id"]  # the click's, within 3 s
    view = call.params["view"]
    assert view["callback_id"] == "approval_reject_modal"
    return str(view["private_metadata"])


def reject_via_modal(
    bot: RunningBot,
    fake_slack: FakeSlack,
    approval_id: int,
    msg: dict[str, Any],
    reason: str,
    *,
    user: str = "UAPPROVER",
) -> tuple[int, str]:
    """Click Reject, type `reason`, submit: the answer to the submission."""
    meta = open_reject_modal(bot, fake_slack, approval_id, msg, user=user)
    payload = view_submission(
        "approval_reject_modal", reason_values(reason), user=user, private_metadata=meta
    )
    return send(bot, payload)


def outbox_rows(db: Database, approval_id: int) -> list[DigestRun]:
    with db.read() as s:
        stmt = select(DigestRun).where(DigestRun.target == outbox_target(approval_id))
        return list(s.scalars(stmt.order_by(DigestRun.id)))


def outbox_settled(db: Database, approval_id: int) -> bool:
    """Every outbox row of the approval finished (sent, skipped or failed)."""
    rows = outbox_rows(db, approval_id)
    return bool(rows) and all(r.state != DigestRunState.PENDING for r in rows)


def top_level(fake_slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    """Messages posted to `channel` (a DM channel too), thread replies left out."""
    return [m for m in fake_slack.posted(channel) if not m.get("thread_ts")]


def send_event(bot: RunningBot, event: dict[str, Any], team: str = "T1") -> tuple[int, str]:
    body = json.dumps(
        {
            "token": "legacy-unused",
            "team_id": team,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"Ev{time.time_ns()}",
            "event_time": int(time.time()),
            "event": event,
        }
    )
    headers = signed_headers(body)
    headers["Content-Type"] = "application/json"
    return post(bot.events_url, body, headers)


def audit_actions(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def audit_count(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def assert_chain_ok(db: Database) -> None:
    with db.read() as s:
        result = audit.verify(s)
    assert result.ok, result.describe()


def ephemerals(fake_slack: FakeSlack, user: str) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in fake_slack.calls_to("chat.postEphemeral")
        if c.params.get("user") == user
    ]


def race(bot: RunningBot, payloads: list[dict[str, Any]]) -> list[int]:
    """Send the payloads from one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(payloads))
    statuses: list[int] = []

    def click(payload: dict[str, Any]) -> None:
        barrier.wait()
        statuses.append(send(bot, payload)[0])

    threads = [threading.Thread(target=click, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses
