"""An id a person may not see or change gets the same answer as an id that does not exist,
on every path that takes an id; and nobody links work to another organisation's milestone.

Reproduces the findings: "There is no milestone #9999" vs "Vendors can only …" told a
vendor which ids exist; a vendor linked its action to CentraLab's milestone (`milestone:10`).
(The milestone form offering a vendor every organisation: tests/test_approval_modals.py.)
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from crobot.services import actions, directory, milestones
from crobot.services.actor import SYSTEM
from crobot.storage.models import ActionItem
from tests import form_values as form
from tests.approval_support import (
    block_action,
    message,
    pending_kpi,
    posted_request,
    send,
    view_submission,
)
from tests.conftest import APEX_PM, C_APEX, C_SPONSOR, LAB_PM, SPONSOR, TODAY, World
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient

MISSING = 987654


@pytest.fixture
def rows(world: World) -> dict[str, int]:
    ids: dict[str, int] = {}
    with world.db.write() as s:
        lab, apex = world.actor(LAB_PM), world.actor(APEX_PM)
        soon = TODAY + timedelta(days=10)
        for key, actor, shared in (
            ("lab_ms", lab, False),
            ("lab_shared_ms", lab, True),
            ("apex_ms", apex, False),
        ):
            ids[key] = milestones.add(
                s, actor, today=TODAY, study="ONC-301", name=key, planned=soon, shared=shared
            ).id
        for key, shared in (("lab_action", False), ("lab_shared_action", True)):
            ids[key] = actions.add(
                s,
                lab,
                today=TODAY,
                study="ONC-301",
                title=key,
                owner_user_id=LAB_PM,
                due=soon,
                shared=shared,
            ).id
    return ids


def _same(answers: dict[int, str]) -> None:
    """Every answer, with its own id written as N, is the same text."""
    texts = {a.replace(f"#{i}", "#N").replace(f":{i}", ":N") for i, a in answers.items()}
    assert len(texts) == 1, texts


def test_commands_answer_a_forbidden_id_as_a_missing_one(
    world: World, rows: dict[str, int], slash: SlashClient
) -> None:
    before = snapshot(world.db)
    ms_ids = [MISSING, rows["lab_ms"], rows["lab_shared_ms"]]
    for words in ("forecast:+1w", "done", "status:at_risk"):
        answers = {
            i: slash.send(f"milestone update {i} {words}", APEX_PM, C_APEX).text for i in ms_ids
        }
        _same(answers)
        assert (
            "There is no milestone #" in answers[MISSING] and "you can change" in answers[MISSING]
        )
    answers = {
        i: slash.send(f"action done {i}", APEX_PM, C_APEX).text
        for i in (MISSING, rows["lab_action"], rows["lab_shared_action"])
    }
    _same(answers)
    assert "lab_action" not in str(answers)
    assert_unchanged(world.db, before)
    # The ids that are Apex's own still work.
    a = slash.send(f"milestone update {rows['apex_ms']} status:at_risk", APEX_PM, C_APEX)
    assert "updated milestone" in a.text


def test_clicks_answer_a_forbidden_id_as_a_missing_one(
    world: World, rows: dict[str, int], slash: SlashClient, fake_slack: FakeSlack
) -> None:
    bot = slash.bot
    aid = pending_kpi(world, 12)
    request = message(fake_slack, **posted_request(bot, world, aid))
    before = snapshot(world.db)
    sent = 0
    for user in (SPONSOR, APEX_PM):  # a sponsor member (no approver) and a vendor
        for action in ("approval_approve", "approval_reject"):
            answers: dict[int, str] = {}
            for approval_id in (aid, MISSING):
                click = block_action(action, approval_id, user=user, msg=request)
                assert send(bot, click)[0] == 200
                sent += 1
                said = fake_slack.wait_for("chat.postEphemeral", sent)
                answers[approval_id] = str(said[-1].params["text"])
            _same(answers)
            assert "that you can decide" in answers[MISSING]
    assert fake_slack.calls_to("views.open") == []

    homes: dict[int, str] = {}
    for action_id in (MISSING, rows["lab_action"], rows["lab_shared_action"]):
        n = len(fake_slack.calls_to("views.publish")) + 1
        click = block_action("home_action_done", action_id, user=APEX_PM, msg=None, home=True)
        assert send(bot, click)[0] == 200
        publish = fake_slack.wait_for("views.publish", n)
        homes[action_id] = json.dumps(publish[-1].params["view"]["blocks"][1])  # the notice
    _same(homes)
    assert "There is no action #" in homes[MISSING]
    assert_unchanged(world.db, before, audited={"approval.refused"})  # logged, audited


def test_an_action_links_only_to_a_milestone_its_author_may_change(
    world: World, rows: dict[str, int], slash: SlashClient
) -> None:
    before = snapshot(world.db)
    answers = {
        i: slash.send(f'action add "Prep" <@{APEX_PM}> due:fri milestone:{i}', APEX_PM, C_APEX).text
        for i in (MISSING, rows["lab_ms"], rows["lab_shared_ms"])
    }
    _same(answers)
    assert "There is no milestone #" in answers[MISSING]
    assert_unchanged(world.db, before)
    a = slash.send(
        f'action add "Own" <@{APEX_PM}> due:fri milestone:{rows["apex_ms"]}', APEX_PM, C_APEX
    )
    assert "added action" in a.text
    # The sponsor may link to any organisation's milestone of the study.
    a = slash.send(
        f'action add "Sponsor prep" <@{SPONSOR}> due:fri milestone:{rows["lab_ms"]}',
        SPONSOR,
        C_SPONSOR,
    )
    assert "added action" in a.text
    with world.db.read() as s:
        linked = {a.title: a.milestone_id for a in s.scalars(select(ActionItem))}
    assert linked["Own"] == rows["apex_ms"] and linked["Sponsor prep"] == rows["lab_ms"]


def test_a_study_one_is_not_on_is_answered_like_one_that_does_not_exist(
    world: World, slash: SlashClient
) -> None:
    with world.db.write() as s:
        directory.add_org(s, SYSTEM, name="Other Pharma", kind="sponsor")
        directory.add_study(s, SYSTEM, code="OTH-9", title="Not Apex's", sponsor="Other Pharma")
    answers = {
        code: slash.send(f"status {code}", APEX_PM, "D0APEX").text for code in ("OTH-9", "OTH-8")
    }
    assert answers["OTH-9"] == answers["OTH-8"].replace("OTH-8", "OTH-9")
    assert "There is no study `OTH-9` that you are on." in answers["OTH-9"]
    assert "Known: `ONC-301`" in answers["OTH-9"]  # only the reader's own studies
    before = snapshot(world.db)
    values = {
        "study": form.select("OTH-9"),
        "name": form.text("FPI"),
        "planned": form.day("2026-12-20"),
    }
    status, body = send(
        slash.bot,
        view_submission("modal_milestone_add", values, user=APEX_PM, private_metadata="{}"),
    )
    assert json.loads(body)["errors"] == {"study": "There is no study `OTH-9` that you are on."}
    assert_unchanged(world.db, before)
