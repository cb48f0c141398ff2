"""Forms for milestone add / action add / kpi report: pickers, submission, inline errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import func, select

from crobot.handlers.commands.base import CommandContext
from crobot.handlers.commands.router import open_form
from crobot.handlers.forms import ACTION_ADD, KPI_REPORT, MILESTONE_ADD
from crobot.services import directory
from crobot.services.actor import SYSTEM
from crobot.services.lookup import channel_link
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import ActionItem, Approval, ApprovalState, KpiUpdate, Milestone
from tests import form_values as form
from tests.approval_support import (
    NOW,
    assert_chain_ok,
    audit_count,
    bot_for,
    ephemerals,
    send,
    view_submission,
    wait_until,
)
from tests.conftest import World
from tests.fake_slack import FakeSlack


def _ctx(
    world: World, fake_slack: FakeSlack, user: str, channel: str, trigger: str | None = "trig-9"
) -> CommandContext:
    with world.db.read() as s:
        link = channel_link(s, "T1", channel)
    return CommandContext(
        runtime=Runtime(world.db, now=lambda: NOW),
        client=WebClient(token="xoxb-test-token", base_url=fake_slack.base_url),
        team_id="T1",
        user_id=user,
        channel_id=channel,
        actor=world.actor(user),
        link=link,
        user_tz="Asia/Kolkata",
        trigger_id=trigger,
    )


def _second_study(world: World) -> None:
    with world.db.write() as s:
        directory.add_study(s, SYSTEM, code="ONC-302", title="Lab-only", sponsor="Helix Pharma")
        directory.add_study_vendor(s, SYSTEM, study="ONC-302", vendor="CentraLab")


def _opened(fake_slack: FakeSlack) -> dict[str, Any]:
    call = fake_slack.calls_to("views.open")[-1]
    assert call.params["trigger_id"] == "trig-9"
    view: dict[str, Any] = call.params["view"]
    return view


def _block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def _options(view: dict[str, Any], block_id: str) -> list[str]:
    return [o["value"] for o in _block(view, block_id)["element"]["options"]]


def test_forms_offer_only_what_the_user_may_use(world: World, fake_slack: FakeSlack) -> None:
    _second_study(world)
    assert open_form(_ctx(world, fake_slack, "UAPEX", "CAPEX"), KPI_REPORT).silent
    view = _opened(fake_slack)
    assert view["callback_id"] == "modal_kpi_report"
    assert _options(view, "study") == ["ONC-301"]  # Apex is not on ONC-302
    assert _block(view, "study")["element"]["initial_option"]["value"] == "ONC-301"
    assert "enrollment" in _options(view, "kpi")
    assert _block(view, "period")["element"]["type"] == "datepicker"
    assert json.loads(view["private_metadata"]) == {"channel_id": "CAPEX"}

    assert open_form(_ctx(world, fake_slack, "UAPPROVER", "CSPONSOR"), ACTION_ADD).silent
    view = _opened(fake_slack)
    assert _options(view, "study") == ["ONC-301", "ONC-302"]
    assert _block(view, "owner_user_id")["element"]["type"] == "users_select"
    assert _block(view, "due")["element"]["type"] == "datepicker"

    assert open_form(_ctx(world, fake_slack, "ULAB", "CLAB"), MILESTONE_ADD).silent
    view = _opened(fake_slack)
    assert _options(view, "study") == ["ONC-301", "ONC-302"]
    assert _block(view, "planned")["element"]["type"] == "datepicker"
    # A vendor may enter milestones for its own organisation only: nothing to choose.
    assert all(b.get("block_id") != "org" for b in view["blocks"])
    # The sponsor may enter them for any organisation of its studies.
    assert open_form(_ctx(world, fake_slack, "USPONSOR", "CSPONSOR"), MILESTONE_ADD).silent
    assert _options(_opened(fake_slack), "org") == ["Apex CRO", "CentraLab", "Helix Pharma"]

    opened = len(fake_slack.calls_to("views.open"))
    reply = open_form(_ctx(world, fake_slack, "USTRANGE", "CJOINT"), KPI_REPORT)
    assert not reply.silent and "crobot does not know you" in reply.text
    reply = open_form(_ctx(world, fake_slack, "UAPEX", "CAPEX", trigger=None), KPI_REPORT)
    assert not reply.silent
    assert len(fake_slack.calls_to("views.open")) == opened


META = json.dumps({"channel_id": "CAPEX"})


def _count(db: Database, model: type[Any]) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_kpi_form_reports_and_requests_approval(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        values = {
            "study": form.select("ONC-301"),
            "kpi": form.select("enrollment"),
            "value": form.text("14"),
            "period": form.day("2026-11-24"),
            "note": form.text("two sites late"),
        }
        status, body = send(
            bot, view_submission("modal_kpi_report", values, user="UAPEX", private_metadata=META)
        )
        assert status == 200 and body == ""
        posted = wait_until(lambda: fake_slack.posted("CSPONSOR"))
        assert "→ *14*" in json.dumps(posted[0]["blocks"], ensure_ascii=False)
        wait_until(lambda: ephemerals(fake_slack, "UAPEX"))
        assert "awaits the sponsor's approval" in ephemerals(fake_slack, "UAPEX")[0]
    with db.read() as s:
        update = s.scalars(select(KpiUpdate)).one()
        assert (update.value, update.period_label, update.note) == (
            14,
            "2026-W48",
            "two sites late",
        )
        assert update.approval_state == ApprovalState.PENDING
        assert s.scalars(select(Approval)).one().subject_id == update.id
    assert_chain_ok(db)


@pytest.mark.parametrize(
    ("callback", "user", "values", "field", "words"),
    [
        (
            "modal_kpi_report",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "kpi": form.select("enrollment"),
                "value": form.text("lots"),
            },
            "value",
            "number",
        ),
        (
            "modal_kpi_report",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "kpi": form.select("enrollment"),
                "value": form.text("-3"),
            },
            "value",
            "cannot be below",
        ),
        (
            "modal_kpi_report",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "kpi": form.select("enrollment"),
                "value": form.text("3"),
                "period": form.day("2027-03-01"),
            },
            "period",
            "has not started",
        ),
        (
            "modal_milestone_add",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "name": form.text("FPI"),
                "planned": form.day("2026-11-01"),
            },
            "planned",
            "in the past",
        ),
        (
            "modal_milestone_add",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "name": form.text(None),
                "planned": form.day("2026-12-20"),
            },
            "name",
            "",
        ),
        (
            "modal_action_add",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "title": form.text("Send SDV plan"),
                "owner_user_id": form.user("ULAB"),
                "due": form.day("2026-12-20"),
            },
            "owner_user_id",
            "assign",
        ),
        (
            "modal_action_add",
            "UAPEX",
            {
                "study": form.select("ONC-301"),
                "title": form.text("Send SDV plan"),
                "owner_user_id": form.user("UAPEX"),
                "due": form.day("2026-11-02"),
            },
            "due",
            "in the past",
        ),
    ],
)
def test_form_errors_show_inline_and_store_nothing(
    db: Database,
    world: World,
    fake_slack: FakeSlack,
    callback: str,
    user: str,
    values: dict[str, Any],
    field: str,
    words: str,
) -> None:
    before = (audit_count(db), *(_count(db, m) for m in (KpiUpdate, Milestone, ActionItem)))
    with bot_for(db, fake_slack) as bot:
        status, body = send(
            bot, view_submission(callback, values, user=user, private_metadata=META)
        )
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [field]
    assert words in answer["errors"][field]
    after = (audit_count(db), *(_count(db, m) for m in (KpiUpdate, Milestone, ActionItem)))
    assert after == before
    assert fake_slack.calls_to("chat.postEphemeral") == []
    assert_chain_ok(db)


def test_milestone_and_action_forms_store(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    with bot_for(db, fake_slack) as bot:
        ms = {
            "study": form.select("ONC-301"),
            "name": form.text("LPI"),
            "planned": form.day("2027-02-01"),
        }
        act = {
            "study": form.select("ONC-301"),
            "title": form.text("Send SDV plan"),
            "owner_user_id": form.user("UAPEX"),
            "due": form.day("2026-12-20"),
            "priority": form.select("high"),
        }
        for callback, values in (("modal_milestone_add", ms), ("modal_action_add", act)):
            status, body = send(
                bot, view_submission(callback, values, user="UAPEX", private_metadata=META)
            )
            assert (status, body) == (200, "")
        wait_until(lambda: len(ephemerals(fake_slack, "UAPEX")) == 2)
    with db.read() as s:
        milestone = s.scalars(select(Milestone)).one()
        assert (milestone.name, milestone.org_id) == ("LPI", world.apex_id)
        item = s.scalars(select(ActionItem)).one()
        assert (item.title, item.owner_user_id, item.priority.value) == (
            "Send SDV plan",
            "UAPEX",
            "high",
        )
    assert_chain_ok(db)
