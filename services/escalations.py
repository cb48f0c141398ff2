"""Escalation of overdue actions: once an open action is overdue by the study's threshold
(`studies.escalate_after_days`, default 3) in working days of its owner's calendar, the
owner's organisation lead (`vendor_lead` / `sponsor_lead`) is told by DM and the study's
sponsor channels by a post — once.

Once: `action_items.escalated_at` is set by compare-and-set in the transaction that writes
the outbox rows and the audit event, so whichever replica sees the action first escalates
it and the others find nothing to do. The rows are then delivered exactly once by the
outbox (digests/delivery.py; target `escalate:<action id>`, key `<audit seq>:dm:<team>:<user>`
or `<audit seq>:ch:<channel>`: the message is told from the escalation's audit event).

Working days are counted after the due date up to the owner's local today, skipping the
owner's weekend and public holidays (services/workdays.py), as the nudges do: a Friday
deadline is not "3 days overdue" on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from crobot.services import audit
from crobot.services.actor import SYSTEM
from crobot.services.lookup import sponsor_channels
from crobot.services.outbox_rows import enqueue
from crobot.services.user_tz import with_user_place
from crobot.services.workdays import country_of, is_working_day
from crobot.storage.models import (
    ActionItem,
    ActionStatus,
    Organization,
    OrgKind,
    Person,
    Role,
    Study,
    utcnow,
)

TARGET_PREFIX = "escalate:"
ESCALATE = "action.escalate"
LEAD_ROLES = (Role.SPONSOR_LEAD, Role.VENDOR_LEAD)
# Beyond this many calendar days overdue the count stops: the threshold is long passed.
MAX_COUNTED_DAYS = 366


def lead_role(kind: OrgKind) -> Role:
    """The lead role an organisation of this kind may give."""
    return Role.SPONSOR_LEAD if kind == OrgKind.SPONSOR else Role.VENDOR_LEAD


def working_days_overdue(due: date, today: date, country: str | None) -> int:
    """Working days after `due` up to and including `today`."""
    count = 0
    day = due + timedelta(days=1)
    last = min(today, due + timedelta(days=MAX_COUNTED_DAYS))
    while day <= last:
        if is_working_day(day, country):
            count += 1
        day += timedelta(days=1)
    return count


@dataclass(frozen=True)
class Due:
    """An open action whose overdue working days reached its study's threshold."""

    action_id: int
    working_days: int
    zone: str


def _candidates(default_tz: str, latest_due: date) -> Select[Any]:
    stmt = select(ActionItem.id, ActionItem.due_date, Study.escalate_after_days).join(
        Study, Study.id == ActionItem.study_id
    )
    stmt, zone, country = with_user_place(
        stmt, ActionItem.owner_team_id, ActionItem.owner_user_id, default_tz
    )
    return (
        stmt.add_columns(zone, country)
        .where(
            ActionItem.status == ActionStatus.OPEN,
            ActionItem.escalated_at.is_(None),
            Study.escalate_after_days > 0,
            # A threshold of at least one working day needs a day after the due date.
            ActionItem.due_date < latest_due - timedelta(days=1),
        )
        .order_by(ActionItem.due_date, ActionItem.id)
    )


def due_escalations(
    session: Session, now: datetime, default_tz: str, *, zone: str | None = None
) -> list[Due]:
    """Open, not yet escalated actions overdue by their study's threshold, as of each
    owner's local today (optionally only owners living in `zone`); one query."""
    latest_due = now.date() + timedelta(days=2)  # no zone is more than a day ahead of UTC
    out: list[Due] = []
    for aid, due, after, tz, country in session.execute(_candidates(default_tz, latest_due)):
        if zone is not None and tz != zone:
            continue
        today = now.astimezone(ZoneInfo(tz)).date()
        days = working_days_overdue(due, today, country_of(country, tz))
        if days >= after:
            out.append(Due(aid, days, tz))
    return out


