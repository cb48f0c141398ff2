"""The ack -> lazy hand-off (`handlers.handoff`) on a real Bolt app, in process.

With `process_before_response=True` the ack function has returned before Bolt copies the
request for the lazy listener, so what it left in the context is there, shared, at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from crobot.handlers.handoff import hand_over, take_over
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET


class Plan:
    """Not copyable (holds a lock), like a real plan holding a WebClient."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def _request(text: str) -> BoltRequest:
    body = urlencode({"command": "/x", "text": text, "team_id": "T1", "user_id": "U1"})
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    headers: dict[str, str | Sequence[str]] = {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [ts],
        "x-slack-signature": [sig or ""],
    }
    return BoltRequest(body=body, headers=headers)


def test_the_lazy_listener_gets_what_the_ack_function_left(fake_slack: FakeSlack) -> None:
    left: list[Plan] = []
    got: list[tuple[str, Plan | None]] = []
    done = threading.Event()
    app = App(
        signing_secret=SIGNING_SECRET,
        client=WebClient(token="xoxb-test-token", base_url=fake_slack.base_url),
        token_verification_enabled=False,
        process_before_response=True,
    )

    def ack_fn(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        if body["text"] == "later":
            plan = Plan()
            left.append(plan)
            hand_over(context, "plan", plan)
            ack()
        else:
            ack(text="answered")

    def lazy_fn(body: dict[str, Any], context: BoltContext) -> None:
        got.append((body["text"], take_over(context, "plan", Plan)))
        done.set()

    app.command("/x")(ack=ack_fn, lazy=[lazy_fn])
    for text in ("now", "later"):
        done.clear()
        response = app.dispatch(_request(text))
        assert response.status == 200
        assert done.wait(5)
    assert got == [("now", None), ("later", left[0])]
    assert got[1][1] is left[0]  # shared, not a copy
