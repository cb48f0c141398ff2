"""Text people type reaches Slack inert on the approvals surface and the App Home.

A vendor's KPI note, milestone name and action title, and an approver's reject reason,
carry mentions, a disguised link, emphasis, bidi controls and a forged "Approved" line;
so does an approver's display name, which the submitter's notices print.
Every payload crobot sends (request post, reject modal, decision update, the submitter's
DM and vendor-channel notices, ephemeral replies, Home views) is checked as the fake Slack
recorded it: nothing from the user text can ping, link, format or stand outside its
quote, and every block is valid.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from crobot.services import actions, approvals, directory, milestones
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import SubjectType
from tests.approval_support import (
    block_action,
    bot_for,
    message,
    outbox_settled,
    pending_kpi,
    posted_request,
    send,
    send_event,
    top_level,
    view_submission,
    wait_until,
)
from tests.conftest import TODAY, World
from tests.fake_slack import FakeSlack

FORGED = ":white_check_mark: *Approved by @Dana*"
EVIL = (
    "<!channel> see <https://evil.example|the SOP> <!here> <@UEVIL> *b* _i_ ~s~ `c`"
    f"\n{FORGED}\r\n\u2028{FORGED}\u202e reversed"
)
RAW = ["<!channel>", "<!here>", "<https://", "<@UEVIL>", "*Approved", "*b*", "_i_", "\u202e"]
# The forged line at the start of a line, raw or escaped (`_` → `ˍ`, `*` → `∗`).
FORGED_LINE = re.compile(r"\s*:white[_\u02cd]check[_\u02cd]mark:\s*[*\u2217]Approved by @Dana")
SENT = ["chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish"]


def _mrkdwn_texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            yield value["text"]
        for v in value.values():
            yield from _mrkdwn_texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _mrkdwn_texts(v)


def assert_inert(fake: FakeSlack) -> int:
    """Every recorded payload: no raw control sequence, no forged line, valid blocks."""
    checked = 0
    for method in SENT:
        for call in fake.calls_to(method):
            params = call.params
            dumped = json.dumps(params, ensure_ascii=False)
            for raw in RAW:
                assert raw not in dumped, f"{method} carries raw {raw!r}: {dumped[:400]}"
            for text in _mrkdwn_texts(params):
                for ln in text.split("\n"):
                    # User text may say it inside a line (a name, even after crobot's
                    # own ":white_check_mark: Approved by") or quoted (a note); it must
                    # never begin a line of its own.
                    forged = FORGED_LINE.match(ln) is not None
                    assert not forged, f"{method}: forged line outside a quote: {ln!r}"
            if "blocks" in params:  # the fallback text: one line, so it cannot forge one
                assert "\n" not in str(params.get("text", ""))
            for b in params.get("blocks") or []:
                parsed = Block.parse(b)
                assert parsed is not None
                parsed.validate_json()
            view = params.get("view")
            if isinstance(view, dict):
                View(**view).validate_json()
            checked += 1
    return checked


def _milestone_done(world: World, name: str) -> int:
    with world.db.write() as s:
        ms = milestones.add(
            s,
            world.actor("UAPEX"),
            today=TODAY - timedelta(days=30),
            study="ONC-301",
            name=name,
            planned=TODAY - timedelta(days=2),
        )
        milestones.update(s, world.actor("UAPEX"), today=TODAY, id=ms.id, status="done")
        approval = approvals.for_subject(s, SubjectType.MILESTONE, ms.id)
        assert approval is not None
        return approval.id


def _reason(text: str) -> dict[str, dict[str, object]]:
    return {"reason": {"reason_input": {"type": "plain_text_input", "value": text}}}


def test_user_text_is_inert_in_every_approval_payload(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with world.db.write() as s:
        actions.add(
            s,
            world.actor("UAPEX"),
            today=TODAY,
            study="ONC-301",
            title=EVIL[:200],
            owner_user_id="UAPEX",
            due=TODAY + timedelta(days=3),
        )
    # At their length limits, and growing fivefold when escaped (`<` is `&lt;`).
    kpi_aid = pending_kpi(world, 12, note=(EVIL + "<" * 500)[:500])
    ms_aid = _milestone_done(world, EVIL[:200])
    with world.db.write() as s:
        directory.add_person(
            s,
            SYSTEM,
            team_id="T1",
            user_id="UEVILAPP",
            display_name=EVIL[:120],
            org="Helix Pharma",
            role="sponsor_approver",
        )
    with bot_for(db, fake_slack) as bot:
        kpi_loc = posted_request(bot, world, kpi_aid)
        ms_loc = posted_request(bot, world, ms_aid)
        # The Home tabs list both (approver) and the evil action title (vendor).
        for user in ("UAPPROVER", "UAPEX"):
            send_event(bot, {"type": "app_home_opened", "user": user, "tab": "home"})
        fake_slack.wait_for("views.publish", 2)

        # Reject the KPI value with an evil reason, through the modal.
        kpi_msg = copy.deepcopy(message(fake_slack, **kpi_loc))
        reject = block_action("approval_reject", kpi_aid, user="UAPPROVER", msg=kpi_msg)
        assert send(bot, reject)[0] == 200
        meta = fake_slack.wait_for("views.open")[-1].params["view"]["private_metadata"]
        payload = view_submission(
            "approval_reject_modal",
            _reason((EVIL + "<" * 1000)[:1000]),
            user="UAPPROVER",
            private_metadata=meta,
        )
        assert send(bot, payload)[0] == 200
        # Approve the milestone, then click its stale copy again (ephemeral reply).
        ms_msg = copy.deepcopy(message(fake_slack, **ms_loc))
        approve = block_action("approval_approve", ms_aid, user="UEVILAPP", msg=ms_msg)
        assert send(bot, approve)[0] == 200
        fake_slack.wait_for("chat.update", 2)
        again = block_action(
            "approval_approve", ms_aid, user="UEVILAPP", msg=ms_msg, trigger_id="trig-2"
        )
        assert send(bot, again)[0] == 200
        fake_slack.wait_for("chat.postEphemeral")
        wait_until(lambda: outbox_settled(db, kpi_aid) and outbox_settled(db, ms_aid))
        # Both decisions told the submitter by DM and in Apex's channel.
        assert len(top_level(fake_slack, "DAPEX")) == len(top_level(fake_slack, "CAPEX")) == 2
        # A Home click on a decided approval: the refreshed Home says who decided.
        home = block_action("approval_approve", kpi_aid, user="UAPPROVER", msg=None, home=True)
        assert send(bot, home)[0] == 200
        fake_slack.wait_for("views.publish", 3)

    rejected = message(fake_slack, **kpi_loc)
    text = "\n".join(_mrkdwn_texts(rejected["blocks"]))
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|the SOP&gt;" in text
    # Quoted and inert: no emoji, no bold, on a line of its own inside the quote.
    assert "\n> :white\u02cdcheck\u02cdmark: \u2217Approved by @Dana\u2217\n" in text
    # The decider's display name, printed in the submitter's notices, is escaped too.
    ms_dm = next(m for m in top_level(fake_slack, "DAPEX") if "approved" in str(m["text"]))
    assert "Approved by &lt;!channel&gt; see &lt;https://" in "\n".join(_mrkdwn_texts(ms_dm))
    assert assert_inert(fake_slack) >= 10
