"""A rejected value is never a KPI's current value; a pending one is always marked.

The current value of an organisation's KPI for a period is its newest value that was not
rejected (services/kpis.py). `/cro status` used to show a rejected correction as current
and "on target", unmarked. Checked through signed `/cro` requests (status, kpi show,
kpi trend, digest preview, a new report's "was"), and in the digest's chart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crobot.digests.compose import compose
from crobot.handlers import kpi_charts
from crobot.services import approvals, kpis
from crobot.storage.models import ApprovalState, ChannelLink, KpiUpdate
from tests.conftest import APEX_PM, APPROVER, C_APEX, C_SPONSOR, LAB_PM, SPONSOR, TODAY, World
from tests.fake_slack import FakeSlack
from tests.slack_payloads import message_problems
from tests.slash_helpers import SlashClient, slash_bot

THIS_WEEK, LAST_WEEK = "2026-W48", "2026-W47"


def _report(
    world: World,
    user: str,
    kpi: str,
    value: float,
    period: str,
    decide: bool | None,
    org: str | None = None,
) -> int:
    """A vendor's value (entered by `user`, for `org` if given); `decide` approves (True),
    rejects (False) or leaves it pending."""
    with world.db.write() as s:
        rep = kpis.report(
            s,
            world.actor(user),
            today=TODAY,
            study="ONC-301",
            kpi=kpi,
            value=value,
            period=period,
            org=org,
        )
        assert rep.approval_id is not None
        if decide is not None:
            approvals.decide(
                s,
                world.actor(APPROVER),
                rep.approval_id,
                approve=decide,
                reason=None if decide else "not plausible",
            )
        return rep.update.id


@pytest.fixture
def slash(world: World, fake_slack: FakeSlack) -> Iterator[SlashClient]:
    _report(world, APEX_PM, "enrollment", 10, LAST_WEEK, True)
    _report(world, APEX_PM, "enrollment", 15, THIS_WEEK, True)
    # A correction to 30 (which would be on target, >= 20) that the sponsor rejected.
    _report(world, APEX_PM, "enrollment", 30, THIS_WEEK, False)
    _report(world, APEX_PM, "query_aging", 9, THIS_WEEK, None)  # pending
    _report(world, APEX_PM, "compliance_rate", 99, THIS_WEEK, False)  # a rejected first value
    with slash_bot(world.db, fake_slack) as client:
        yield client


def test_status_shows_the_current_value_and_marks_a_pending_one(
    slash: SlashClient, world: World
) -> None:
    for user, channel in ((SPONSOR, C_SPONSOR), (APEX_PM, C_APEX)):
        text = slash.send("status ONC-301", user, channel).text
        assert "Enrolment · Apex CRO: *15* patients ▲ · target 20 (default) ✗" in text, text
        assert "*30*" not in text
        assert "Query aging · Apex CRO: *9* days (pending approval)" in text, text
        assert "Compliance rate" not in text  # its only value was rejected


def test_kpi_show_and_trend_skip_rejected_values_and_mark_pending_ones(
    slash: SlashClient, world: World
) -> None:
    for user, channel in ((SPONSOR, C_SPONSOR), (APEX_PM, C_APEX)):
        show = slash.send("kpi show ONC-301 enrollment", user, channel).text
        assert f"{LAST_WEEK}: *10* · {THIS_WEEK}: *15*" in show and "*30*" not in show, show
        trend = slash.send("kpi trend ONC-301 enrollment", user, channel).text
        assert f"*Apex CRO*: 15 patients in {THIS_WEEK} ▲ +5 (better)" in trend, trend
        assert "target 20 (default) ✗" in trend
        aging = slash.send("kpi show ONC-301 query_aging", user, channel).text
        assert f"{THIS_WEEK}: *9* (pending approval)" in aging, aging
        aging = slash.send("kpi trend ONC-301 query_aging", user, channel).text
        assert "9 days (pending approval) in" in aging, aging
        assert "*99*" not in slash.send("kpi show ONC-301 compliance_rate", user, channel).text


def test_kpi_show_and_trend_draw_a_native_chart_and_a_table(
    slash: SlashClient, world: World
) -> None:
    """One series per organisation the reader may see plus the target; a table of every
    value with its state; the text lines stay below as the fallback. Valid Block Kit."""
    # Enrolment is a CRO's KPI: the sponsor enters CentraLab's (a lab's) on its behalf.
    _report(world, SPONSOR, "enrollment", 4, LAST_WEEK, True, org="CentraLab")
    _report(world, SPONSOR, "enrollment", 6, THIS_WEEK, None, org="CentraLab")
    for user, channel, orgs in (
        (SPONSOR, C_SPONSOR, ["Apex CRO", "CentraLab", "Target (20)"]),
        (APEX_PM, C_APEX, ["Apex CRO", "Target (20)"]),
    ):
        for verb in ("show", "trend"):
            answer = slash.send(f"kpi {verb} ONC-301 enrollment", user, channel)
            blocks = answer.payload["blocks"]
            assert message_problems(answer.payload) == [], verb
            (chart,) = [b for b in blocks if b["type"] == "data_visualization"]
            series = chart["chart"]["series"]
            assert [x["name"] for x in series] == orgs
            assert chart["chart"]["axis_config"]["categories"] == [LAST_WEEK, THIS_WEEK]
            assert series[0]["data"] == [
                {"label": LAST_WEEK, "value": 10},
                {"label": THIS_WEEK, "value": 15},
            ]  # the rejected 30 is nowhere
            (tbl,) = [b for b in blocks if b["type"] == "table"]
            cells = [[c["text"] for c in row] for row in tbl["rows"]]
            assert cells[0] == ["Period", "Organisation", "Value (patients)", "State"]
            if user == SPONSOR:
                assert [THIS_WEEK, "CentraLab", "6", "pending approval"] in cells
            else:
                assert all(row[1] != "CentraLab" for row in cells)
            assert any(b["type"] == "section" for b in blocks)  # the text fallback


def test_digest_preview_skips_rejected_values_and_marks_pending_ones(
    slash: SlashClient, world: World
) -> None:
    for user, channel in ((SPONSOR, C_SPONSOR), (APEX_PM, C_APEX)):
        text = slash.send("digest preview", user, channel).text
        assert "Enrolment — Apex CRO: 15 patients (2026-W48) ▲ +5 since 2026-W47" in text, text
        assert "30 patients" not in text and "Compliance rate" not in text
        assert "Query aging — Apex CRO: 9 days (pending approval) (2026-W48)" in text, text


def test_a_new_report_corrects_the_current_value_not_the_rejected_one(
    slash: SlashClient, world: World
) -> None:
    a = slash.send("kpi report ONC-301 enrollment 16", APEX_PM, C_APEX)
    assert "(was 15)" in a.text, a.text
    with world.db.read() as s:
        rows = s.scalars(select(KpiUpdate).order_by(KpiUpdate.id)).all()
        current_15 = next(r for r in rows if r.value == 15)
        assert rows[-1].value == 16 and rows[-1].supersedes_id == current_15.id
        assert rows[-1].approval_state == ApprovalState.PENDING


def test_the_digest_chart_says_which_values_wait_and_draws_no_rejected_one(
    world: World,
) -> None:
    """A native chart cannot draw a point hollow: the note under it names each plotted value
    that awaits approval; a rejected value is not plotted."""
    for period, value, decide in (
        ("2026-W46", 4, True),
        (LAST_WEEK, 6, True),
        (THIS_WEEK, 5, None),
    ):
        _report(world, LAB_PM, "cost_of_quality", value, period, decide)
    _report(world, LAB_PM, "cost_of_quality", 50, LAST_WEEK, False)  # rejected: not drawn
    with world.db.read() as s:
        link = s.scalars(select(ChannelLink).where(ChannelLink.channel_id == C_SPONSOR)).one()
        view = compose(s, link, datetime(2026, 11, 26, 9, tzinfo=UTC))
    coq = next(k for k in view.kpis if k.key == "cost_of_quality")
    chart, note = kpi_charts.chart(coq, coq.points)
    (series, *rest) = chart["chart"]["series"]
    assert series["name"] == "CentraLab" and [d["value"] for d in series["data"]] == [4, 6, 5]
    assert rest == [] and coq.target is None  # cost of quality has no target line to draw
    assert note["type"] == "context" and "pending approval: CentraLab 2026-W48" in str(note)


def test_status_reads_only_the_last_two_points_and_trends_as_from_all_of_them(
    slash: SlashClient, world: World
) -> None:
    """`/cro status` asks for each organisation's newest two current values only
    (`last_periods=2`, catalogue read once): the same trends as from every point, for
    every channel's audience, rejected and pending values included."""
    from crobot.services.visibility import audience_for_channel

    _report(world, APEX_PM, "enrollment", 4, "2026-W46", True)
    _report(world, APEX_PM, "enrollment", 12, LAST_WEEK, None)  # a pending correction
    _report(world, APEX_PM, "query_aging", 7, "2026-W45", True)
    since = kpis.since_weeks(TODAY, 8)
    cut = 0
    with world.db.read() as s:
        defs = kpis.definitions_by_id(s)
        for link in s.scalars(select(ChannelLink)):
            aud = audience_for_channel(link)
            full = kpis.latest_with_definitions(s, aud, since=since, study_code="ONC-301")
            two = kpis.latest_with_definitions(
                s, aud, since=since, study_code="ONC-301", last_periods=2, definitions=defs
            )
            assert [k.definition.key for k in two] == [k.definition.key for k in full]
            # A KPI missing from the catalogue read earlier (defined meanwhile) is looked up.
            unread = kpis.latest_with_definitions(
                s, aud, since=since, study_code="ONC-301", last_periods=2, definitions={}
            )
            assert [(k.definition.key, k.points) for k in unread] == [
                (k.definition.key, k.points) for k in two
            ]
            cut += sum(len(k.points) > 2 for k in full)
            for f, t in zip(full, two, strict=True):
                by_org: dict[int, list[kpis.Point]] = {}
                for p in f.points:
                    by_org.setdefault(p.org_id, []).append(p)
                assert sorted(t.points, key=lambda p: (p.org_id, p.period_start)) == sorted(
                    (p for pts in by_org.values() for p in pts[-2:]),
                    key=lambda p: (p.org_id, p.period_start),
                )
                assert kpis.trend_of(t.definition, t.points, t.target_of) == kpis.trend_of(
                    f.definition, f.points, f.target_of
                )
    assert cut  # some audience sees more than two points of a KPI: the cut is exercised
