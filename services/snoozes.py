"""Snoozing the overdue-action reminder: a person pauses their own nudges until a date
(their local one). Audited as their choice; it changes nothing about the actions."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import Actor
from crobot.storage.models import NudgeSnooze

DAY, MONDAY = "day", "monday"


def until_for(choice: str, today: date) -> date:
    """The last day without a reminder: tomorrow's is skipped ("1 day"), or every day
    before next Monday's ("until Monday")."""
    if choice == DAY:
        return today + timedelta(days=1)
    if choice == MONDAY:
        return today + timedelta(days=(7 - today.weekday()) % 7 or 7) - timedelta(days=1)
    raise ValueError(f"unknown snooze {choice!r}")


def snooze(session: Session, actor: Actor, until: date) -> NudgeSnooze:
    row = session.scalars(
        select(NudgeSnooze).where(
            NudgeSnooze.team_id == actor.team_id, NudgeSnooze.user_id == actor.user_id
        )
    ).first()
    before = None if row is None else audit.snapshot(row, "until")
    if row is None:
        row = NudgeSnooze(team_id=actor.team_id, user_id=actor.user_id, until=until)
        session.add(row)
    else:
        row.until = until
    session.flush()
    audit.record(
        session,
        actor,
        "nudge.snooze",
        "person",
        f"{actor.team_id}:{actor.user_id}",
        before=before,
        after=audit.snapshot(row, "until"),
    )
    return row


def snoozed(session: Session, from_day: date) -> dict[tuple[str, str], date]:
    """(team, user) → last snoozed day, for snoozes that may still apply."""
    rows = session.execute(
        select(NudgeSnooze.team_id, NudgeSnooze.user_id, NudgeSnooze.until).where(
            NudgeSnooze.until >= from_day
        )
    )
    return {(team, user): until for team, user, until in rows}
