"""A person is (workspace, user), never a user id alone: `action done`, `mine`, `@owner`,
the App Home and the overdue nudges all compare both.

Reproduces the finding: a user registered in another workspace under a look-alike user
id (`T9:ULAB`, Apex CRO) completed CentraLab's action owned by `T1:ULAB` and saw its title.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crobot.digests.nudges import compose_nudge, overdue_owners
from crobot.services import actions, directory
from crobot.services.actor import SYSTEM
from crobot.storage.models import ActionItem, ActionStatus
from tests.approval_support import NOW, block_action, send, send_event, wait_until
from tests.conftest import APEX_PM, C_APEX, C_LAB, C_SPONSOR, LAB_PM, SPONSOR, TODAY, World
from tests.dbstate import assert_unchanged, snapshot
from tests.fake_slack import FakeSlack
from tests.slash_helpers import SlashClient

SECRET = "Recalibrate centrifuge QZX"  # CentraLab's own, unshared action
SHARED = "Shared lab handover QZY"  # shared with every audience of the study


@pytest.fixture
def lookalike(world: World) -> dict[str, int]:
    """T9:ULAB is Apex CRO's (T9 is a workspace no organisation registered); T1:ULAB owns
    two CentraLab actions, one of them shared, both overdue."""
    ids: dict[str, int] = {}
    world.add_person(
        "T9", LAB_PM, "Apex CRO", "vendor_member", name="Look-alike", timezone="Europe/Dublin"
    )
    with world.db.write() as s:
        for key, title, shared in (("secret", SECRET, False), ("shared", SHARED, True)):
            ids[key] = actions.add(
                s,
                world.actor(LAB_PM),
                today=TODAY,
                allow_past=True,
                study="ONC-301",
                title=title,
                owner_user_id=LAB_PM,
                due=TODAY - timedelta(days=2),
                shared=shared,
            ).id
    return ids


def _open(world: World, action_id: int) -> bool:
    with world.db.read() as s:
        return s.get_one(ActionItem, action_id).status == ActionStatus.OPEN


def test_a_lookalike_user_id_in_another_workspace_cannot_complete_the_action(
    world: World, lookalike: dict[str, int], slash: SlashClient
) -> None:
    before = snapshot(world.db)
    for key in ("secret", "shared"):
        a = slash.send(f"action done {lookalike[key]}", LAB_PM, C_APEX, team="T9")
        assert f"There is no action #{lookalike[key]} that you can change." in a.text
        assert SECRET not in a.text and SHARED not in a.text
        assert not a.in_channel
    assert_unchanged(world.db, before)
    # The owner themself, in their own workspace, still can.
    a = slash.send(f"action done {lookalike['secret']}", LAB_PM, C_LAB)
    assert "completed action" in a.text and not _open(world, lookalike["secret"])


def test_mine_and_owner_filters_compare_the_workspace(
    world: World, lookalike: dict[str, int], slash: SlashClient
) -> None:
    # The look-alike may see the shared action (Apex is on the study), but it is not theirs.
    a = slash.send("action list", LAB_PM, C_APEX, team="T9")
    assert SHARED in a.text and SECRET not in a.text
    for text, channel in (("action list mine", C_APEX), ("action list mine", "D0LOOK")):
        a = slash.send(text, LAB_PM, channel, team="T9")
        assert SHARED not in a.text and SECRET not in a.text, text
    # The real owner's `mine` lists both.
    a = slash.send("action list mine", LAB_PM, C_LAB)
    assert SHARED in a.text and SECRET in a.text
    # `@owner` typed in T1 means T1's ULAB.
    a = slash.send(f"action list <@{LAB_PM}|liam>", SPONSOR, C_SPONSOR)
    assert SHARED in a.text and SECRET in a.text


def _home(fake_slack: FakeSlack, user: str, team: str, count: int) -> dict[str, Any]:
    def published() -> list[Any] | None:
        calls = [c for c in fake_slack.calls_to("views.publish") if c.params["user_id"] == user]
        return calls if len(calls) >= count else None

    view: dict[str, Any] = wait_until(published)[-1].params["view"]
    return view


def test_home_and_its_done_button_compare_the_workspace(
    world: World, lookalike: dict[str, int], slash: SlashClient, fake_slack: FakeSlack
) -> None:
    bot = slash.bot
    send_event(bot, {"type": "app_home_opened", "user": LAB_PM, "tab": "home"}, team="T9")
    view = _home(fake_slack, LAB_PM, "T9", 1)
    text = str(view["blocks"])
    assert SHARED not in text and SECRET not in text
    before = snapshot(world.db)
    click = block_action(
        "home_action_done", lookalike["shared"], user=LAB_PM, msg=None, team="T9", home=True
    )
    assert send(bot, click)[0] == 200
    view = _home(fake_slack, LAB_PM, "T9", 2)
    assert f"There is no action #{lookalike['shared']} that you can change." in str(view)
    assert_unchanged(world.db, before)


def test_nudges_go_to_the_owner_in_the_owners_workspace(
    world: World, lookalike: dict[str, int]
) -> None:
    with world.db.read() as s:
        owners = {(o.team_id, o.user_id) for o in overdue_owners(s, NOW, "UTC")}
        assert owners == {("T1", LAB_PM)}
        assert compose_nudge(s, "T9", LAB_PM, NOW, "UTC") is None
        nudge = compose_nudge(s, "T1", LAB_PM, NOW, "UTC")
        assert nudge is not None and SECRET in str(nudge.blocks)


@pytest.fixture
def connect(world: World) -> None:
    """Slack Connect: Beta CMO, a vendor on the study, works in its own registered
    workspace T0BETA; its UBETA is mentioned from the sponsor's workspace T1."""
    with world.db.write() as s:
        directory.add_org(s, SYSTEM, name="Beta CMO", kind="cmo", slack_team_id="T0BETA")
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor="Beta CMO")
        directory.add_org(s, SYSTEM, name="Gamma Lab", kind="lab", slack_team_id="T0GAMMA")
    for team, user, org in (
        ("T0BETA", "UBETA", "Beta CMO"),
        ("T0GAMMA", "UGAMMA", "Gamma Lab"),  # not on the study
        ("T9", "UNOWHERE", "Apex CRO"),  # T9 is registered to nobody
    ):
        world.add_person(team, user, org, "vendor_member")


