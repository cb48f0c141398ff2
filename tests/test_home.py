"""App Home end to end: `app_home_opened` → views.publish with exactly the viewer's items."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crobot.services import actions, directory, milestones
from crobot.services.actor import SYSTEM
from crobot.storage.db import Database
from crobot.storage.models import ActionItem, ActionStatus, Approval, ApprovalState
from tests.approval_support import (
    assert_chain_ok,
    audit_actions,
    block_action,
    bot_for,
    pending_kpi,
    posted_request,
    send,
    send_event,
    wait_until,
)
from tests.bot_server import RunningBot
from tests.conftest import TODAY, World
from tests.fake_slack import FakeSlack


def _seed(world: World) -> dict[str, int]:
    """Actions and milestones of several owners and organisations, and a second study."""
    ids: dict[str, int] = {}
    with world.db.write() as s:
        directory.add_study(
            s, SYSTEM, code="ONC-302", title="Lab-only study", sponsor="Helix Pharma"
        )
        directory.add_study_vendor(s, SYSTEM, study="ONC-302", vendor="CentraLab")
        for key, user, study, title, due in [
            ("apex_open", "UAPEX", "ONC-301", "Apex open", TODAY + timedelta(days=10)),
            ("apex_overdue", "UAPEX", "ONC-301", "Apex overdue", TODAY - timedelta(days=5)),
            ("lab", "ULAB", "ONC-301", "Lab task", TODAY + timedelta(days=10)),
            ("lab302", "ULAB", "ONC-302", "Lab 302 task", TODAY + timedelta(days=10)),
            ("sponsor", "UAPPROVER", "ONC-301", "Approver task", TODAY + timedelta(days=10)),
        ]:
            item = actions.add(
                s,
                world.actor(user),
                today=TODAY,
                allow_past=True,
                study=study,
                title=title,
                owner_user_id=user,
                due=due,
            )
            ids[key] = item.id
        for user, name, days in [
            ("UAPEX", "Apex site activation", 20),
            ("ULAB", "Lab private setup", 10),
            ("USPONSOR", "Database lock", 40),
        ]:
            milestones.add(
                s,
                world.actor(user),
                today=TODAY,
                study="ONC-301",
                name=name,
                planned=TODAY + timedelta(days=days),
            )
    return ids


def _open_home(bot: RunningBot, fake_slack: FakeSlack, user: str) -> dict[str, Any]:
    before = len([c for c in fake_slack.calls_to("views.publish") if c.params["user_id"] == user])
    status, _ = send_event(bot, {"type": "app_home_opened", "user": user, "tab": "home"})
    assert status == 200
    return _latest_home(fake_slack, user, before + 1)


def _latest_home(fake_slack: FakeSlack, user: str, count: int) -> dict[str, Any]:
    calls = wait_until(
        lambda: (
            c
            if len(
                c := [
                    x for x in fake_slack.calls_to("views.publish") if x.params["user_id"] == user
                ]
            )
            >= count
            else None
        )
    )
    view: dict[str, Any] = calls[-1].params["view"]
    assert view["type"] == "home"
    return view


def _buttons(view: dict[str, Any], action_id: str) -> set[int]:
    out = set()
    for b in view["blocks"]:
        elements = b.get("elements", []) if b["type"] == "actions" else [b.get("accessory") or {}]
        out |= {int(e["value"]) for e in elements if e.get("action_id") == action_id}
    return out


def _text(view: dict[str, Any]) -> str:
    return "\n".join(
        str((b.get("text") or {}).get("text", ""))
        + "".join(str(e.get("text", "")) for e in b.get("elements", []) if b["type"] == "context")
        for b in view["blocks"]
    )


def test_home_shows_exactly_the_viewers_items(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    ids = _seed(world)
    aid = pending_kpi(world, 12)
    with bot_for(db, fake_slack) as bot:
        apex = _open_home(bot, fake_slack, "UAPEX")
        assert _buttons(apex, "home_action_done") == {ids["apex_open"], ids["apex_overdue"]}
        assert _buttons(apex, "approval_approve") == set()  # a vendor decides nothing
        text = _text(apex)
        assert "Apex overdue" in text and "days overdue" in text
        assert "Lab task" not in text and "Approver task" not in text
        assert "ONC-301" in text and "ONC-302" not in text  # not a vendor on ONC-302
        # Next milestone through Apex's eyes: its own, never CentraLab's private one.
        assert "next milestone: Apex site activation" in text
        assert "Lab private setup" not in text

        approver = _open_home(bot, fake_slack, "UAPPROVER")
        assert _buttons(approver, "home_action_done") == {ids["sponsor"]}
        assert _buttons(approver, "approval_approve") == {aid}
        assert _buttons(approver, "approval_reject") == {aid}
        text = _text(approver)
        assert "next milestone: Lab private setup" in text  # the sponsor sees every vendor's
        assert "ONC-302" in text

        member = _open_home(bot, fake_slack, "USPONSOR")
        assert _buttons(member, "approval_approve") == set()  # sponsor_member: not an approver

        lab = _open_home(bot, fake_slack, "ULAB")
        assert _buttons(lab, "home_action_done") == {ids["lab"], ids["lab302"]}

        stranger = _open_home(bot, fake_slack, "USTRANGE")
        assert "crobot does not know you" in _text(stranger)
        assert "crobot person add USTRANGE --team T1" in _text(stranger)
        assert len(stranger["blocks"]) <= 100
    assert_chain_ok(db)


def test_actions_taken_from_home_refresh_it(
    db: Database, world: World, fake_slack: FakeSlack
) -> None:
    ids = _seed(world)
    aid = pending_kpi(world, 12)
    with bot_for(db, fake_slack) as bot:
        loc = posted_request(bot, world, aid)
        _open_home(bot, fake_slack, "UAPEX")
        done = block_action("home_action_done", ids["apex_open"], user="UAPEX", msg=None, home=True)
        assert send(bot, done)[0] == 200
        view = _latest_home(fake_slack, "UAPEX", 2)
        assert _buttons(view, "home_action_done") == {ids["apex_overdue"]}
        assert f"Marked #{ids['apex_open']} done." in _text(view)

        # Someone else's item: refused, nothing changes, the Home tab says why.
        other = block_action("home_action_done", ids["lab"], user="UAPEX", msg=None, home=True)
        assert send(bot, other)[0] == 200
        view = _latest_home(fake_slack, "UAPEX", 3)
        assert f"There is no action #{ids['lab']} that you can change." in _text(view)

        _open_home(bot, fake_slack, "UAPPROVER")
        approve = block_action("approval_approve", aid, user="UAPPROVER", msg=None, home=True)
        assert send(bot, approve)[0] == 200
        view = _latest_home(fake_slack, "UAPPROVER", 2)
        assert _buttons(view, "approval_approve") == set()
        # The channel copy of the request was updated in place too.
        wait_until(lambda: audit_actions(db, "approval.message.update"))
        msg = next(m for m in fake_slack.posted("CSPONSOR") if m["ts"] == loc["ts"])
        assert "Approved by <@UAPPROVER>" in str(msg["blocks"])
    with db.read() as s:
        assert s.get_one(ActionItem, ids["apex_open"]).status == ActionStatus.DONE
        assert s.get_one(ActionItem, ids["lab"]).status == ActionStatus.OPEN
        assert s.get_one(Approval, aid).state == ApprovalState.APPROVED
    assert len(audit_actions(db, "action.done")) == 1
    assert_chain_ok(db)
