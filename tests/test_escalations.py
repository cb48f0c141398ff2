"""Escalation of overdue actions, end to end: the scheduler's runner counts each owner's
working days (their weekend and public holidays), escalates once at or after 09:00 where
the owner is, DMs the lead of the owner's organisation and posts in the sponsor channel,
and a second replica finds nothing left to do."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from crobot.bot.cli import main
from crobot.digests.delivery import ChannelPacer, Delivery, Outcome, delivery_client
from crobot.digests.runner import DigestRunner
from crobot.services import actions, directory, escalations
from crobot.services.actor import SYSTEM
from crobot.services.errors import UserError
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import (
    ActionItem,
    AuditEvent,
    DigestRun,
    DigestRunState,
    Person,
    Role,
    Study,
)
from tests.approval_support import wait_until
from tests.conftest import TODAY, World
from tests.dbstate import assert_unchanged, snapshot
from tests.digest_helpers import Clock
from tests.fake_slack import FakeSlack
from tests.slack_payloads import validate_calls

FRIDAY = date(2026, 11, 20)  # every action below was due that Friday
# Apex's owner is in Asia/Kolkata (India): Tue 24 Nov 2026 is Guru Nanak's birthday there,
# so Mon 23, Wed 25 and Thu 26 are the three working days overdue.
WED_0930_IST = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
# CentraLab's owner is in Europe/Dublin: Mon, Tue, Wed — three working days on Wed 25.
WED_0905_DUBLIN = datetime(2026, 11, 25, 9, 5, tzinfo=UTC)
# The sponsor's owner is in America/New_York: three working days on Wed 25 too.
WED_0905_NEW_YORK = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)
THU_0805_IST = datetime(2026, 11, 26, 2, 35, tzinfo=UTC)
THU_0905_IST = datetime(2026, 11, 26, 3, 35, tzinfo=UTC)


def _runner(world: World, fake: FakeSlack, clock: Clock) -> DigestRunner:
    client = delivery_client(WebClient(token="xoxb-test", base_url=fake.base_url))
    runtime = Runtime(world.db, now=clock)
    return DigestRunner(runtime, Delivery(runtime, client, pacer=ChannelPacer(0.0)))


def _overdue(world: World, owner: str, title: str) -> int:
    with world.db.write() as s:
        return actions.add(
            s,
            world.actor("UAPPROVER"),
            today=TODAY,
            allow_past=True,
            study="ONC-301",
            title=title,
            owner_user_id=owner,
            due=FRIDAY,
        ).id


def _escalated(db: Database) -> dict[int, datetime | None]:
    with db.read() as s:
        rows = s.execute(select(ActionItem.id, ActionItem.escalated_at)).all()
    return {row.id: row.escalated_at for row in rows}


def _texts(fake: FakeSlack, channel: str) -> list[str]:
    return [str(m.get("text", "")) for m in fake.posted(channel)]


@pytest.fixture
def leads(world: World) -> World:
    world.add_person("T1", "ULEAD", "Apex CRO", "vendor_lead", name="Vera Lead")
    world.add_person("T1", "USLEAD", "Helix Pharma", "sponsor_lead", name="Stan Lead")
    return world


def test_an_overdue_action_is_escalated_once_to_the_lead_and_the_sponsor_channel(
    leads: World, fake_slack: FakeSlack
) -> None:
    world = leads
    apex = _overdue(world, "UAPEX", "Send the monitoring report")
    lab = _overdue(world, "ULAB", "Ship the kits")
    sponsor = _overdue(world, "USPONSOR", "Sign the budget")
    closed = _overdue(world, "UAPEX", "Answer the queries")
    with world.db.write() as s:  # closed: never escalated
        actions.complete(s, world.actor("UAPEX"), closed)
    clock = Clock(WED_0930_IST)
    runner = _runner(world, fake_slack, clock)

    # Apex: two working days (Tuesday was a holiday in India); CentraLab: three, but it is
    # 04:00 in Dublin; the sponsor: three, but 23:00 the evening before in New York.
    assert runner.escalate() == []
    assert set(_escalated(world.db).values()) == {None}

    clock.set(WED_0905_DUBLIN)  # CentraLab: nobody to DM (no lead), the sponsor told
    [lab_post] = runner.escalate()
    assert lab_post.state == "sent"
    [post] = fake_slack.posted("CSPONSOR")
    assert "Ship the kits" in post["text"] and "overdue 3 working day(s)" in post["text"]
    assert "CentraLab has no lead registered" in str(post["blocks"])

    clock.set(WED_0905_NEW_YORK)  # the sponsor's own action: its sponsor lead by DM
    assert sorted(o.state for o in runner.escalate()) == ["sent", "sent"]
    assert "Sign the budget" in _texts(fake_slack, "DSLEAD")[0]

    clock.set(THU_0805_IST)  # Apex reached three working days, but not yet 09:00
    assert runner.escalate() == []
    clock.set(THU_0905_IST)
    assert sorted(o.state for o in runner.escalate()) == ["sent", "sent"]
    [dm] = fake_slack.posted("DLEAD")
    assert "Send the monitoring report" in dm["text"] and "Apex CRO" in dm["text"]
    assert "overdue 3 working day(s) (threshold 3)" in dm["text"]
    assert "<@ULEAD>" in str(fake_slack.posted("CSPONSOR")[-1]["blocks"])  # lead(s) told
    assert fake_slack.posted("CAPEX") == [] and fake_slack.posted("CLAB") == []

    # A second replica, at the same time and the next morning, finds nothing to do.
    again = _runner(world, fake_slack, Clock(THU_0905_IST))
    assert again.escalate() == [] and runner.escalate() == []
    with world.db.read() as s:
        rows = list(s.scalars(select(DigestRun).where(DigestRun.target.startswith("escalate:"))))
        events = list(
            s.scalars(select(AuditEvent).where(AuditEvent.action == escalations.ESCALATE))
        )
    assert {r.state for r in rows} == {DigestRunState.SENT} and len(rows) == 5
    assert sorted(int(e.subject_id or 0) for e in events) == sorted([apex, lab, sponsor])
    assert {a for a, at in _escalated(world.db).items() if at is not None} == {apex, lab, sponsor}
    assert len(fake_slack.posted("CSPONSOR")) == 3
    validate_calls(fake_slack.calls_to("chat.postMessage"))


def test_two_replicas_escalating_together_post_once(leads: World, fake_slack: FakeSlack) -> None:
    world = leads
    _overdue(world, "UAPEX", "Send the monitoring report")
    runners = [_runner(world, fake_slack, Clock(THU_0905_IST)) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[list[Outcome]] = [[], []]

    def run(i: int) -> None:
        start.wait()
        results[i] = runners[i].escalate()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: len(fake_slack.posted("CSPONSOR")) + len(fake_slack.posted("DLEAD")) >= 2)
    with world.db.read() as s:
        states = list(
            s.scalars(select(DigestRun.state).where(DigestRun.target.startswith("escalate:")))
        )
    assert sorted(states) == [DigestRunState.SENT, DigestRunState.SENT]
    assert len(fake_slack.posted("CSPONSOR")) == 1 and len(fake_slack.posted("DLEAD")) == 1


def test_the_threshold_is_per_study_and_zero_turns_it_off(
    leads: World, cli_env: Database, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    world = leads
    _overdue(world, "UAPEX", "Send the monitoring report")
    assert main(["study", "update", "ONC-301", "--escalate-after", "0"]) == 0
    assert "not escalated" in capsys.readouterr().out
    runner = _runner(world, fake_slack, Clock(datetime(2026, 12, 4, 4, 0, tzinfo=UTC)))
    assert runner.escalate() == []
    assert main(["study", "update", "ONC-301", "--escalate-after", "5"]) == 0
    assert "after 5 working day(s)" in capsys.readouterr().out
    # Mon 23, Wed 25, Thu 26, Fri 27 (Tue a holiday in India): four — not yet five.
    runner = _runner(world, fake_slack, Clock(datetime(2026, 11, 27, 4, 0, tzinfo=UTC)))
    assert runner.escalate() == []
    runner = _runner(world, fake_slack, Clock(datetime(2026, 11, 30, 4, 0, tzinfo=UTC)))
    assert [o.state for o in runner.escalate()] == ["sent", "sent"]
    with world.db.read() as s:
        assert s.scalars(select(Study.escalate_after_days)).one() == 5


def test_bad_thresholds_and_misplaced_lead_roles_are_refused(
    world: World, cli_env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    db = cli_env
    before = snapshot(db)
    assert main(["study", "update", "ONC-301", "--escalate-after", "-1"]) != 0
    assert main(["study", "update", "ONC-301", "--escalate-after", "61"]) != 0
    # A vendor's person cannot be the sponsor's lead, nor the sponsor's a vendor lead.
    assert main(["person", "update", "UAPEX", "--team", "T1", "--role", "sponsor_lead"]) != 0
    assert "needs a sponsor organisation" in capsys.readouterr().err
    with pytest.raises(UserError, match="needs a vendor organisation"), db.write() as s:
        directory.update_person(s, SYSTEM, team_id="T1", user_id="USPONSOR", role="vendor_lead")
    assert_unchanged(db, before)
    assert main(["person", "update", "UAPEX", "--team", "T1", "--role", "vendor_lead"]) == 0
    assert "vendor_lead" in capsys.readouterr().out
    with db.read() as s:
        assert [p.slack_user_id for p in escalations.leads_of(s, world.apex_id)] == ["UAPEX"]
        person = s.scalars(select(Person).where(Person.slack_user_id == "UAPEX")).one()
        assert person.role == Role.VENDOR_LEAD


def test_working_days_skip_weekends_and_each_countrys_holidays() -> None:
    count = escalations.working_days_overdue
    assert count(FRIDAY, date(2026, 11, 26), "IN") == 3  # Tue 24 Nov: a holiday in India
    assert count(FRIDAY, date(2026, 11, 26), "IE") == 4
    assert count(FRIDAY, date(2026, 11, 27), "US") == 4  # Thanksgiving, Thu 26 Nov
    assert count(FRIDAY, date(2026, 11, 22), "DE") == 0  # the weekend after the Friday
    assert count(FRIDAY, FRIDAY, "DE") == 0