def test_an_owner_is_looked_up_in_the_requesters_workspace_first(
    world: World, connect: None, slash: SlashClient
) -> None:
    # Unambiguous and registered to an organisation of the study: the Slack Connect owner.
    a = slash.send('action add "Ship kits" <@UBETA> due:fri', SPONSOR, C_SPONSOR)
    assert "added action" in a.text, a.text
    with world.db.read() as s:
        item = s.scalars(select(ActionItem).where(ActionItem.title == "Ship kits")).one()
        assert (item.owner_team_id, item.owner_user_id) == ("T0BETA", "UBETA")
    a = slash.send("action list <@UBETA>", SPONSOR, C_SPONSOR)
    assert "Ship kits" in a.text
    # Nobody of that id in T1, and no workspace of the study's organisations holds them.
    before = snapshot(world.db)
    for user in ("UGAMMA", "UNOWHERE", "UNOBODY"):
        a = slash.send(f'action add "Ship kits" <@{user}> due:fri', SPONSOR, C_SPONSOR)
        assert "not registered with crobot" in a.text, (user, a.text)
        a = slash.send(f"action list <@{user}>", SPONSOR, C_SPONSOR)
        assert "not registered with crobot" in a.text, (user, a.text)
    assert_unchanged(world.db, before)


def test_an_owner_found_in_two_other_workspaces_is_ambiguous(
    world: World, connect: None, slash: SlashClient
) -> None:
    with world.db.write() as s:
        directory.add_org(s, SYSTEM, name="Delta CRO", kind="cro", slack_team_id="T0DELTA")
        directory.add_study_vendor(s, SYSTEM, study="ONC-301", vendor="Delta CRO")
    world.add_person("T0DELTA", "UBETA", "Delta CRO", "vendor_member")
    before = snapshot(world.db)
    a = slash.send('action add "Ship kits" <@UBETA> due:fri', SPONSOR, C_SPONSOR)
    assert "not registered with crobot" in a.text
    assert_unchanged(world.db, before)
    # Within the owner's own workspace the same id is unambiguous.
    a = slash.send(
        'action add ONC-301 "Ship kits" <@UBETA> due:fri', "UBETA", "CBETA", team="T0BETA"
    )
    assert "added action" in a.text, a.text


def test_a_vendor_still_assigns_in_its_own_workspace(
    world: World, lookalike: dict[str, int], slash: SlashClient
) -> None:
    # T9:ULAB (Apex) names ULAB: that is themself in T9, not CentraLab's T1:ULAB.
    a = slash.send(f'action add ONC-301 "Mine" <@{LAB_PM}> due:fri', LAB_PM, "D9", team="T9")
    assert "added action" in a.text, a.text
    with world.db.read() as s:
        item = s.scalars(select(ActionItem).where(ActionItem.title == "Mine")).one()
        assert (item.owner_team_id, item.owner_org_id) == ("T9", world.apex_id)
    # And T1:UAPEX naming ULAB means T1's CentraLab ULAB: not Apex's to assign.
    a = slash.send(f'action add "Theirs" <@{LAB_PM}> due:fri', APEX_PM, C_APEX)
    assert "own people" in a.text


def test_the_digest_groups_actions_by_person_not_by_user_id(
    world: World, lookalike: dict[str, int], slash: SlashClient
) -> None:
    with world.db.write() as s:
        actions.add(
            s,
            world.actor(LAB_PM, team_id="T9"),
            today=TODAY,
            study="ONC-301",
            title="Apex chore QZA",
            owner_user_id=LAB_PM,
            due=TODAY + timedelta(days=3),
        )
    a = slash.send("digest preview", SPONSOR, C_SPONSOR)
    assert "Open actions: 3, overdue: 2" in a.text
    assert "*Liam Lab*: 2 open, 2 overdue" in a.text, a.text
    assert "*Look-alike*: 1 open" in a.text, a.text