def leads_of(session: Session, org_id: int | None) -> list[Person]:
    """The organisation's leads (its people with a lead role), oldest first."""
    if org_id is None:
        return []
    return list(
        session.scalars(
            select(Person)
            .where(Person.org_id == org_id, Person.role.in_(LEAD_ROLES))
            .order_by(Person.id)
        )
    )


def owner_org_id(session: Session, item: ActionItem) -> int | None:
    """The owner's organisation: the action's, else the registered owner's."""
    if item.owner_org_id is not None:
        return item.owner_org_id
    return session.scalars(
        select(Person.org_id).where(
            Person.team_id == (item.owner_team_id or ""),
            Person.slack_user_id == item.owner_user_id,
        )
    ).first()


def escalate(session: Session, due: Due) -> list[str]:
    """Escalate one action, unless another process already did; the outbox targets to
    deliver after the commit."""
    claimed = session.execute(
        update(ActionItem)
        .where(
            ActionItem.id == due.action_id,
            ActionItem.escalated_at.is_(None),
            ActionItem.status == ActionStatus.OPEN,
        )
        .values(escalated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return []
    item = session.get(ActionItem, due.action_id)
    if item is None:  # pragma: no cover - the row was just updated
        return []
    org_id = owner_org_id(session, item)
    leads = leads_of(session, org_id)
    channels = sponsor_channels(session, item.study_id)
    org = session.get(Organization, org_id) if org_id is not None else None
    event = audit.record(
        session,
        SYSTEM,
        ESCALATE,
        "action",
        item.id,
        study_id=item.study_id,
        before={"escalated_at": None},
        after={
            "escalated_at": item.escalated_at,
            "working_days_overdue": due.working_days,
            "threshold": item.study.escalate_after_days,
            "due_date": item.due_date.isoformat(),
            "org": org.name if org is not None else None,
            "leads": [f"{p.team_id}:{p.slack_user_id}" for p in leads],
            "channels": channels,
        },
    )
    audit.seal(session)  # the event's seq names its messages
    target = f"{TARGET_PREFIX}{item.id}"
    for lead in leads:
        enqueue(session, target, f"{event.seq}:dm:{lead.team_id}:{lead.slack_user_id}")
    for channel in dict.fromkeys(channels):
        enqueue(session, target, f"{event.seq}:ch:{channel}")
    return [target] if leads or channels else []


@dataclass(frozen=True)
class Escalated:
    """What an escalation message says (handlers/escalation_news.py renders it): the
    action as its escalation event recorded it, and whether it is still open."""

    action_id: int
    study_code: str
    title: str
    owner_team_id: str | None
    owner_user_id: str
    org_name: str | None
    due: date
    working_days: int
    threshold: int
    leads: list[tuple[str, str]]
    open: bool


def escalated(session: Session, target: str, period_key: str) -> Escalated | None:
    event = audit.event_at(session, int(period_key.partition(":")[0]))
    item = session.get(ActionItem, int(target.removeprefix(TARGET_PREFIX)))
    if event is None or event.action != ESCALATE or item is None:
        return None
    after: dict[str, Any] = event.after or {}
    leads = [str(p).partition(":") for p in after.get("leads", [])]
    return Escalated(
        action_id=item.id,
        study_code=item.study.code,
        title=item.title,
        owner_team_id=item.owner_team_id,
        owner_user_id=item.owner_user_id,
        org_name=after.get("org"),
        due=item.due_date,
        working_days=int(after.get("working_days_overdue", 0)),
        threshold=int(after.get("threshold", 0)),
        leads=[(team, user) for team, _, user in leads],
        open=item.status == ActionStatus.OPEN,
    )


def channel_of(period_key: str) -> str | None:
    """The channel an escalation row posts to (None for a lead's DM)."""
    _, _, rest = period_key.partition(":")
    kind, _, place = rest.partition(":")
    return place if kind == "ch" else None


def dm_of(period_key: str) -> tuple[str, str] | None:
    """The lead (team, user) an escalation row writes to (None for a channel post)."""
    _, _, rest = period_key.partition(":")
    kind, _, place = rest.partition(":")
    if kind != "dm":
        return None
    team, _, user = place.partition(":")
    return team, user
