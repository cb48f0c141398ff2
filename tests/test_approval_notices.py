"""The submitter hears the decision: by DM, and in their organisation's own vendor channel.

The request lives in the sponsor channel, where a vendor is not a member; the decision
therefore reaches the submitter directly (a DM, in their own time zone) and the vendor's
channel of that study (in the channel's zone), with the decider's printed name, the time
and, for a rejection, the reason. Never a joint channel, never another vendor's channel.
Delivered through the outbox: exactly once, even when Slack's answer is lost.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import update

from crobot.handlers.approvals.outbox import ApprovalOutbox
from crobot.services import approvals, directory, kpis
from crobot.services.actor import SYSTEM
from crobot.services.approvals import for_subject
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import Approval, DigestRunState, SubjectType
from tests.approval_support import (
    NOW,
    assert_chain_ok,
    audit_actions,
    awaiting,
    bot_for,
    click,
    message,
    outbox_rows,
    outbox_settled,
    pending_kpi,
    posted_request,
    reject_via_modal,
    top_level,
    wait_until,
)
from tests.conftest import C_APEX, C_JOINT, C_LAB, C_SPONSOR, TODAY, World
from tests.fake_slack import FakeSlack

DECIDER = "Ann Approver (Helix Pharma)"
ALL_CHANNELS = (C_SPONSOR, C_APEX, C_LAB, C_JOINT)


def _text(msg: dict[str, Any]) -> str:
    return json.dumps(msg.get("blocks"), ensure_ascii=False) + "\n" + str(msg.get("text"))


def _notified(db: Database) -> list[tuple[str, str]]:
    return sorted(
        (str((e.after or {}).get("via")), str((e.after or {}).get("channel")))
        for e in audit_actions(db, "approval.notify")
    )


def _approve(bot: Any, fake_slack: FakeSlack, world: World, aid: int) -> dict[str, str]:
    loc = posted_request(bot, world, aid)
    click(bot, "approval_approve", aid, message(fake_slack, **loc))
    wait_until(lambda: outbox_settled(world.db, aid))
    return loc


def _link(world: World, channel: str, audience: str) -> None:
    with world.db.write() as s:
        directory.link_channel(
            s,
            SYSTEM,
            team_id="T1",
            channel_id=channel,
            study="ONC-301",
            audience=audience,
            timezone="UTC",
        )


def test_submitter_hears_an_approval_by_dm_and_in_their_vendor_channel(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        loc = _approve(bot, fake_slack, world, aid)
    assert [c.params.get("users") for c in fake_slack.calls_to("conversations.open")] == ["UAPEX"]
    [dm] = top_level(fake_slack, "DAPEX")
    assert "approved" in str(dm["text"]) and "ONC-301" in str(dm["text"])
    # The submitter's own zone (Kolkata), the decider's printed name, what was decided.
    assert re.search(
        rf"Approved by {re.escape(DECIDER)} at \d\d:\d\d IST on \d+ \w{{3}} 20\d\d", _text(dm)
    )
    assert "→ *12*" in _text(dm)
    [posted] = top_level(fake_slack, C_APEX)
    assert "<@UAPEX>" in _text(posted) and f"Approved by {DECIDER}" in _text(posted)
    # Nobody else is told: not the other vendor, not the joint channel, and the sponsor
    # channel has the request (rewritten in place) and no thread reply.
    assert fake_slack.posted(C_LAB) == [] and fake_slack.posted(C_JOINT) == []
    assert [m["ts"] for m in fake_slack.posted(C_SPONSOR)] == [loc["ts"]]
    assert _notified(db) == [("dm", "DAPEX"), ("vendor channel", C_APEX)]
    [event] = [e for e in audit_actions(db, "approval.notify") if (e.after or {})["via"] == "dm"]
    assert (event.after or {})["user"] == "T1:UAPEX"
    assert_chain_ok(db)


def test_rejection_reason_reaches_the_submitter(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid, msg = awaiting(bot, world, fake_slack)
        reason = "Does not match EDC export\nsee row 4"
        assert reject_via_modal(bot, fake_slack, aid, msg, reason)[0] == 200
        wait_until(lambda: outbox_settled(db, aid) and _notified(db))
    for channel in ("DAPEX", C_APEX):
        [posted] = top_level(fake_slack, channel)
        text = _text(posted)
        assert "rejected" in str(posted["text"])
        assert re.search(rf"Rejected by {re.escape(DECIDER)} at \d\d:\d\d IST", text)
        assert "> Does not match EDC export\\n> see row 4" in text
    assert _notified(db) == [("dm", "DAPEX"), ("vendor channel", C_APEX)]
    assert_chain_ok(db)


def test_only_the_first_vendor_channel_of_the_submitting_organisation(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    _link(world, "CAPEX2", "vendor:Apex CRO")  # a second Apex channel, linked later
    _link(world, "CJAPEX", "joint:Apex CRO")  # the sponsor and Apex: approved data only
    with bot_for(db, fake_slack) as bot:
        aid = pending_kpi(world, 12)
        _approve(bot, fake_slack, world, aid)
    assert len(top_level(fake_slack, C_APEX)) == 1
    for channel in ("CAPEX2", "CJAPEX", C_JOINT, C_LAB):
        assert fake_slack.posted(channel) == [], channel
    assert _notified(db) == [("dm", "DAPEX"), ("vendor channel", C_APEX)]


def test_value_entered_for_a_vendor_tells_the_person_and_that_vendors_channel(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    """Submitted by a sponsor member on CentraLab's behalf: the DM goes to that member
    (in New York time), the channel notice to CentraLab's channel (Dublin time)."""
    with db.write() as s:
        rep = kpis.report(
            s, world.actor("ULAB"), today=TODAY, study="ONC-301", kpi="query_aging", value=9
        )
        approval = for_subject(s, SubjectType.KPI_UPDATE, rep.update.id)
        assert approval is not None
        aid = approval.id
        s.execute(update(Approval).where(Approval.id == aid).values(requested_by="T1:USPONSOR"))
    with bot_for(db, fake_slack) as bot:
        _approve(bot, fake_slack, world, aid)
    [dm] = top_level(fake_slack, "DSPONSOR")
    assert re.search(rf"Approved by {re.escape(DECIDER)} at \d\d:\d\d EST", _text(dm))
    [posted] = top_level(fake_slack, C_LAB)
    assert re.search(rf"Approved by {re.escape(DECIDER)} at \d\d:\d\d GMT", _text(posted))
    assert "<@USPONSOR>" in _text(posted)
    assert fake_slack.posted(C_APEX) == [] and fake_slack.posted(C_JOINT) == []
    assert _notified(db) == [("dm", "DSPONSOR"), ("vendor channel", C_LAB)]


