"""Hostile text through every `/cro` write and read path and the forms: nothing a person
typed reaches Slack as markup, and every payload fits Slack's limits.

Recorded: each slash command's ack body and `response_url` message, the forms' views,
their inline errors and confirmation ephemerals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from crobot.services import directory
from crobot.services.actor import SYSTEM
from tests import form_values as form
from tests.approval_support import send, view_submission, wait_until
from tests.conftest import APEX_PM, C_APEX, C_SPONSOR, SPONSOR, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post_signed
from tests.slash_helpers import SlashClient, slash_bot

# As a person types it; Slack sends `<`, `>` and `&` of typed text HTML-escaped, but a
# mention picked from Slack's menu arrives as a real `<@U…>`.
RAW = "<!channel> <!here> <@U123> <https://evil.example|x> *b* _i_ ~s~ \u202egnp.exe"
FORGED_LINE = "\n:white_check_mark: *Approved by Dana*"
CONTROL = ("<!channel>", "<!here>", "<@U123>", "<https://evil.example", "\u202e")
EMPHASIS = ("*b*", "_i_", "~s~", "*Approved by Dana*")
LONG = "<!channel>*x*" * 310  # 4,030 characters


def typed(text: str) -> str:
    """What Slack puts in a slash command's `text` for what the user typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoted(text: str) -> str:
    return f'"{text}"'


def _strings(node: Any, mrkdwn: bool = False) -> Iterator[tuple[str, bool]]:
    """Every string of a payload, and whether Slack reads it as mrkdwn."""
    if isinstance(node, dict):
        is_md = node.get("type") == "mrkdwn"
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value, is_md or node.get("type") is None  # a message's `text`
            elif key not in ("type", "action_id", "block_id", "callback_id", "value"):
                yield from _strings(value, mrkdwn)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, mrkdwn)
    elif isinstance(node, str):
        yield node, mrkdwn


def assert_clean(payload: dict[str, Any]) -> None:
    for text, is_md in _strings(payload):
        for seq in CONTROL:
            assert seq not in text, (seq, text[:200])
        if is_md:
            for seq in EMPHASIS:
                assert seq not in text, (seq, text[:200])
            assert "\n:white_check_mark:" not in text, text[:200]
    for block in payload.get("blocks") or []:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()  # raises over Slack's limits (3,000 characters a section)
    assert len(payload.get("blocks") or []) <= 50


@pytest.fixture
def hostile_world(world: World) -> World:
    with world.db.write() as s:
        directory.add_org(s, SYSTEM, name=f"{RAW[:100]} Labs", kind="lab")
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor=f"{RAW[:100]} Labs")
    return world


def _slash(slash: SlashClient, text: str, user: str = APEX_PM, channel: str = C_APEX) -> str:
    answer = slash.send(text, user, channel)
    assert answer.status == 200
    assert_clean(answer.payload)
    return answer.text


def test_hostile_text_through_commands(hostile_world: World, fake_slack: FakeSlack) -> None:
    name = RAW + FORGED_LINE
    with slash_bot(hostile_world.db, fake_slack) as slash:
        added = _slash(slash, f"milestone add {typed(quoted(name))} planned:fri")
        assert "Approved by Dana" in added  # stored and shown, as text
        _slash(slash, "milestone update 1 status:at_risk")
        _slash(slash, "milestone list")
        _slash(slash, f"action add {typed(quoted(RAW))} <@UAPEX|p> due:fri")
        _slash(slash, "action list")
        _slash(slash, "action list", channel="D0APEX")  # across studies
        _slash(slash, f"kpi report enrollment 5 note:{typed(quoted(name))}")
        _slash(slash, "kpi show enrollment", SPONSOR, C_SPONSOR)
        _slash(slash, "kpi trend enrollment", SPONSOR, C_SPONSOR)
        _slash(slash, "status", SPONSOR, C_SPONSOR)
        _slash(slash, "milestone list", SPONSOR, C_SPONSOR)  # the hostile org's name
        # Words echoed back in error messages.
        for text in (
            typed(RAW),
            typed(LONG),
            f"milestone update {typed(RAW)}",
            f"milestone update 1 status:{typed('<!here>*b*')}",
            f"kpi report enrollment {typed('<!here>*b*')}",
            f"kpi report {typed('<!here>_i_')} 5",
            f"status {typed('<!channel>')}",
            f"milestone add {typed(quoted(LONG[:3900]))} planned:fri",
            f"action add x <@UAPEX|p> due:{typed('<!here>')}",
            f"help {typed('<!channel>')}",
            f"digest {typed('<!channel>')}",
            f"digest schedule {typed(quoted('<!channel> 09:00'))} tz:{typed('<!here>')}",
            f"digest schedule {typed(quoted('Mon 09:00'))} tz:{typed('<!here>')}",
        ):
            _slash(slash, text)
    responses = [c for c in fake_slack.state.calls if c.method.startswith("/respond/")]
    assert responses
    for call in responses:
        assert_clean(call.params)


def test_hostile_text_through_forms(hostile_world: World, fake_slack: FakeSlack) -> None:
    meta = json.dumps({"channel_id": C_APEX})
    with slash_bot(hostile_world.db, fake_slack) as slash:
        bot = slash.bot
        # The sponsor's form offers every organisation of the study, the hostile one too.
        opened = command_body("milestone add", user_id=SPONSOR, channel_id=C_SPONSOR)
        assert post_signed(bot.events_url, opened) == (200, "")  # the form opens after
        view = fake_slack.wait_for("views.open")[0].params["view"]
        View(**view).validate_json()
        assert_clean(view)
        assert "Labs" in json.dumps(view, ensure_ascii=False)
        good = {
            "study": form.select("ONC-301"),
            "name": form.text(RAW),
            "planned": form.day("2026-12-20"),
        }
        report = {
            "study": form.select("ONC-301"),
            "kpi": form.select("enrollment"),
            "value": form.text("4"),
            "note": form.text(RAW + FORGED_LINE),
        }
        for callback, values in (("modal_milestone_add", good), ("modal_kpi_report", report)):
            status, body = send(
                bot, view_submission(callback, values, user=APEX_PM, private_metadata=meta)
            )
            assert (status, body) == (200, "")
        wait_until(lambda: len(fake_slack.calls_to("chat.postEphemeral")) == 2)
        for call in fake_slack.calls_to("chat.postEphemeral"):
            assert_clean(call.params)
        # Rejected input comes back inline, as plain text Slack shows under the input.
        for values in (
            {**good, "name": form.text(LONG)},
            {**good, "planned": form.day(typed(RAW))},
            {**good, "org": form.select(RAW)},
            {**good, "study": form.select(RAW)},
        ):
            status, body = send(
                bot,
                view_submission("modal_milestone_add", values, user=APEX_PM, private_metadata=meta),
            )
            answer = json.loads(body)
            assert status == 200 and answer["response_action"] == "errors", body
            for text in answer["errors"].values():
                assert len(text) <= 150
                for seq in CONTROL:
                    assert seq not in text
