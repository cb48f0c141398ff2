"""`/cro scorecard` end to end (signed HTTP, the bot, the database): the sponsor's staff
see every vendor's scorecard, a vendor only its own — asking for another one is refused
in words that tell nothing about it — and a channel never shows more than its audience
may see. One native table per message, a text fallback, valid Block Kit, escaped names."""

from __future__ import annotations

import json
from typing import Any

from crobot.services import directory
from crobot.services.actor import SYSTEM
from tests.conftest import APEX_PM, APPROVER, C_APEX, C_JOINT, C_SPONSOR, LAB_PM, World
from tests.slack_payloads import (
    BIDI,
    EMPHASIS,
    MENTIONS_AND_LINKS,
    message_problems,
    raw_problems,
)
from tests.slash_helpers import SlashClient, snapshot
from tests.test_scorecards import _record


def _tables(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in payload.get("blocks") or [] if b.get("type") == "table"]


def _cells(payload: dict[str, Any]) -> list[list[str]]:
    (table,) = _tables(payload)
    return [[c["text"] for c in row] for row in table["rows"]]


def test_the_sponsor_sees_every_vendor_in_one_table(slash: SlashClient, world: World) -> None:
    _record(world)
    a = slash.send("scorecard", APPROVER, C_SPONSOR)
    assert a.status == 200 and not a.deferred and not a.in_channel
    assert message_problems(a.payload) == []
    rows = _cells(a.payload)  # Slack takes one table a message: every vendor in it
    assert rows[0] == ["Vendor", "Measure", "Value", "Target", "Status", "vs 2026-Q3"]
    apex = {r[1]: r for r in rows[1:] if r[0] == "Apex CRO"}
    lab = {r[1]: r for r in rows[1:] if r[0] == "CentraLab"}
    # Hand-checked in tests/test_scorecards.py: Apex 1 of 3 milestones on time.
    assert apex["Milestones on time · computed"][2:5] == [
        "33.3 %",
        "≥ 90 % (default)",
        "OFF TARGET",
    ]
    assert apex["Enrolment · reported"][2:5] == [
        "14 patients",
        "≥ 20 patients (default)",
        "OFF TARGET",
    ]
    assert apex["Milestone days late · computed"][4] == "on target"
    assert lab["Milestones on time · computed"][2] == "100 %"
    assert lab["Actions closed on time · computed"][2:5] == ["—", "≥ 90 % (default)", "no data"]
    # The explanations follow the table; the fallback text sums each vendor up.
    assert "1 of 3 milestones due in 2026-Q4 done on time" in a.text
    assert "no actions due in 2026-Q4" in a.text
    assert a.payload["text"].startswith("Vendor scorecards · ONC-301 · 2026-Q4: Apex CRO (ONC-301)")


def test_one_vendor_asked_for_by_name_and_quarter(slash: SlashClient, world: World) -> None:
    _record(world)
    a = slash.send("scorecard centralab period:2026Q4", APPROVER, C_SPONSOR)
    assert "Vendor scorecard — CentraLab · ONC-301 · 2026-Q4" in a.text
    assert "Apex CRO" not in a.text
    rows = _cells(a.payload)
    assert rows[0][0] == "Measure"  # one vendor: no vendor column
    # Apex had no milestone due in Q3: no data, and no change to show.
    a = slash.send('scorecard "Apex CRO" period:2026-Q3', APPROVER, C_SPONSOR)
    by_measure = {r[0]: r for r in _cells(a.payload)[1:]}
    assert by_measure["Milestones on time · computed"][3:] == ["no data", "—"]
    assert "no milestones due in 2026-Q3" in a.text


def test_a_vendor_sees_its_own_scorecard_only(slash: SlashClient, world: World) -> None:
    _record(world)
    before = snapshot(world.db, light=True)
    own = slash.send("scorecard", APEX_PM, C_APEX)
    assert "Vendor scorecard — Apex CRO · ONC-301 · 2026-Q4" in own.text
    assert "CentraLab" not in own.text and "Kits shipped" not in own.text
    same = slash.send("scorecard apex cro", APEX_PM, "DAPEXDM")  # a direct message
    assert "Vendor scorecard — Apex CRO" in same.text and "CentraLab" not in same.text
    # Another vendor's, one that exists nowhere, one on no study: the same refusal.
    answers = [
        slash.send(f"scorecard {name}", APEX_PM, C_APEX)
        for name in ("CentraLab", "Nosuch Labs", "Helix Pharma")
    ]
    for a in answers:
        assert a.payload["text"] == answers[0].payload["text"]
        assert "Only Apex CRO's scorecard can be shown to you here." in a.text
        assert not _tables(a.payload) and "CentraLab" not in a.payload["text"]
    assert snapshot(world.db, light=True) == before  # reads only


def test_the_channel_narrows_what_a_sponsor_sees(slash: SlashClient, world: World) -> None:
    _record(world)
    # In Apex's own channel a sponsor sees what that channel may see: Apex's.
    a = slash.send("scorecard", APPROVER, C_APEX)
    assert "Apex CRO" in a.text and "CentraLab" not in a.text
    refused = slash.send("scorecard CentraLab", APPROVER, C_APEX)
    assert "Only Apex CRO's scorecard can be shown to you here." in refused.text
    # A joint channel shows approved data only: no scorecards there.
    joint = slash.send("scorecard", APPROVER, C_JOINT)
    assert "Scorecards are shown to the sponsor's staff" in joint.text
    assert not _tables(joint.payload)


def test_bad_input_says_how_to_fix_it(slash: SlashClient, world: World) -> None:
    a = slash.send("scorecard period:2026-Q5", APPROVER, C_SPONSOR)
    assert "I don't understand the quarter `2026-Q5`" in a.text and "2026-Q4" in a.text
    a = slash.send("scorecard quarter:2026-Q4", APPROVER, C_SPONSOR)
    assert "Unknown option `quarter:`" in a.text
    a = slash.send("scorecard Nosuch", APPROVER, C_SPONSOR)
    assert "There is no organisation `Nosuch`" in a.text
    a = slash.send("scorecard Helix Pharma", APPROVER, C_SPONSOR)
    assert "Helix Pharma is not a vendor on ONC-301." in a.text
    a = slash.send("scorecard <@ULAB>", APPROVER, C_SPONSOR)
    assert "not a person" in a.text
    a = slash.send("help scorecard", LAB_PM, C_APEX)
    assert "/cro scorecard [ORG] [period:2026-Q4]" in a.text


def test_a_vendor_name_with_markup_is_shown_escaped(slash: SlashClient, world: World) -> None:
    hostile = "<!channel> *b* _i_ \u202eEvil <@U0EVIL> CRO"
    with world.db.write() as s:
        directory.add_org(s, SYSTEM, name=hostile, kind="cro")
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor=hostile)
    a = slash.send("scorecard", APPROVER, C_SPONSOR)
    assert message_problems(a.payload) == []
    assert any("Evil" in row[0] for row in _cells(a.payload))
    # Table cells are raw text Slack shows as it is: no mention, link or bidi control may
    # arrive raw; in the mrkdwn around them, no emphasis either.
    assert raw_problems(a.payload, (*MENTIONS_AND_LINKS, *BIDI), "reply") == []
    rest = {**a.payload, "blocks": [b for b in a.payload["blocks"] if b["type"] != "table"]}
    assert raw_problems(rest, EMPHASIS, "reply") == [], json.dumps(rest)[:400]
