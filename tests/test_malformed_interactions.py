"""Malformed interactions get a clear answer (an error on the form's field, or an
ephemeral message) and write nothing; none of them is an unhandled error.

Reproduces the finding: a reject-reason modal whose `private_metadata` was not JSON (or
not an object, or held an id that is not a number) raised a traceback, and a form whose
metadata was damaged was stored anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests import form_values as form
from tests.approval_support import (
    block_action,
    bot_for,
    ephemerals,
    message,
    pending_kpi,
    posted_request,
    send,
    view_submission,
)
from tests.bot_server import RunningBot
from tests.conftest import APEX_PM, APPROVER, World
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack

GOOD_META = json.dumps({"channel_id": "CAPEX"})
BAD_META = ["not json", "[1]", "5", '"CAPEX"', '{"channel_id": 7}', '{"channel_id": ["C"]}']
BAD_DAY = "2026-13-45"
FORMS: dict[str, tuple[dict[str, Any], str, str]] = {
    # callback: (valid values, the date field, the field a message about no input goes to)
    "modal_milestone_add": (
        {
            "study": form.select("ONC-301"),
            "name": form.text("FPI"),
            "planned": form.day("2026-12-20"),
        },
        "planned",
        "name",
    ),
    "modal_action_add": (
        {
            "study": form.select("ONC-301"),
            "title": form.text("Chase"),
            "owner_user_id": form.user(APEX_PM),
            "due": form.day("2026-12-20"),
        },
        "due",
        "title",
    ),
    "modal_kpi_report": (
        {
            "study": form.select("ONC-301"),
            "kpi": form.select("enrollment"),
            "value": form.text("14"),
            "period": form.day("2026-11-24"),
        },
        "period",
        "value",
    ),
}


@pytest.fixture
def bot(world: World, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    with bot_for(world.db, fake_slack) as running:
        yield running


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    bad = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, bad


def _errors(bot: RunningBot, callback: str, values: Any, meta: str, user: str) -> dict[str, str]:
    status, body = send(bot, view_submission(callback, values, user=user, private_metadata=meta))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["response_action"] == "errors", answer
    errors: dict[str, str] = answer["errors"]
    return errors


@pytest.mark.parametrize("callback", list(FORMS))
def test_forms_refuse_damaged_metadata_and_impossible_dates(
    world: World, bot: RunningBot, no_tracebacks: None, callback: str
) -> None:
    values, day_field, main = FORMS[callback]
    before = snapshot(world.db)
    for meta in BAD_META:
        errors = _errors(bot, callback, values, meta, APEX_PM)
        assert list(errors) == [main] and "open it again" in errors[main], (meta, errors)
    bad_day = {**values, day_field: form.day(BAD_DAY)}
    errors = _errors(bot, callback, bad_day, GOOD_META, APEX_PM)
    assert list(errors) == [day_field] and "date" in errors[day_field].lower(), errors
    assert_unchanged(world.db, before)
    # The same form with its own metadata is stored.
    status, body = send(
        bot, view_submission(callback, values, user=APEX_PM, private_metadata=GOOD_META)
    )
    assert (status, body) == (200, "")


def _reason(text: str = "wrong site") -> dict[str, Any]:
    return {"reason": {"reason_input": {"type": "plain_text_input", "value": text}}}


def test_the_reject_modal_refuses_damaged_metadata(
    world: World, bot: RunningBot, no_tracebacks: None
) -> None:
    aid = pending_kpi(world, 12)
    before = snapshot(world.db)
    metas = [
        "not json",
        "[]",
        "7",
        "{}",
        json.dumps({"approval_id": "x"}),
        json.dumps({"approval_id": 1.5}),
        json.dumps({"approval_id": [aid]}),
        json.dumps({"approval_id": True}),
        json.dumps({"approval_id": -aid}),
        json.dumps({"approval_id": aid, "channel_id": 5}),
        json.dumps({"approval_id": aid, "message_ts": {"a": 1}}),
        json.dumps({"approval_id": aid, "from_home": "yes"}),
    ]
    for meta in metas:
        errors = _errors(bot, "approval_reject_modal", _reason(), meta, APPROVER)
        assert list(errors) == ["reason"] and "open it again" in errors["reason"], (meta, errors)
    # No reason block at all, or no state: the same form, told on its one field.
    for values in ({}, {"reason": "x"}, {"reason": {"reason_input": "x"}}):
        errors = _errors(
            bot, "approval_reject_modal", values, json.dumps({"approval_id": aid}), APPROVER
        )
        assert list(errors) == ["reason"], errors
    assert_unchanged(world.db, before)


def test_damaged_buttons_are_answered_ephemerally(
    world: World, bot: RunningBot, fake_slack: FakeSlack, no_tracebacks: None
) -> None:
    aid = pending_kpi(world, 12)
    request = message(fake_slack, **posted_request(bot, world, aid))
    before = snapshot(world.db)
    payloads = []
    unroutable = []
    for action in ("approval_approve", "approval_reject"):
        click = block_action(action, aid, user=APPROVER, msg=request)
        for acts in ([], "x", ["x"], [{"value": "1"}]):  # no button named at all
            unroutable.append({**click, "actions": acts, "trigger_id": f"{action}-{acts}"})
        unroutable.append({**click, "view": None})  # a view that is not an object
        for value in ("abc", None, ["1"], "0", "#-1", "1" * 12):
            payloads.append({**click, "actions": [{**click["actions"][0], "value": value}]})
    no_trigger = block_action("approval_reject", aid, user=APPROVER, msg=request)
    del no_trigger["trigger_id"]
    payloads.append(no_trigger)
    for payload in unroutable + payloads:
        status, body = send(bot, payload)
        assert status == 200 and body == "", body
    fake_slack.wait_for("chat.postEphemeral", len(payloads))
    said = ephemerals(fake_slack, APPROVER)
    assert len(said) == len(payloads)
    assert all("button" in t for t in said), said
    assert fake_slack.calls_to("views.open") == []

    home = block_action("home_action_done", 1, user=APEX_PM, msg=None, home=True)
    home["actions"][0]["value"] = "abc"
    assert send(bot, home)[0] == 200
    view = fake_slack.wait_for("views.publish")[-1].params["view"]
    assert "button" in json.dumps(view["blocks"][1])
    assert_unchanged(world.db, before)
