"""Random command strings through the router: never an exception, never a write on rejection."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient

from crobot.handlers.commands.router import CommandRequest, CommandRouter
from crobot.services.runtime import Runtime
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_APEX,
    C_JOINT,
    C_LAB,
    C_SPONSOR,
    LAB_PM,
    SPONSOR,
    STRANGER,
    TODAY,
    World,
)
from tests.slash_helpers import snapshot

VOCAB = [
    "help",
    "status",
    "milestone",
    "milestones",
    "action",
    "kpi",
    "digest",
    "add",
    "update",
    "list",
    "done",
    "report",
    "show",
    "trend",
    "ONC-301",
    "onc-301",
    "NOPE-9",
    '"First patient"',
    '"',
    "\u201cquoted\u201d",
    "planned:2026-12-01",
    "planned:fri",
    "planned:yesterday",
    "forecast:+2w",
    "status:at_risk",
    "status:bogus",
    "actual:today",
    "due:tomorrow",
    "due:next",
    "fri",
    "priority:high",
    "priority:x",
    "org:CentraLab",
    "org:Apex CRO",
    'org:"Apex CRO"',
    "note:hi",
    "period:2026-W47",
    "period:2026-W99",
    "last:8w",
    "enrollment",
    "sfr",
    "velocity",
    "12",
    "-3",
    "130",
    "2.5",
    "1e999",
    "#1",
    "1",
    "2",
    "999999999999",
    "<@UAPEX|priya>",
    "<@ULAB>",
    "<#C1|x>",
    "@someone",
    "mine",
    "--open",
    "--late",
    "--overdue",
    "--all",
    "--shared",
    "\u2014late",
    "--",
    "&lt;!channel&gt;",
    '"&lt;!here&gt; *b*"',
    "<@U123>",
    "k:v:w",
    ":",
]
USERS = [APEX_PM, LAB_PM, SPONSOR, APPROVER, STRANGER]
CHANNELS = [C_APEX, C_LAB, C_SPONSOR, C_JOINT, "CNOLINK"]

word = st.one_of(st.sampled_from(VOCAB), st.text(max_size=12))
noise = st.lists(word, max_size=9).map(" ".join)


def _opt(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


study = _opt(st.sampled_from(["ONC-301", "onc-301", "NOPE-9"]))
name = st.one_of(st.sampled_from(['"Kick-off"', '"Site 12 ready"', "Solo"]), st.text(max_size=8))
day = st.sampled_from(["fri", "next mon", "+2w", "today", "2026-12-01", "2025-01-01", "soon"])
ident = st.one_of(st.integers(min_value=-1, max_value=12).map(str), st.just("#2"))
value = st.one_of(st.sampled_from(["3", "-1", "150", "2.5", "x"]), st.floats().map(str))
# Grammar-shaped commands (so that accepted writes are exercised too) mixed with noise.
shaped = st.one_of(
    st.tuples(
        st.just("milestone add"),
        study,
        name,
        day.map("planned:{}".format),
        _opt(st.sampled_from(["org:CentraLab", 'org:"Apex CRO"', "--shared"])),
    ),
    st.tuples(
        st.just("milestone update"),
        ident,
        st.sampled_from(
            [
                "done",
                "status:at_risk",
                "forecast:+1w",
                "done actual:today",
                "status:cancelled",
                "actual:fri",
                "",
            ]
        ),
    ),
    st.tuples(
        st.just("action add"),
        study,
        name,
        st.sampled_from(["<@UAPEX|p>", "<@ULAB|l>", "<@USPONSOR>", ""]),
        day.map("due:{}".format),
        _opt(st.just("priority:high")),
    ),
    st.tuples(st.just("action done"), ident),
    st.tuples(
        st.just("kpi report"),
        study,
        st.sampled_from(["enrollment", "sfr", "query_aging", "nope"]),
        value,
        _opt(st.sampled_from(["period:2026-W47", "period:2026-W50", 'note:"ok"'])),
    ),
    st.tuples(
        st.sampled_from(["status", "milestone list", "action list", "kpi show", "kpi trend"]),
        study,
        _opt(st.just("enrollment")),
    ),
).map(lambda parts: " ".join(p for p in parts if p))
command = st.one_of(noise, shaped)


def _router(world: World) -> CommandRouter:
    now = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
    return CommandRouter(Runtime(world.db, now=lambda: now))


def _check(router: CommandRouter, world: World, text: str, user: str, channel: str) -> None:
    before = snapshot(world.db, light=True)
    reply = router.run(
        CommandRequest("T1", user, channel, text),
        WebClient(base_url="http://127.0.0.1:9/api/"),  # never reached: the zone is given
        tz="UTC",
    )
    assert reply.text and isinstance(reply.blocks, list)
    assert "Traceback" not in reply.text and "something went wrong" not in reply.text, text
    assert len(reply.blocks) <= 50
    sent = json.dumps(reply.payload(), ensure_ascii=False)
    assert "<!channel>" not in sent and "<!here>" not in sent, text  # typed, never live
    if reply.is_error:
        assert not reply.in_channel
        assert snapshot(world.db, light=True) == before, text


def _run(world: World, examples: int) -> None:
    router = _router(world)

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(command, st.sampled_from(USERS), st.sampled_from(CHANNELS))
    def prop(text: str, user: str, channel: str) -> None:
        _check(router, world, text, user, channel)

    prop()


def test_random_commands_never_crash_nor_write_on_rejection(world: World) -> None:
    _run(world, 300)


@pytest.mark.heavy
def test_random_commands_heavy(world: World) -> None:
    _run(world, 10_000)
