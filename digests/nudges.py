"""Overdue-action nudges: one DM per owner per working day, at 09:00 in the owner's zone.

Not on the owner's Saturday or Sunday; a nudge missed while crobot was down is sent only
within `NUDGE_GRACE` of 09:00 (it still says "Good morning"). Owners whose zone is
unknown are looked up in Slack (`users.info`) before their first nudge (bot/scheduling.py).

An owner's zone is decided by `services.user_tz` (their Person time zone, else the
cached Slack `users.info` zone, else the bot's default zone), for all owners in one query.
Delivery goes through the same exactly-once DigestRun claim as digests, with target
`dm:<team>:<user>` and the owner's local date as the period key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, select
from sqlalchemy.orm import Session

from crobot.digests.render import environment
from crobot.handlers.blockkit import (
    MAX_BLOCKS,
    Block,
    Mrkdwn,
    actions,
    button,
    context,
    fallback,
    lines_block,
    option,
    plain,
    section,
    static_select,
)
from crobot.services.snoozes import DAY, MONDAY, snoozed
from crobot.services.user_tz import S, with_user_place, with_user_zone
from crobot.services.workdays import country_of, is_working_day
from crobot.storage.models import (
    ActionItem,
    ActionStatus,
    BreachStatus,
    KpiDefinition,
    Organization,
    QtlBreach,
    Study,
)

NUDGE_HOUR = 9
NUDGE_GRACE = timedelta(hours=1)
MAX_ITEMS = 20


@dataclass(frozen=True)
class OverdueItem:
    id: int
    study_code: str
    title: str
    due: date
    days_overdue: int
    kind: str = "action"  # or "qtl": a QTL breach whose evaluation this person owns


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


def _owner_zone(stmt: S, default_tz: str) -> tuple[S, ColumnElement[str]]:
    return with_user_zone(stmt, ActionItem.owner_team_id, ActionItem.owner_user_id, default_tz)


def _owner_place(
    stmt: S, default_tz: str
) -> tuple[S, ColumnElement[str], SQLColumnExpression[str | None]]:
    return with_user_place(stmt, ActionItem.owner_team_id, ActionItem.owner_user_id, default_tz)


def _open_overdue_stmt(default_tz: str, latest_due: date) -> Select[Any]:
    stmt = select(
        ActionItem.id,
        ActionItem.owner_team_id,
        ActionItem.owner_user_id,
        Study.code,
        ActionItem.title,
        ActionItem.due_date,
    ).join(Study, Study.id == ActionItem.study_id)
    stmt, zone, country = _owner_place(stmt, default_tz)
    return (
        stmt.add_columns(zone, country)
        .where(ActionItem.status == ActionStatus.OPEN, ActionItem.due_date < latest_due)
        .order_by(ActionItem.due_date, ActionItem.id)
    )


def overdue_owners(
    session: Session, now: datetime, default_tz: str, *, zone: str | None = None
) -> list[Owner]:
    """Owners with overdue open actions and overdue QTL breach evaluations (as of their own
    local today), one query each."""
    # No zone is more than a day ahead of UTC: this bound keeps the scan to candidates.
    latest_due = now.date() + timedelta(days=2)
    owners: dict[tuple[str, str], Owner] = {}
    paused = snoozed(session, now.date() - timedelta(days=1))
    for aid, team, user, code, title, due, tz, country in session.execute(
        _open_overdue_stmt(default_tz, latest_due)
    ):
        if zone is not None and tz != zone:
            continue
        today = now.astimezone(ZoneInfo(tz)).date()
        if due >= today or not is_working_day(today, country_of(country, tz)):
            continue
        if paused.get((team or "", user), date.min) >= today:
            continue  # the owner snoozed their reminders
        owner = owners.setdefault((team or "", user), Owner(team or "", user, tz))
        owner.items.append(OverdueItem(aid, code, title, due, (today - due).days))
    # Owners of overdue QTL breach evaluations are nudged the same way (services/qtl.py).
    for bid, team, user, code, kpi, org, period, due, tz, country in session.execute(
        _overdue_breaches_stmt(default_tz, latest_due)
    ):
        if zone is not None and tz != zone:
            continue
        today = now.astimezone(ZoneInfo(tz)).date()
        if due >= today or not is_working_day(today, country_of(country, tz)):
            continue
        if paused.get((team or "", user), date.min) >= today:
            continue
        owner = owners.setdefault((team or "", user), Owner(team or "", user, tz))
        title = f"evaluate the {kpi} breach ({org}, {period})"
        owner.items.append(OverdueItem(bid, code, title, due, (today - due).days, "qtl"))
    return list(owners.values())


def _breach_owner_zone(stmt: S, default_tz: str) -> tuple[S, ColumnElement[str]]:
    stmt, zone, _ = _breach_owner_place(stmt, default_tz)
    return stmt, zone


def _breach_owner_place(
    stmt: S, default_tz: str
) -> tuple[S, ColumnElement[str], SQLColumnExpression[str | None]]:
    owner = cast(SQLColumnExpression[str], QtlBreach.owner_user_id)
    return with_user_place(stmt, QtlBreach.owner_team_id, owner, default_tz)


def _overdue_breaches_stmt(default_tz: str, latest_due: date) -> Select[Any]:
    stmt = (
        select(
            QtlBreach.id,
            QtlBreach.owner_team_id,
            QtlBreach.owner_user_id,
            Study.code,
            KpiDefinition.label,
            Organization.name,
            QtlBreach.period_label,
            QtlBreach.evaluation_due,
        )
        .join(Study, Study.id == QtlBreach.study_id)
        .join(KpiDefinition, KpiDefinition.id == QtlBreach.kpi_id)
        .join(Organization, Organization.id == QtlBreach.org_id)
    )
    stmt, zone, country = _breach_owner_place(stmt, default_tz)
    return (
        stmt.add_columns(zone, country)
        .where(
            QtlBreach.status == BreachStatus.OPEN,
            QtlBreach.owner_user_id.is_not(None),
            QtlBreach.evaluation_due < latest_due,
        )
        .order_by(QtlBreach.evaluation_due, QtlBreach.id)
    )


def owner_zones(session: Session, default_tz: str) -> set[str]:
    """Zones of everyone who owns an open action (the zones nudge jobs are needed for)."""
    stmt, zone = _owner_zone(select(ActionItem.id), default_tz)
    zones = stmt.with_only_columns(zone).where(ActionItem.status == ActionStatus.OPEN).distinct()
    bstmt, bzone = _breach_owner_zone(select(QtlBreach.id), default_tz)
    owned = QtlBreach.owner_user_id.is_not(None)
    breach_zones = (
        bstmt.with_only_columns(bzone)
        .where(QtlBreach.status == BreachStatus.OPEN, owned)
        .distinct()
    )
    found = set(session.scalars(zones)) | set(session.scalars(breach_zones))
    return {str(z) for z in found} | {default_tz}


def compose_nudge(
    session: Session, team_id: str, user_id: str, now: datetime, default_tz: str
) -> Nudge | None:
    for owner in overdue_owners(session, now, default_tz):
        if owner.team_id == team_id and owner.user_id == user_id:
            return render_nudge(owner)
    return None


def render_nudge(owner: Owner) -> Nudge:
    """Header, one line per item (never cut mid-line), "…and N more", then the hint."""
    tpl = environment().get_template("nudge.j2")
    items = owner.items[:MAX_ITEMS]
    lines = [Mrkdwn(line) for line in tpl.render(items=items).strip().split("\n") if line]
    count = len(owner.items)
    blocks = [section(Mrkdwn(f"*Good morning — you have {count} overdue action item(s):*"))]
    blocks += lines_block(lines, budget=MAX_BLOCKS - 3, total=count, noun="overdue items")
    hint = "Mark one done here or with `/cro action done ID`."
    if any(i.kind == "qtl" for i in owner.items):
        hint += " Evaluate a QTL breach from its post in the sponsor channel."
    blocks.append(context(Mrkdwn(hint)))
    blocks.append(_buttons(items))
    summary = fallback(Mrkdwn(f"You have {count} overdue action item(s)."))
    return Nudge(summary, blocks)


SNOOZE_DAY, SNOOZE_MONDAY, DONE = "nudge_snooze_day", "nudge_snooze_monday", "nudge_done"


def _buttons(items: list[OverdueItem]) -> Block:
    """Snooze (a day / until Monday), and Done for one of the listed actions."""
    elements = [
        button("Snooze 1 day", SNOOZE_DAY, DAY),
        button("Snooze until Monday", SNOOZE_MONDAY, MONDAY),
    ]
    done = [option(f"#{i.id} {i.title}", str(i.id)) for i in items if i.kind == "action"]
    if done:
        select = static_select(done)
        select |= {"action_id": DONE, "placeholder": plain("Mark one done…")}
        elements.append(select)
    return actions(*elements, block_id="nudge_actions")


def nudge_period(owner: Owner, now: datetime) -> str:
    return now.astimezone(ZoneInfo(owner.timezone)).date().isoformat()
