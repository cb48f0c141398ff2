"""Quarter-end scorecard posts: on the first working morning after a quarter ends (09:00
in each channel's zone, on its country's first working day), a study's sponsor channels
get every vendor's scorecard and each vendor channel only its own.

Each post is an outbox row (digests/delivery.py) with target `scorecard:<channel link
id>` and key `<quarter>:<org id>`: the UNIQUE (target, key) claim makes it once per
channel, quarter and vendor across replicas and restarts. A post missed while crobot was
down goes out when it is back, within `GRACE`; a channel linked after its morning gets
none for that quarter. What a channel may be shown is checked again when the post is
composed (`visibility.scorecard_orgs`), so a vendor channel never gets another vendor's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.services import scorecards
from crobot.services.errors import UserError
from crobot.services.lookup import vendor_org_ids
from crobot.services.quarters import Quarter
from crobot.services.scorecards import Scorecard
from crobot.services.visibility import audience_for_channel, scorecard_orgs
from crobot.services.workdays import country_of, next_working_day
from crobot.storage.models import AudienceKind, ChannelLink, DigestRun, StudyVendor

TARGET_PREFIX = "scorecard:"
POST_HOUR = 9
GRACE = timedelta(days=7)


@dataclass(frozen=True)
class Due:
    link_id: int
    quarter: Quarter
    org_id: int

    @property
    def target(self) -> str:
        return f"{TARGET_PREFIX}{self.link_id}"

    @property
    def key(self) -> str:
        return f"{self.quarter.label}:{self.org_id}"


def parse(target: str, key: str) -> Due | None:
    """The post an outbox row stands for; None for a row that names none."""
    quarter, _, org = key.partition(":")
    link = target.removeprefix(TARGET_PREFIX)
    if not (link.isdigit() and org.isdigit()):
        return None
    try:
        return Due(int(link), Quarter.parse(quarter), int(org))
    except UserError:
        return None


def due_at(link: ChannelLink, q: Quarter) -> datetime:
    """09:00 on the channel's first working day after quarter `q` ended, in its zone."""
    day = next_working_day(q.end + timedelta(days=1), country_of(link.country, link.timezone))
    return datetime.combine(day, time(POST_HOUR), ZoneInfo(link.timezone))


def due_posts(session: Session, now: datetime) -> list[Due]:
    """The scorecard posts due now and not yet claimed, in three queries."""
    links = list(
        session.scalars(
            select(ChannelLink).where(
                ChannelLink.audience.in_([AudienceKind.SPONSOR, AudienceKind.VENDOR])
            )
        )
    )
    if not links:
        return []
    vendors: dict[int, set[int]] = defaultdict(set)
    study_ids = {link.study_id for link in links}
    for study_id, org_id in session.execute(
        select(StudyVendor.study_id, StudyVendor.org_id).where(StudyVendor.study_id.in_(study_ids))
    ):
        vendors[study_id].add(org_id)
    wanted: list[Due] = []
    for link in links:
        q = Quarter.of(now.astimezone(ZoneInfo(link.timezone)).date()).previous()
        at = due_at(link, q)
        if not at <= now <= at + GRACE or link.created_at > at:
            continue
        orgs = scorecard_orgs(audience_for_channel(link), vendors[link.study_id])
        wanted += [Due(link.id, q, org) for org in sorted(orgs)]
    if not wanted:
        return []
    claimed = {
        (target, key)
        for target, key in session.execute(
            select(DigestRun.target, DigestRun.period_key).where(
                DigestRun.target.in_({d.target for d in wanted}),
                DigestRun.period_key.in_({d.key for d in wanted}),
            )
        )
    }
    return [d for d in wanted if (d.target, d.key) not in claimed]


@dataclass(frozen=True)
class Post:
    channel: str
    card: Scorecard


def compose(session: Session, target: str, key: str, now: datetime, default_tz: str) -> Post | None:
    """What one outbox row posts, or None when its channel is gone or may not see that
    vendor's scorecard (any more)."""
    due = parse(target, key)
    link = session.get(ChannelLink, due.link_id) if due is not None else None
    if due is None or link is None:
        return None
    if due.org_id not in scorecard_orgs(
        audience_for_channel(link), vendor_org_ids(session, link.study_id)
    ):
        return None
    today = now.astimezone(ZoneInfo(link.timezone)).date()
    cards = scorecards.build(
        session, link.study, [due.org_id], due.quarter, today=today, default_tz=default_tz
    )
    return Post(link.channel_id, cards[0]) if cards else None
