"""`/cro milestone add`, `/cro action add` and `/cro kpi report` with no arguments open a
form (views.open with the command's trigger id) instead of answering with an error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import form_values as form
from tests.approval_support import send, view_submission
from tests.conftest import APEX_PM, C_APEX, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post_signed
from tests.slash_helpers import settle, slash_bot, snapshot


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
        settle(slash.bot)  # the lazy listener has finished: nothing more will be sent
    assert calls[0].params["trigger_id"] == "4242.trigger"
    view = calls[0].params["view"]
    assert view["type"] == "modal" and callback_words in view["callback_id"]
    sent = [c.method for c in fake_slack.state.calls if c.method != "auth.test"]  # Bolt's own
    assert sent == ["views.open"]  # and no response_url reply
    assert snapshot(world.db) == before  # opening a form stores nothing


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        # Two inputs wrong at once: each message next to its own input.
        ({"study": form.select("ONC-301")}, {"name": "required", "planned": "required"}),
        # The service names the field of a lookup that failed.
        (
            {
                "study": form.select("NOPE-1"),
                "name": form.text("FPI"),
                "planned": form.day("2026-12-20"),
            },
            {"study": "no study"},
        ),
        (
            {
                "study": form.select("ONC-301"),
                "name": form.text("FPI"),
                "planned": form.day("2026-12-20"),
                "org": form.select("Nowhere Ltd"),
            },
            {"org": "no organisation"},
        ),
        # A date the datepicker cannot have sent is still reported on its input.
        (
            {
                "study": form.select("ONC-301"),
                "name": form.text("FPI"),
                "planned": form.day("someday"),
            },
            {"planned": "date"},
        ),
    ],
)
def test_form_errors_land_on_the_field_the_service_names(
    world: World, fake_slack: FakeSlack, values: dict[str, Any], errors: dict[str, str]
) -> None:
    before = snapshot(world.db)
    meta = json.dumps({"channel_id": C_APEX})
    with slash_bot(world.db, fake_slack) as slash:
        payload = view_submission(
            "modal_milestone_add", values, user=APEX_PM, private_metadata=meta
        )
        status, body = send(slash.bot, payload)  # answered: the final state of the submission
        settle(slash.bot)
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    assert set(answer["errors"]) == set(errors)
    for field, words in errors.items():
        assert words in answer["errors"][field].lower(), answer
    assert snapshot(world.db) == before
    assert fake_slack.calls_to("chat.postEphemeral") == []
