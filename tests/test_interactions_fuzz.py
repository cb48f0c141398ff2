"""Fuzzed interaction payloads (button clicks, modal submissions, garbage) through the
real signed HTTP stack: never a server error nor an unhandled exception; a form is either
stored or answered with errors on its fields, a click is acknowledged; a rejected
submission writes nothing.

The normal run tries 150 payloads; `pytest -m heavy` tries 10,000.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from crobot.handlers.approvals.messages import APPROVE, REJECT, REJECT_MODAL
from crobot.handlers.forms import CALLBACKS, VALUE
from crobot.handlers.home.view import DONE
from crobot.services.runtime import Runtime
from crobot.storage.models import AuditHead
from tests.bot_server import bot_settings, running_bot
from tests.conftest import APEX_PM, APPROVER, C_APEX, C_SPONSOR, SPONSOR, World
from tests.fake_slack import FakeSlack
from tests.slack_requests import interaction_body, post_signed
from tests.slash_helpers import settle

USERS = [APPROVER, SPONSOR, APEX_PM, "UFUZZ", ""]
TEAMS = ["T1", "T9", ""]  # T9: the same user ids in a workspace crobot does not know
ACTION_IDS = [APPROVE, REJECT, DONE, "nonsense", ""]
CALLBACK_IDS = [REJECT_MODAL, *CALLBACKS.values(), "unknown_modal"]
FIELDS = [
    "study",
    "name",
    "planned",
    "org",
    "title",
    "owner_user_id",
    "due",
    "priority",
    "kpi",
    "value",
    "period",
    "note",
    "reason",
]

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "#1",
            "1.5",
            "ONC-301",
            "2026-13-40",
            "2026-13-45",
            "2026-02-30",
            "<!channel>",
            "999999999999999999999",
            "{}",
            "[]",
            "null",
        ]
    ),
)
junk = st.one_of(
    scalar, st.lists(scalar, max_size=2), st.dictionaries(st.text(max_size=5), scalar, max_size=2)
)
element = st.fixed_dictionaries(
    {},
    optional={
        "value": junk,
        "selected_date": junk,
        "selected_user": junk,
        "selected_option": st.one_of(st.none(), st.fixed_dictionaries({"value": junk})),
        "type": st.sampled_from(["plain_text_input", "datepicker", "users_select"]),
    },
)
state_values = st.dictionaries(
    st.sampled_from(FIELDS + ["x"]),
    st.dictionaries(st.sampled_from([VALUE, "other"]), element, max_size=2),
    max_size=8,
)
user = st.fixed_dictionaries({"id": st.sampled_from(USERS), "team_id": st.sampled_from(TEAMS)})
button = st.fixed_dictionaries(
    {
        "action_id": st.sampled_from(ACTION_IDS),
        "block_id": st.text(max_size=8),
        "value": junk,
        "type": st.just("button"),
        "action_ts": st.just("1700000002.1"),
    }
)

block_actions = st.fixed_dictionaries(
    {
        "type": st.just("block_actions"),
        "user": user,
        "team": st.just({"id": "T1"}),
        "trigger_id": st.just("13345224609.738474920.8088930838d88f008e0"),
        "channel": st.fixed_dictionaries({"id": st.sampled_from([C_SPONSOR, C_APEX, "CNOPE"])}),
        "container": st.just({"type": "message", "message_ts": "1700000001.000100"}),
        "message": st.just({"ts": "1700000001.000100", "blocks": []}),
        "actions": st.one_of(st.lists(st.one_of(button, junk), max_size=2), junk),
        "view": st.one_of(st.none(), st.just({"type": "home", "id": "V1"})),
    }
)
view_submission = st.fixed_dictionaries(
    {
        "type": st.just("view_submission"),
        "user": user,
        "team": st.just({"id": "T1"}),
        "view": st.fixed_dictionaries(
            {
                "id": st.just("V123"),
                "type": st.just("modal"),
                "callback_id": st.sampled_from(CALLBACK_IDS),
                "private_metadata": st.one_of(
                    st.just(""),
                    st.text(max_size=20),
                    st.builds(json.dumps, junk),
                    st.builds(
                        json.dumps,
                        st.dictionaries(
                            st.sampled_from(
                                ["approval_id", "channel_id", "message_ts", "from_home"]
                            ),
                            junk,
                        ),
                    ),
                    junk,
                ),
                "state": st.one_of(st.fixed_dictionaries({"values": state_values}), junk),
            }
        ),
    }
)
garbage = st.dictionaries(st.text(max_size=10), junk, max_size=5)
payloads = st.one_of(block_actions, view_submission, garbage)


def _audit_head(world: World) -> tuple[int, str]:
    with world.db.read() as s:
        head = s.scalars(select(AuditHead)).one()
        return head.seq, head.hash


class _Unhandled(logging.Handler):
    """Records every error logged anywhere in the process (Bolt's and crobot's)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def _unhandled() -> Iterator[_Unhandled]:
    handler = _Unhandled()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


def _run(world: World, fake: FakeSlack, examples: int) -> None:
    runtime = Runtime(world.db)
    settings_ = bot_settings(world.db.url, fake.base_url)
    with _unhandled() as errors, running_bot(settings_, runtime) as bot:

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
            ],
        )
        @given(payloads)
        def prop(payload: dict[str, Any]) -> None:
            errors.seen.clear()  # so that a failure names the payload that caused it
            before = _audit_head(world)
            status, raw = post_signed(bot.events_url, interaction_body(payload))
            assert status < 500, raw
            answer = json.loads(raw) if raw.strip().startswith("{") else {}
            if answer.get("response_action") == "errors" or status != 200:
                assert _audit_head(world) == before  # rejected: nothing written
            if status == 200 and payload.get("type") == "view_submission":
                # Stored (an empty ack) or refused on the form's own fields; never an
                # ephemeral "something went wrong", which Slack cannot show on a form.
                assert raw == "" or answer.get("response_action") == "errors", raw
            elif status == 200 and payload.get("type") == "block_actions":
                assert raw == "", raw  # a click is acknowledged; its answer is ephemeral
            assert not errors.seen, errors.seen
            # Every service write extends the audit chain, so the head names any write.
            # No pending approvals or open actions exist, so no click may write either.
            if payload.get("type") != "view_submission":
                assert _audit_head(world) == before

        prop()
        settle(bot)  # lazy listeners (ephemeral answers, Home) have finished too
    assert not errors.seen, errors.seen


def test_fuzzed_interactions_never_error_nor_write_when_rejected(
    world: World, fake_slack: FakeSlack
) -> None:
    _run(world, fake_slack, 150)


@pytest.mark.heavy
def test_fuzzed_interactions_heavy(world: World, fake_slack: FakeSlack) -> None:
    _run(world, fake_slack, 10_000)
