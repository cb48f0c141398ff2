"""What a scheduler job (or the CLI) does: decide the period, then deliver exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from crobot.digests.delivery import Delivery, Outcome
from crobot.digests.nudges import (
    NUDGE_GRACE,
    NUDGE_HOUR,
    nudge_period,
    overdue_owners,
    owner_zones,
)
from crobot.digests.schedule import Schedule
from crobot.services import escalations, scorecard_posts
from crobot.services.runtime import Runtime
from crobot.services.workdays import (
    country_of,
    is_weekend,
    is_working_day,
    next_working_day,
)
from crobot.storage.models import ChannelLink, DigestRun

log = logging.getLogger(__name__)


def link_country(link: ChannelLink) -> str | None:
    return country_of(link.country, link.timezone)


def working_time(fire: datetime, sched: Schedule, country: str | None) -> datetime | None:
    """When the digest of `fire` goes out: at `fire` on a working day; never for a fire on
    the channel's weekend (skipped, as nudges are); for a public holiday, the same local
    time on the next working day — unless the schedule fires that day anyway, whose digest
    then covers it ("changes since the last digest")."""
    local = fire.astimezone(sched.zone)
    today = local.date()
    if is_working_day(today, country):
        return fire
    if is_weekend(today, country):
        return None
    day = next_working_day(today, country)
    shifted = datetime.combine(day, local.timetz().replace(tzinfo=None), sched.zone)
    own = sched.next_fire(datetime.combine(day, time.min, sched.zone) - timedelta(seconds=1))
    if own is not None and own.astimezone(sched.zone).date() == day:
        return None
    return shifted


FanOutFn = Callable[[list[tuple[int, str]]], list[Outcome]]


@dataclass
class DigestRunner:
    runtime: Runtime
    delivery: Delivery
    grace: timedelta = timedelta(hours=6)
    # Many digests at once ((link id, period key) each): the scheduler's process pool
    # (digests/pool.py), else the delivery's own thread fan-out.
    fan_out: FanOutFn | None = None

    def scheduled(self, link_id: int) -> Outcome | None:
        """Scheduler job body: deliver the period of the latest fire time, if within grace;
        a fire time on the channel's weekend or public holiday waits for `shifted`."""
        period = self.due_period(link_id)
        return None if period is None else self._send_link(link_id, period)

    def due_period(self, link_id: int) -> str | None:
        """The period a digest job for `link_id` delivers now, if any (see `scheduled`)."""
        with self.runtime.db.read() as s:
            link = s.get(ChannelLink, link_id)
            if link is None or not link.digest_enabled:
                return None
            sched, country = Schedule.of(link), link_country(link)
        now = self.runtime.now()
        fire = sched.last_fire(now)
        if fire is None:
            return None
        due = working_time(fire, sched, country)
        if due is None or due > now:
            log.info(
                "digest for link %s at %s falls on a day off in %s; %s",
                link_id,
                fire,
                country,
                f"it goes out {due}" if due else "skipped",
            )
            return None
        if now - due > self.grace:
            log.info("digest for link %s at %s is past the grace window; skipped", link_id, fire)
            return None
        return sched.period_key(fire)

    def send_many(self, items: list[tuple[int, str]]) -> list[Outcome]:
        """Deliver digests ((link id, period key) each) in one fan-out, saying what this
        process did for each, as `_send_link` does."""
        if not items:
            return []
        fan_out = self.fan_out or self.delivery.send_links
        outcomes = fan_out(items)
        for (link_id, period_key), outcome in zip(items, outcomes, strict=True):
            log.info("digest for link %s (%s): %s", link_id, period_key, outcome.state)
        return outcomes

    def _send_link(self, link_id: int, period_key: str) -> Outcome:
        """Deliver, and say what this process did: with replicas, one says "sent" and the
        others "duplicate", which is how an operator (and a test) sees the claim work."""
        outcome = self.delivery.send_link(link_id, period_key)
        log.info("digest for link %s (%s): %s", link_id, period_key, outcome.state)
        return outcome

    def shifted(self) -> list[Outcome]:
        """Digests whose fire time fell on the channel's day off, sent on its next working
        day at the same local time (the period stays the fire time's: still once)."""
        now = self.runtime.now()
        with self.runtime.db.read() as s:
            links = list(s.scalars(select(ChannelLink).where(ChannelLink.digest_enabled.is_(True))))
        out = []
        for link in links:
            sched = Schedule.of(link)
            fire = sched.last_fire(now)
            since = max(link.created_at, link.schedule_changed_at or link.created_at)
            if fire is None or fire < since:
                continue
            due = working_time(fire, sched, link_country(link))
            if due is not None and due != fire and due <= now <= due + self.grace:
                out.append(self._send_link(link.id, sched.period_key(fire)))
        return out

    def catch_up(self) -> list[Outcome]:
        """Send each channel's most recent missed digest once, if within grace: at start,
        and whenever a schedule changed elsewhere (its fire time may have passed before
        this process learnt of the change)."""
        now = self.runtime.now()
        with self.runtime.db.read() as s:
            links = list(s.scalars(select(ChannelLink).where(ChannelLink.digest_enabled.is_(True))))
            done = {
                (t, k)
                for t, k in s.execute(
                    select(DigestRun.target, DigestRun.period_key).where(
                        DigestRun.target.like("link:%")
                    )
                )
            }
        outcomes = []
        claimed = 0
        for link in links:
            sched = Schedule.of(link)
            fire = sched.last_fire(now)
            # A fire time from before the link, or before its schedule last changed, was not
            # this schedule's fire time.
            since = max(link.created_at, link.schedule_changed_at or link.created_at)
            if fire is None or fire < since:
                continue
            key = sched.period_key(fire)
            if (f"link:{link.id}", key) in done:
                claimed += 1
                continue
            due = working_time(fire, sched, link_country(link))
            if due is None or due > now:
                continue  # a day off: skipped, or `shifted` sends it on the next working day
            if now - due > self.grace:
                log.info(
                    "missed digest for %s (%s) is %s old, beyond the %s grace window; skipped",
                    link.channel_id,
                    key,
                    now - fire,
                    self.grace,
                )
                continue
            log.info("catching up missed digest for %s (%s)", link.channel_id, key)
            # One at a time, on purpose: a start-up catch-up is a few channels, and a
            # replica stuck on one post (test_dead_replica) holds one claim, not a batch.
            outcomes.append(self._send_link(link.id, key))
        log.info(
            "catch-up done: %d missed digest(s) sent here, %d already claimed by a run",
            sum(o.state == "sent" for o in outcomes),
            claimed,
        )
        return outcomes

    def current_period(self, link: ChannelLink) -> str | None:
        sched = Schedule.of(link)
        fire = sched.last_fire(self.runtime.now())
        return sched.period_key(fire) if fire else None

    def send(self, link_id: int, *, now: bool = False) -> Outcome:
        """CLI `digest send`: the current period's digest, or (--now) an extra one."""
        with self.runtime.db.read() as s:
            link = s.get(ChannelLink, link_id)
            if link is None:
                return Outcome(None, "skipped", detail="no such channel link")
            period = None if now else self.current_period(link)
        if period is None:
            period = "manual:" + self.runtime.now().strftime("%Y-%m-%dT%H:%MZ")
        return self.delivery.send_link(link_id, period)

    def nudges(self, zone: str) -> list[Outcome]:
        """09:00 in `zone`: one DM per owner of overdue actions living in that zone."""
        now = self.runtime.now()
        with self.runtime.db.read() as s:
            owners = overdue_owners(s, now, self.runtime.default_tz, zone=zone)
        return [self.delivery.send(o.target, nudge_period(o, now)) for o in owners]

    def escalate(self, *, zone: str | None = None) -> list[Outcome]:
        """Escalate every action due for it (services/escalations.py), one transaction
        each, then deliver what each wrote. Not before 09:00 in the owner's zone."""
        now = self.runtime.now()
        with self.runtime.db.read() as s:
            due = escalations.due_escalations(s, now, self.runtime.default_tz, zone=zone)
        out: list[Outcome] = []
        for item in due:
            if now.astimezone(ZoneInfo(item.zone)).hour < NUDGE_HOUR:
                continue
            with self.runtime.db.write() as s:
                targets = escalations.escalate(s, item)
            for target in targets:
                out.extend(self.delivery.resume_pending(target))
        return out

    def scorecards(self) -> list[Outcome]:
        """Quarter-end scorecards due in their channels' mornings and not yet claimed: each
        (channel, quarter, vendor) once, whichever replica gets there first."""
        with self.runtime.db.read() as s:
            due = scorecard_posts.due_posts(s, self.runtime.now())
        out = []
        for d in due:
            outcome = self.delivery.send(d.target, d.key, link_id=d.link_id)
            log.info("scorecard for link %s (%s): %s", d.link_id, d.key, outcome.state)
            out.append(outcome)
        return out

    def nudge_catch_up(self) -> list[Outcome]:
        now = self.runtime.now()
        with self.runtime.db.read() as s:
            zones = owner_zones(s, self.runtime.default_tz)
        out: list[Outcome] = []
        for zone in sorted(zones):
            local = now.astimezone(ZoneInfo(zone))
            nine = local.replace(hour=NUDGE_HOUR, minute=0, second=0, microsecond=0)
            if nine <= local <= nine + NUDGE_GRACE:  # later, "Good morning" is wrong
                out.extend(self.nudges(zone))
        return out
