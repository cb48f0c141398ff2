"""Quality tolerance limits end to end (signed requests, fake Slack, real database): only
sponsor approvers set limits, on the side the KPI's direction calls for; a vendor's value
beyond the limit opens exactly one breach once approved — posted to the sponsor channel
(with Assign owner / Evaluate) and the vendor's own channel — and nothing before; a
rejected value opens nothing; closing without the evaluation is refused field by field in
the modal, and only an approver closes; the CSR export lists every breach once."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crobot.bot.cli import main
from crobot.digests.compose import compose
from crobot.digests.nudges import compose_nudge
from crobot.digests.render import render
from crobot.services import approvals, directory, kpis, qtl, signatures
from crobot.services.actor import SYSTEM
from crobot.services.export import export_qtl
from crobot.services.home import home_for
from crobot.services.kpi_catalog import iso_week_label
from crobot.storage.db import Database
from crobot.storage.models import (
    ActionItem,
    AuditEvent,
    BreachStatus,
    ChannelLink,
    DigestRun,
    DigestRunState,
    QtlBreach,
    QualityLimit,
)
from tests.approval_support import (
    block_action,
    bot_for,
    ephemerals,
    message,
    posted_request,
    reject_via_modal,
    send,
    view_submission,
    wait_until,
)
from tests.bot_server import RunningBot
from tests.conftest import (
    APEX_PM,
    APPROVER,
    C_APEX,
    C_JOINT,
    C_LAB,
    C_SPONSOR,
    LAB_PM,
    SPONSOR,
    TODAY,
    World,
)
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls
from tests.slash_helpers import NOW, SlashClient
from tests.test_home import _open_home

KPI = "protocol_deviations"  # lower is better: its limit is a max


@pytest.fixture
def bot(world: World, fake_slack: FakeSlack) -> Iterator[RunningBot]:
    with bot_for(world.db, fake_slack) as running:
        yield running


def _limit(world: World, limit: float = 5, warn: float | None = 3) -> int:
    with world.db.write() as s:
        return qtl.set_limit(
            s,
            SYSTEM,
            study="ONC-301",
            kpi=KPI,
            bound="max",
            limit=limit,
            warn=warn,
            rationale="Protocol section 9.2: more than 5 a week signals a systemic issue",
        ).id


def _report(world: World, value: float, period: str | None = None, user: str = APEX_PM) -> int:
    with world.db.write() as s:
        rep = kpis.report(
            s, world.actor(user), today=TODAY, study="ONC-301", kpi=KPI, value=value, period=period
        )
        assert rep.approval_id is not None
        return rep.approval_id


def _breaches(world: World) -> list[QtlBreach]:
    with world.db.read() as s:
        return list(s.scalars(select(QtlBreach).order_by(QtlBreach.id)))


def _qtl_rows(world: World) -> list[DigestRun]:
    with world.db.read() as s:
        stmt = select(DigestRun).where(DigestRun.target.like("qtl%")).order_by(DigestRun.id)
        return list(s.scalars(stmt))


def _news(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.posted(channel) if "QTL breach" in str(m.get("text"))]


def _approve_by_click(bot: RunningBot, world: World, fake: FakeSlack, approval_id: int) -> None:
    msg = message(fake, **posted_request(bot, world, approval_id))
    payload = block_action("approval_approve", approval_id, user=APPROVER, msg=msg)
    assert send(bot, payload)[0] == 200


def _settled(world: World) -> bool:
    rows = _qtl_rows(world)
    return bool(rows) and all(r.state != DigestRunState.PENDING for r in rows)


def test_only_sponsor_approvers_set_limits_checked_against_the_direction(
    world: World, slash: SlashClient
) -> None:
    cmd = f'qtl set ONC-301 {KPI} max:5 warn:3 rationale:"Protocol 9.2"'
    for user, channel in ((SPONSOR, C_SPONSOR), (APEX_PM, C_APEX)):
        refused = slash.send(cmd, user, channel)
        assert "Only sponsor approvers" in refused.text, refused.text
    wrong_side = slash.send(f"qtl set ONC-301 {KPI} min:5", APPROVER, C_SPONSOR)
    assert "its limit is a `max:`" in wrong_side.text
    bad_warn = slash.send(f"qtl set ONC-301 {KPI} max:5 warn:7", APPROVER, C_SPONSOR)
    assert "warning threshold must be below" in bad_warn.text
    with world.db.read() as s:
        assert not s.scalar(select(func.count()).select_from(QualityLimit))
    done = slash.send(cmd, APPROVER, C_SPONSOR)
    assert "Protocol deviations" in done.text and "≤ 5" in done.text, done.text
    with world.db.read() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "qtl.set"))
        lim_id = int(event.subject_id or 0)
    assert event.after and event.after["rationale"] == "Protocol 9.2"
    listed = slash.send("qtl list ONC-301", APEX_PM, C_APEX)
    assert "Protocol 9.2" in listed.text and f"#{lim_id}" in listed.text
    assert "Only sponsor approvers" in slash.send(f"qtl off {lim_id}", SPONSOR, C_SPONSOR).text
    assert "withdrawn" in slash.send(f"qtl off {lim_id}", APPROVER, C_SPONSOR).text


def test_value_over_the_limit_opens_one_breach_once_approved(
    world: World, bot: RunningBot, fake_slack: FakeSlack
) -> None:
    _limit(world)
    approval_id = _report(world, 9)
    # Awaiting approval: no breach, nothing queued, nothing posted.
    assert _breaches(world) == [] and _qtl_rows(world) == []
    _approve_by_click(bot, world, fake_slack, approval_id)
    wait_until(lambda: _settled(world) and len(_qtl_rows(world)) == 2)
    (breach,) = _breaches(world)
    assert (breach.observed, breach.limit_value, breach.status) == (9, 5, BreachStatus.OPEN)
    assert breach.submitted_by == f"T1:{APEX_PM}" and breach.period_label == iso_week_label(TODAY)
    (sponsor_post,) = _news(fake_slack, C_SPONSOR)
    (vendor_post,) = _news(fake_slack, C_APEX)
    assert _news(fake_slack, C_LAB) == [] and _news(fake_slack, C_JOINT) == []
    actions = [
        e["action_id"]
        for b in sponsor_post["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert actions == ["qtl_assign", "qtl_evaluate"]
    assert not any(b["type"] == "actions" for b in vendor_post["blocks"])
    assert "*9* count (limit ≤ 5)" in json.dumps(sponsor_post["blocks"], ensure_ascii=False)
    validate_calls(fake_slack.calls_to("chat.postMessage"))
    # A correction for the same period, also over (or back inside): still one breach.
    for value in (12, 1):
        _approve_by_click(bot, world, fake_slack, _report(world, value))
    wait_until(lambda: len(_news(fake_slack, C_SPONSOR)) == 1 and _settled(world))
    assert len(_breaches(world)) == 1 and _breaches(world)[0].status == BreachStatus.OPEN


def test_a_rejected_value_opens_nothing_and_a_warning_posts_once(
    world: World, bot: RunningBot, fake_slack: FakeSlack
) -> None:
    _limit(world)
    approval_id = _report(world, 9)
    msg = message(fake_slack, **posted_request(bot, world, approval_id))
    status, _ = reject_via_modal(bot, fake_slack, approval_id, msg, "Double counted")
    assert status == 200
    assert _breaches(world) == [] and _qtl_rows(world) == []
    # Past the warning threshold (3), within the limit (5): one warning, however corrected.
    for value in (4, 5):
        a = _report(world, value)
        with world.db.write() as s:
            approvals.decide(s, world.actor(APPROVER), a, approve=True)
    rows = _qtl_rows(world)
    assert [r.target.split(":")[0] for r in rows] == ["qtlwarn"]
    assert _breaches(world) == []


def _open_breach(world: World) -> int:
    _limit(world)
    approval_id = _report(world, 9)
    with world.db.write() as s:
        approvals.decide(s, world.actor(APPROVER), approval_id, approve=True, today=TODAY)
    (breach,) = _breaches(world)
    assert breach.evaluation_due == TODAY + timedelta(days=qtl.EVALUATION_DAYS)
    return breach.id


def _click(bot: RunningBot, action: str, breach_id: int, user: str) -> dict[str, Any]:
    msg = {"channel": C_SPONSOR, "ts": "1.0001", "text": "QTL breach", "blocks": []}
    payload = block_action(action, breach_id, user=user, msg=msg)
    assert send(bot, payload)[0] == 200
    return payload


def _submit(
    bot: RunningBot, breach_id: int, values: dict[str, Any], user: str = APPROVER
) -> dict[str, Any]:
    payload = view_submission(
        "qtl_evaluate_modal",
        values,
        user=user,
        private_metadata=json.dumps({"breach_id": breach_id}),
    )
    status, raw = send(bot, payload)
    assert status == 200
    return json.loads(raw) if raw.strip() else {}


def _text(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def _choice(value: str) -> dict[str, Any]:
    return {"value": {"type": "static_select", "selected_option": {"value": value}}}


def test_closing_needs_the_evaluation_and_an_approver(
    world: World, bot: RunningBot, fake_slack: FakeSlack
) -> None:
    breach_id = _open_breach(world)
    # A sponsor member may not evaluate: told, no modal.
    _click(bot, "qtl_evaluate", breach_id, SPONSOR)
    wait_until(lambda: ephemerals(fake_slack, SPONSOR))
    assert "Only sponsor approvers" in ephemerals(fake_slack, SPONSOR)[0]
    assert fake_slack.calls_to("views.open") == []
    # The approver's click opens the evaluation modal.
    click = _click(bot, "qtl_evaluate", breach_id, APPROVER)
    (opened,) = fake_slack.wait_for("views.open")
    assert opened.params["trigger_id"] == click["trigger_id"]
    view = opened.params["view"]
    assert view["callback_id"] == "qtl_evaluate_modal"
    validate_calls([opened])
    # Submitted empty: every required field has its error in the modal; nothing closed.
    answer = _submit(bot, breach_id, {})
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {
        "systemic",
        "root_cause",
        "impact",
        "action_needed",
        "remedial",
    }
    partial = _submit(bot, breach_id, {"systemic": _choice("no"), "root_cause": _text("x")})
    assert set(partial["errors"]) == {"impact", "action_needed", "remedial"}
    complete = {
        "systemic": _choice("yes"),
        "root_cause": _text("Site 12 misread the visit window"),
        "impact": _text("No impact on participants' safety; data for 3 visits re-checked"),
        "action_needed": _choice("yes"),
        "remedial": _text("Retrain site 12"),
        "action_title": _text("Retrain site 12 on visit windows"),
        "action_owner": {"value": {"type": "users_select", "selected_user": APEX_PM}},
        "action_due": {
            "value": {
                "type": "datepicker",
                "selected_date": (TODAY + timedelta(days=14)).isoformat(),
            }
        },
    }
    # A non-approver cannot close, even with everything filled in.
    refused = _submit(bot, breach_id, complete, user=SPONSOR)
    assert "Only sponsor approvers" in json.dumps(refused["errors"])
    assert _breaches(world)[0].status == BreachStatus.OPEN
    assert _submit(bot, breach_id, complete) == {}
    (breach,) = _breaches(world)
    assert breach.status == BreachStatus.CLOSED and breach.systemic is True
    assert breach.signer_name == "Ann Approver" and breach.signature_method == "acknowledged"
    with world.db.read() as s:
        (item,) = s.scalars(select(ActionItem).where(ActionItem.id.in_(breach.action_ids or [])))
        assert item.owner_user_id == APEX_PM
    # The closure is posted with the same manifest as an approval's decision.
    wait_until(lambda: [m for m in fake_slack.posted(C_SPONSOR) if "closed" in m["text"]])
    closed = [m for m in fake_slack.posted(C_SPONSOR) if "closed" in m["text"]][0]
    said = json.dumps(closed["blocks"], ensure_ascii=False)
    assert "*Meaning:* Evaluated and closed" in said and "Acknowledged by Ann Approver" in said
    # Closed: closing again is refused.
    again = _submit(bot, breach_id, complete)
    assert "already closed" in json.dumps(again["errors"])


def test_assign_owner_sets_the_evaluation_owner(
    world: World, bot: RunningBot, fake_slack: FakeSlack
) -> None:
    breach_id = _open_breach(world)
    _click(bot, "qtl_assign", breach_id, SPONSOR)
    (opened,) = fake_slack.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == "qtl_assign_modal"
    values = {"owner": {"value": {"type": "users_select", "selected_user": APPROVER}}}
    payload = view_submission(
        "qtl_assign_modal",
        values,
        user=SPONSOR,
        private_metadata=json.dumps({"breach_id": breach_id}),
    )
    assert send(bot, payload) == (200, "")
    assert _breaches(world)[0].owner_user_id == APPROVER


def test_export_lists_every_breach_once(world: World) -> None:
    _limit(world)
    periods = [iso_week_label(TODAY - timedelta(days=7 * n)) for n in range(3)]
    for user, period in [(APEX_PM, p) for p in periods] + [("ULAB", periods[0])]:
        approval_id = _report(world, 9, period=period, user=user)
        with world.db.write() as s:
            approvals.decide(s, world.actor(APPROVER), approval_id, approve=True)
    breaches = _breaches(world)
    assert len(breaches) == 4
    out = io.StringIO()
    with world.db.read() as s:
        assert export_qtl(s, out, study="ONC-301") == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sorted(int(r["breach"]) for r in rows) == [b.id for b in breaches]
    assert all(r["limit"] == "≤ 5" and r["rationale"].startswith("Protocol") for r in rows)
    assert {r["status"] for r in rows} == {"open"}
    # A vendor sees its own KPIs' breaches only; Markdown has a header and one line each.
    md = io.StringIO()
    with world.db.read() as s:
        assert export_qtl(s, md, fmt="md", actor=world.actor("ULAB")) == 1
    assert len(md.getvalue().splitlines()) == 3 and "CentraLab" in md.getvalue()


def test_open_breaches_in_status_digest_home_and_overdue_nudges(
    world: World, slash: SlashClient
) -> None:
    breach_id = _open_breach(world)
    with world.db.write() as s:
        qtl.assign(s, world.actor(SPONSOR), breach_id, team_id="T1", user_id=APPROVER)
    sponsor = slash.send("status ONC-301", APPROVER, C_SPONSOR)
    assert "Open QTL breaches (1)" in sponsor.text and f"#{breach_id}" in sponsor.text
    assert "Open QTL breaches (1)" in slash.send("status ONC-301", APEX_PM, C_APEX).text
    assert "QTL" not in slash.send("status ONC-301", LAB_PM, C_LAB).text
    with world.db.read() as s:
        links = {link.channel_id: link for link in s.scalars(select(ChannelLink))}
        digests = {c: render(compose(s, links[c], NOW)) for c in (C_SPONSOR, C_APEX)}
        home = home_for(s, world.actor(APPROVER), today=TODAY)
        late = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)  # the day after evaluation was due
        nudge = compose_nudge(s, "T1", APPROVER, late, "UTC")
        on_time = compose_nudge(s, "T1", APPROVER, NOW, "UTC")
    assert "Open QTL breaches: 1" in digests[C_SPONSOR].text + json.dumps(
        digests[C_SPONSOR].blocks, ensure_ascii=False
    )
    assert "QTL" not in json.dumps(digests[C_APEX].blocks)  # the sponsor digest's only
    assert [b.id for b in home.breaches] == [breach_id]
    published = _open_home(slash.bot, slash.fake, APPROVER)
    assert "Open QTL breaches" in json.dumps(published, ensure_ascii=False)
    assert nudge is not None and on_time is None
    said = json.dumps(nudge.blocks, ensure_ascii=False)
    assert f"QTL breach #{breach_id} ONC-301: evaluate the Protocol deviations breach" in said


def test_a_sponsor_approvers_own_value_is_checked_at_once(world: World) -> None:
    _limit(world)
    with world.db.write() as s:
        rep = kpis.report(s, world.actor(APPROVER), today=TODAY, study="ONC-301", kpi=KPI, value=8)
        assert rep.approval_id is None  # approved at once: the moment of truth
    (breach,) = _breaches(world)
    assert breach.org_id == world.sponsor_id
    # The sponsor's own KPI: told in the sponsor channel only.
    assert [r.period_key for r in _qtl_rows(world)] == [f"open:{C_SPONSOR}"]


def test_part11_closure_is_signed_with_the_pin(
    world: World, bot: RunningBot, fake_slack: FakeSlack
) -> None:
    breach_id = _open_breach(world)
    with world.db.write() as s:
        directory.update_study(s, SYSTEM, code="ONC-301", signatures="part11")
        signatures.set_pin(s, world.actor(APPROVER), "246810", "246810")
    _click(bot, "qtl_evaluate", breach_id, APPROVER)
    (opened,) = fake_slack.wait_for("views.open")
    assert "pin" in {b.get("block_id") for b in opened.params["view"]["blocks"]}
    complete = {
        "systemic": _choice("no"),
        "root_cause": _text("One site"),
        "impact": _text("None"),
        "action_needed": _choice("no"),
        "remedial": _text("None needed: isolated"),
    }
    wrong = _submit(bot, breach_id, {**complete, "pin": _text("000000")})
    assert set(wrong["errors"]) == {"pin"}
    assert _breaches(world)[0].status == BreachStatus.OPEN
    assert _submit(bot, breach_id, {**complete, "pin": _text("246810")}) == {}
    (breach,) = _breaches(world)
    assert breach.status == BreachStatus.CLOSED and breach.signature_method == signatures.SIGNED
    wait_until(lambda: _settled(world))
    closed = [m for m in fake_slack.posted(C_SPONSOR) if "closed" in m["text"]]
    assert "Signed by Ann Approver" in json.dumps(closed[0]["blocks"])


def test_cli_limits_and_export(
    world: World, cli_env: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["qtl", "set", "ONC-301", KPI, "--max", "5", "--rationale", "Protocol 9.2"]
    assert main([*args, "--as", APEX_PM]) == 2
    assert "Only sponsor approvers" in capsys.readouterr().err
    assert main(["qtl", "set", "ONC-301", KPI, "--min", "5"]) == 2
    assert main(args) == 0
    assert main(["qtl", "list", "ONC-301"]) == 0
    assert "Protocol 9.2" in capsys.readouterr().out
    for user in (APEX_PM, LAB_PM):
        approval_id = _report(world, 9, user=user)
        with world.db.write() as s:
            approvals.decide(s, world.actor(APPROVER), approval_id, approve=True)
    out = tmp_path / "qtl.csv"
    assert main(["export", "qtl", "--study", "ONC-301", "--out", str(out)]) == 0
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 2
    assert main(["export", "qtl", "--as", LAB_PM, "--out", str(out)]) == 0
    (row,) = csv.DictReader(out.open(encoding="utf-8"))
    assert row["parameter"] == "Protocol deviations (CentraLab)"
    assert main(["export", "kpis", "--format", "md"]) == 2
    with world.db.read() as s:
        lim_id = s.scalars(select(QualityLimit.id)).one()
    assert main(["qtl", "off", str(lim_id)]) == 0
    with world.db.read() as s:
        assert s.get_one(QualityLimit, lim_id).active is False
