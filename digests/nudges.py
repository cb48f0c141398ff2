"""Overdue-action nudges: one DM per owner per local day, at 09:00 in the owner's zone.

An owner's zone is their Person time zone, else the cached Slack `users.info` zone, else
the bot's default zone. Delivery goes through the same exactly-once DigestRun claim as
digests, with target `dm:<team>:<user>` and the owner's local date as the period key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from crobot.digests.render import environment
from crobot.storage.models import ActionItem, ActionStatus, Person, Study, UserTimezoneCache

NUDGE_HOUR = 9
MAX_ITEMS = 20


@dataclass(frozen=True)
class OverdueItem:
    id: int
    study_code: str
    title: str
    due: date
    days_overdue: int


@dataclass
class Owner:
    team_id: str
    user_id: str
    timezone: str
    items: list[OverdueItem] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"dm:{self.team_id}:{self.user_id}"


@dataclass(frozen=True)
class Nudge:
    text: str
    blocks: list[dict[str, Any]]


def _zone_expr(default_tz: str) -> Any:
    """The owner's zone as services.user_tz decides it (Person, then the users.info cache),
    in SQL so that every owner's zone comes from one query."""
    return func.coalesce(Person.timezone, UserTimezoneCache.timezone, default_tz)


def _with_owner_zone(stmt: Any) -> Any:
    """Join what `_zone_expr` reads: the owner's Person row and cached Slack zone."""
    return stmt.outerjoin(
        Person,
        and_(
            Person.team_id == ActionItem.owner_team_id,
            Person.slack_user_id == ActionItem.owner_user_id,
        ),
    ).outerjoin(
        UserTimezoneCache,
        and_(
            UserTimezoneCache.team_id == ActionItem.owner_team_id,
            UserTimezoneCache.user_id == ActionItem.owner_user_id,
        ),
    )


def _open_overdue_stmt(default_tz: str, latest_due: date) -> Any:
    stmt = select(
        ActionItem.id,
        ActionItem.owner_team_id,
        ActionItem.owner_user_id,
        Study.code,
        ActionItem.title,
        ActionItem.due_date,
        _zone_expr(default_tz),
    ).join(Study, Study.id == ActionItem.study_id)
    return (
        _with_owner_zone(stmt)
        .where(ActionItem.status == ActionStatus.OPEN, ActionItem.due_date < latest_due)
        .order_by(ActionItem.due_date, ActionItem.id)
    )


def overdue_owners(
    session: Session, now: datetime, default_tz: str, *, zone: str | None = None
) -> list[Owner]:
    """Owners with overdue open actions (as of their own local today), one query."""
    # No zone is more than a day ahead of UTC: this bound keeps the scan to candidates.
    latest_due = now.date() + timedelta(days=2)
    owners: dict[tuple[str, str], Owner] = {}
    for aid, team, user, code, title, due, tz in session.execute(
        _open_overdue_stmt(default_tz, latest_due)
    ):
        if zone is not None and tz != zone:
            continue
        today = now.astimezone(ZoneInfo(tz)).date()
        if due >= today:
            continue
        owner = owners.setdefault((team or "", user), Owner(team or "", user, tz))
        owner.items.append(OverdueItem(aid, code, title, due, (today - due).days))
    return list(owners.values())


def owner_zones(session: Session, default_tz: str) -> set[str]:
    """Zones of everyone who owns an open action (the zones nudge jobs are needed for)."""
    stmt = (
        _with_owner_zone(select(_zone_expr(default_tz)).select_from(ActionItem))
        .where(ActionItem.status == ActionStatus.OPEN)
        .distinct()
    )
    return {str(z) for z in session.scalars(stmt)} | {default_tz}


def compose_nudge(
    session: Session, team_id: str, user_id: str, now: datetime, default_tz: str
) -> Nudge | None:
    for owner in overdue_owners(session, now, default_tz):
        if owner.team_id == team_id and owner.user_id == user_id:
            return render_nudge(owner)
    return None


def render_nudge(owner: Owner) -> Nudge:
    tpl = environment().get_template("nudge.j2")
    text = tpl.render(owner=owner, items=owner.items[:MAX_ITEMS], more=len(owner.items) - MAX_ITEMS)
    text = text.strip()
    summary = f"You have {len(owner.items)} overdue action item(s)."
    return Nudge(summary, [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}])


def nudge_period(owner: Owner, now: datetime) -> str:
    return now.astimezone(ZoneInfo(owner.timezone)).date().isoformat()
