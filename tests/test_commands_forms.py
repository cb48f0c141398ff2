"""`/cro milestone add`, `/cro action add` and `/cro kpi report` with no arguments open a
form (views.open with the command's trigger id) instead of answering with an error."""

from __future__ import annotations

import time

import pytest

from tests.conftest import APEX_PM, C_APEX, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post_signed
from tests.slash_helpers import slash_bot, snapshot


@pytest.mark.parametrize(
    ("text", "callback_words"),
    [("milestone add", "milestone"), ("action add", "action"), ("kpi report", "kpi")],
)
def test_bare_add_commands_open_a_form(
    world: World, fake_slack: FakeSlack, text: str, callback_words: str
) -> None:
    before = snapshot(world.db)
    with slash_bot(world.db, fake_slack) as slash:
        body = command_body(
            text,
            user_id=APEX_PM,
            channel_id=C_APEX,
            response_url=slash.respond_root + "respond/forms",
            trigger_id="4242.trigger",
        )
        status, raw = post_signed(slash.bot.events_url, body)
        assert status == 200 and raw.strip() == ""  # acked at once, form opened after
        calls = fake_slack.wait_for("views.open", timeout=10)
        time.sleep(0.2)  # give a (wrong) response_url reply the chance to show up
    assert calls[0].params["trigger_id"] == "4242.trigger"
    view = calls[0].params["view"]
    assert view["type"] == "modal" and callback_words in view["callback_id"]
    assert not [c for c in fake_slack.state.calls if c.method.endswith("respond/forms")]
    assert snapshot(world.db) == before  # opening a form stores nothing
