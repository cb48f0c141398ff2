"""`study_status` counts in SQL and loads only the rows an answer shows."""

from __future__ import annotations

from datetime import timedelta

from crobot.services import actions, kpis
from crobot.services.actor import SYSTEM
from crobot.services.lookup import study_by_code
from crobot.services.status import SHOWN, study_status
from crobot.services.visibility import Audience, Scope
from tests.conftest import APEX_PM, LAB_PM, TODAY, World


def test_counts_cover_more_than_the_rows_shown(world: World) -> None:
    with world.db.write() as s:
        for i in range(SHOWN + 5):
            actions.add(
                s,
                SYSTEM,
                today=TODAY,
                allow_past=True,
                study="ONC-301",
                title=f"late {i}",
                owner_user_id=APEX_PM,
                owner_team_id="T1",
                due=TODAY - timedelta(days=1),
            )
        actions.add(
            s,
            SYSTEM,
            today=TODAY,
            study="ONC-301",
            title="lab, not late",
            owner_user_id=LAB_PM,
            owner_team_id="T1",
            due=TODAY + timedelta(days=3),
        )
        for week in range(40, 48):
            kpis.report(
                s,
                world.actor(APEX_PM),
                today=TODAY,
                study="ONC-301",
                kpi="enrollment",
                value=week,
                period=f"2026-W{week}",
            )
    with world.db.read() as s:
        study = study_by_code(s, "ONC-301")
        sponsor = study_status(
            s, study, Audience(study.id, Scope.SPONSOR, None, world.sponsor_id), today=TODAY
        )
        lab = study_status(
            s, study, Audience(study.id, Scope.VENDOR, world.lab_id, world.sponsor_id), today=TODAY
        )
    assert (sponsor.open_actions, sponsor.overdue_count) == (SHOWN + 6, SHOWN + 5)
    assert len(sponsor.overdue_actions) == SHOWN
    assert (sponsor.pending_count, len(sponsor.pending_approvals)) == (8, 8)
    # The lab sees neither Apex's actions nor its approvals.
    assert (lab.open_actions, lab.overdue_count, lab.pending_count) == (1, 0, 0)