def test_channel_relinked_before_delivery_is_not_told(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    """The audience is checked when the notice is sent: Apex's channel became a joint
    channel after the decision, so it no longer may see a rejected value."""
    aid = pending_kpi(world, 12)
    with db.write() as s:
        approvals.decide(s, world.actor("UAPPROVER"), aid, approve=False, reason="Wrong week")
    _link(world, C_APEX, "joint")
    outbox = ApprovalOutbox(
        Runtime(db, now=lambda: NOW), WebClient(token="xoxb-test", base_url=fake_slack.base_url)
    )
    outbox.deliver(aid)
    assert fake_slack.posted(C_APEX) == []
    assert len(top_level(fake_slack, "DAPEX")) == 1
    states = {r.period_key: r.state for r in outbox_rows(db, aid)}
    assert states[f"vendor:{C_APEX}"] == DigestRunState.SKIPPED
    assert states["dm:T1:UAPEX"] == DigestRunState.SENT
    assert _notified(db) == [("dm", "DAPEX")]
    assert_chain_ok(db)


def test_dm_whose_answer_was_lost_is_found_not_posted_again(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        aid, msg = awaiting(bot, world, fake_slack)
        # The DM (the first post after the decision) reaches Slack; its answer is lost.
        fake_slack.fail("chat.postMessage", after_effect=True, reset=True)
        click(bot, "approval_approve", aid, msg)
        wait_until(lambda: outbox_settled(db, aid))
    [dm] = top_level(fake_slack, "DAPEX")
    [history] = fake_slack.calls_to("conversations.history")
    assert history.params["channel"] == "DAPEX"
    row = next(r for r in outbox_rows(db, aid) if r.period_key.startswith("dm:"))
    assert (row.state, row.attempts, row.slack_ts) == (DigestRunState.SENT, 2, dm["ts"])
    assert _notified(db) == [("dm", "DAPEX"), ("vendor channel", C_APEX)]
    assert_chain_ok(db)
