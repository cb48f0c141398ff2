"""`handlers/errors.py`, the one fallback: whatever a listener or a middleware raises gets a
polite ephemeral answer — "temporarily unavailable" when it was the database — and a form
submitted while the database is down says so on the form."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

import pytest
from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.exc import OperationalError

from crobot.handlers import errors, middleware
from crobot.services.errors import UserError, msg
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from tests import form_values as form
from tests.approval_support import send, view_submission
from tests.bot_server import bot_settings, free_port, running_bot
from tests.conftest import APEX_PM, C_APEX
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET

OUTAGE = OperationalError("SELECT 1", {}, Exception("connection refused"))


def _request() -> BoltRequest:
    body = urlencode({"command": "/x", "text": "", "team_id": "T1", "user_id": "U1"})
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    headers: dict[str, str | Sequence[str]] = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig or "",
    }
    return BoltRequest(body=body, headers=headers)


def _app(fake_slack: FakeSlack, db: Database, failure: Exception, where: str) -> App:
    app = App(
        signing_secret=SIGNING_SECRET,
        client=WebClient(token="xoxb-test-token", base_url=fake_slack.base_url),
        token_verification_enabled=False,
        process_before_response=True,
    )
    middleware.install(app, Runtime(db))
    errors.register(app)

    def broken_middleware(next: Callable[[], BoltResponse]) -> BoltResponse:
        if where == "middleware":
            raise failure
        return next()

    def listener(ack: Ack) -> None:
        raise failure

    app.middleware(broken_middleware)
    app.command("/x")(listener)
    return app


@pytest.mark.parametrize("where", ["listener", "middleware"])
@pytest.mark.parametrize(
    ("failure", "answer"),
    [
        (OUTAGE, "temporarily unavailable"),
        (UserError(msg("`{}` is not an id.", "<!channel>")), "`&lt;!channel&gt;` is not an id"),
        (RuntimeError("bug"), "something went wrong"),
    ],
)
def test_fallback_answers_politely(
    sqlite_db: Database, fake_slack: FakeSlack, where: str, failure: Exception, answer: str
) -> None:
    response = _app(fake_slack, sqlite_db, failure, where).dispatch(_request())
    assert response.status == 200
    body = json.loads(response.body)
    assert body["response_type"] == "ephemeral" and answer in body["text"], body
    assert "<!channel>" not in body["text"]


def test_a_form_submitted_while_the_database_is_down(fake_slack: FakeSlack) -> None:
    dead = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/crobot")
    values = {
        "study": form.select("ONC-301"),
        "name": form.text("FPI"),
        "planned": form.day("2026-12-20"),
    }
    meta = json.dumps({"channel_id": C_APEX})
    with running_bot(bot_settings(dead.url, fake_slack.base_url), Runtime(dead)) as bot:
        payload = view_submission(
            "modal_milestone_add", values, user=APEX_PM, private_metadata=meta
        )
        status, body = send(bot, payload)
    dead.dispose()
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    assert "temporarily unavailable" in answer["errors"]["name"]
