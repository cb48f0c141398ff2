"""Scheduler start-up: APScheduler 3 jobs built from the channel links' schedule columns.

Deliberate choices:
- One in-memory job store per process. APScheduler's FAQ says a job store cannot be
  shared between processes; replicas coordinate through the DigestRun claim instead.
- Explicit job ids (`digest:<link id>`, `nudge:<zone>`) with `replace_existing=True`, so
  rebuilding from the database is idempotent.
- `coalesce=True` (a backlog of fire times collapses into one run) and
  `misfire_grace_time` = CROBOT_DIGEST_GRACE_HOURS (APScheduler's default of 1 s would
  silently drop a run that starts a little late, e.g. under load).
- Jobs run on the scheduler's own thread pool, never on Bolt's listener workers.
- Digest jobs firing together (every channel at 09:00 somewhere) do not each deliver on a
  job thread: each decides its period and hands it to a batch, delivered BATCH_SECONDS
  later as one fan-out — on CROBOT_DIGEST_PROCESSES worker processes (default: one per
  core; digests/pool.py) when this process runs on the real clock with one workspace's
  token, else on threads here — whose threads never sleep on a channel's pace.
- The audit chain's head is anchored in each study's sponsor channel once a UTC day
  (`anchor`, hourly; the outbox claim makes the first run of the day the only post).
- Quarter-end vendor scorecards (`scorecards`, every few minutes) go out on the first
  working morning after a quarter ends in each channel's zone; the outbox claim keyed by
  channel, quarter and vendor makes each post once across replicas.
- Schedule changes reach every scheduler within seconds: a change made in this process
  re-adds its job at once (`Runtime.schedule_changed`); one made elsewhere (a request-only
  replica, the CLI) is seen by polling a one-row summary of `channel_links` every few
  seconds, which triggers a re-sync and a catch-up, so a fire time that passed before this
  process learnt of the change is still sent (within grace, once: the run claim decides).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from slack_sdk import WebClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crobot.bot.settings import Settings
from crobot.digests.delivery import Delivery, Outcome, delivery_client
from crobot.digests.nudges import NUDGE_HOUR, owner_zones
from crobot.digests.pool import DigestPool, WorkerSpec, default_processes
from crobot.digests.runner import DigestRunner
from crobot.digests.schedule import Schedule
from crobot.handlers.user_tz import fetch_timezone, workspace_client
from crobot.services.runtime import Runtime
from crobot.services.user_tz import owners_to_ask
from crobot.storage.models import ChannelLink

log = logging.getLogger(__name__)

SYNC_MINUTES = 10  # a full rebuild, in case a change was missed
CHANGE_POLL_SECONDS = 5  # schedule changes made by other processes (replicas, the CLI)
ESCALATION_MINUTES = 5  # how late after 09:00 a missed escalation is made up
HOLIDAY_MINUTES = 5  # how late after its local time a holiday-shifted digest may go out
ANCHOR_HOURS = 1  # the audit anchor job; it posts once per study and UTC day
SCORECARD_MINUTES = 10  # quarter-end scorecards: how late after 09:00 local they may go out
BATCH_SECONDS = 1.0  # how long digest jobs firing together are collected into one fan-out
FANOUT_THREADS = 8  # a fan-out in this process (no pool): its threads


class DigestBatch:
    """Digests whose jobs fire together, delivered as one fan-out `window` seconds after the
    first arrives (on a timer thread, not a job thread); outcomes go to `follow_up`."""

    def __init__(
        self,
        deliver: Callable[[list[tuple[int, str]]], list[Outcome]],
        follow_up: Callable[[list[Outcome]], None],
        window: float = BATCH_SECONDS,
    ) -> None:
        self._deliver = deliver
        self._follow_up = follow_up
        self.window = window
        self._items: list[tuple[int, str]] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def add(self, link_id: int, period_key: str) -> None:
        with self._lock:
            self._items.append((link_id, period_key))
            if self._timer is None:
                self._timer = threading.Timer(self.window, self.flush)
                self._timer.daemon = True
                self._timer.name = "crobot-digest-batch"
                self._timer.start()

    def flush(self) -> None:
        """Deliver what is collected (a timer's run, or shutdown's last word)."""
        with self._lock:
            items, self._items = self._items, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if not items:
            return
        try:
            outcomes = self._deliver(items)
        except Exception:  # the database or the pool is gone: the claims say what is left
            log.exception("digest fan-out of %d channel(s) failed; catch-up resends", len(items))
            return
        self._follow_up(outcomes)


class DigestScheduler:
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        client: WebClient,
        *,
        delivery: Delivery | None = None,
        scheduler: BackgroundScheduler | None = None,
    ) -> None:
        self.runtime = runtime
        self.client = client
        self.grace = timedelta(hours=settings.digest_grace_hours)
        self.delivery = delivery or Delivery(
            runtime, delivery_client(client), lease=runtime.outbox_lease
        )
        # Outbox rows still pending (approval posts whose kick failed, a dead replica's
        # expired claims): CROBOT_OUTBOX_SWEEP_SECONDS.
        self.sweep_seconds = settings.outbox_sweep_seconds
        self.pool: DigestPool | None = None
        processes = settings.digest_processes or default_processes()
        if processes > 1 and runtime.wall_clock and runtime.bot_token is None:
            # One workspace, the real clock: what a worker process can rebuild on its own.
            # (Several workspaces fetch each one's token through this process's store.)
            spec = WorkerSpec(
                runtime.db.url,
                client.base_url,
                client.token,
                lease_seconds=runtime.outbox_lease.total_seconds(),
            )
            self.pool = DigestPool(spec, processes, local=self.delivery)
        self.runner = DigestRunner(runtime, self.delivery, self.grace, fan_out=self._fan_out)
        self.batch = DigestBatch(self.runner.send_many, self._follow_up)
        self._links_version: tuple[object, ...] | None = None
        self.scheduler = scheduler or BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=8)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(self.grace.total_seconds())),
            },
        )

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> DigestScheduler:
        self.sync_jobs()
        self._every(self.sync_jobs, "sync", minutes=SYNC_MINUTES)
        # Recovery runs on a job thread so that start-up never waits for Slack.
        self.scheduler.add_job(self.recover, id="recover", replace_existing=True)
        self._every(self.sweep, "outbox", seconds=self.sweep_seconds)
        self._every(self.ask_owner_zones, "zones", hours=1)
        # Hourly, so a process that was down at midnight still anchors that day; the
        # outbox claim (`anchor:<study>`, the UTC day) lets only the first run post.
        self._every(self.anchor, "anchor", hours=ANCHOR_HOURS)
        # A digest whose day was a public holiday goes out at its local time on the next
        # working day: looked for every few minutes (the cron trigger has no such day).
        self._every(self.shifted, "holidays", minutes=HOLIDAY_MINUTES)
        # Overdue actions reaching their study's escalation threshold: the 09:00 nudge job
        # escalates its zone's at once; this catches owners whose job a restart missed.
        self._every(self.escalate, "escalations", minutes=ESCALATION_MINUTES)
        self._every(self.scorecards, "scorecards", minutes=SCORECARD_MINUTES)
        self._every(self.poll_changes, "changes", seconds=CHANGE_POLL_SECONDS)
        self.runtime.schedule_listeners.append(self.on_schedule_changed)
        self.scheduler.start()
        return self

    def _every(self, job: Callable[[], object], job_id: str, **interval: float) -> None:
        self.scheduler.add_job(job, "interval", id=job_id, replace_existing=True, **interval)

    def shutdown(self, wait: bool = True) -> None:
        if self.on_schedule_changed in self.runtime.schedule_listeners:
            self.runtime.schedule_listeners.remove(self.on_schedule_changed)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        if wait:
            self.batch.flush()  # digests whose jobs already ran: not left to the catch-up
        if self.pool is not None:
            self.pool.shutdown()

    def _fan_out(self, items: list[tuple[int, str]]) -> list[Outcome]:
        """Many digests at once: on the worker processes, else on threads here."""
        if self.pool is not None and len(items) > 1:
            return self.pool.deliver(self.runtime.db, items)
        return self.delivery.send_links(items, workers=FANOUT_THREADS)

    def recover(self) -> None:
        """Resume crash leftovers, then send missed digests and nudges within grace."""
        self.ask_owner_zones()
        self._follow_up(self.delivery.resume_pending())
        self._follow_up(self.runner.catch_up())
        self._follow_up(self.runner.nudge_catch_up())
        self.scorecards()

    def scorecards(self) -> None:
        self._follow_up(self.runner.scorecards())

    def shifted(self) -> None:
        self._follow_up(self.runner.shifted())

    def escalate(self) -> None:
        self._follow_up(self.runner.escalate())

    def sweep(self) -> None:
        """Deliver outbox rows left pending: unclaimed ones (an approval whose kick never
        ran or failed) and crash leftovers whose lease has expired. Rows another worker
        still holds are left to it (their own retry job keeps its time)."""
        self._follow_up([o for o in self.delivery.resume_pending() if o.detail != "leased"])

    def anchor(self) -> None:
        """Post today's audit chain anchors (services/anchors.py) unless already posted."""
        day = self.runtime.now().astimezone(UTC).date().isoformat()
        self._follow_up(self.delivery.send_anchors(day))

    def poll_changes(self) -> bool:
        """Re-sync and catch up when any channel link or schedule changed since the last
        look. One aggregate query; True when something changed."""
        with self.runtime.db.read() as s:
            version = tuple(_links_version(s))
        if version == self._links_version:
            return False
        log.info("channel links or schedules changed elsewhere; re-syncing digest jobs")
        self.sync_jobs()
        self._follow_up(self.runner.catch_up())
        return True

    def ask_owner_zones(self) -> int:
        """Ask Slack (`users.info`) for the zone of action owners nobody told us about, so
        their nudge job runs at 09:00 where they are; re-sync if any zone was learnt."""
        with self.runtime.db.read() as s:
            unknown = owners_to_ask(s, now=self.runtime.now())
        learnt = 0
        for team, user in unknown:
            client = workspace_client(self.runtime, self.client, team)
            if client is not None:
                learnt += fetch_timezone(self.runtime, client, team, user) is not None
        if learnt:
            self.sync_jobs()
        return learnt

    # --- jobs ---------------------------------------------------------------------------
    def sync_jobs(self) -> None:
        with self.runtime.db.read() as s:
            self._links_version = tuple(_links_version(s))
            links = list(s.scalars(select(ChannelLink)))
            zones = owner_zones(s, self.runtime.default_tz)
        wanted = set()
        for link in links:
            if link.digest_enabled:
                wanted.add(self._add_link_job(link))
        for zone in zones:
            job_id = f"nudge:{zone}"
            wanted.add(job_id)
            if self.scheduler.get_job(job_id) is not None:
                continue
            self.scheduler.add_job(
                self._nudges,
                CronTrigger(hour=NUDGE_HOUR, minute=0, timezone=ZoneInfo(zone)),
                args=[zone],
                id=job_id,
                replace_existing=True,
            )
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest:") and job.id not in wanted:
                job.remove()

    def _add_link_job(self, link: ChannelLink) -> str:
        job_id = f"digest:{link.id}"
        sched = Schedule.of(link)
        name = f"digest {link.channel_id} {sched.describe()}"
        existing = self.scheduler.get_job(job_id)
        # Unchanged schedule: keep the job as is. Replacing it would recompute its next
        # run time and could drop a fire that is due but not yet executed.
        if existing is not None and existing.name == name:
            return job_id
        self.scheduler.add_job(
            self._digest_due,
            sched.trigger(),
            args=[link.id],
            id=job_id,
            name=name,
            replace_existing=True,
        )
        return job_id

    def on_schedule_changed(self, link_id: int) -> None:
        with self.runtime.db.read() as s:
            link = s.get(ChannelLink, link_id)
        if link is not None and link.digest_enabled:
            self._add_link_job(link)
            return
        try:
            self.scheduler.remove_job(f"digest:{link_id}")
        except JobLookupError:
            pass

    def _digest(self, link_id: int) -> None:
        """One channel's digest job, delivered at once on this thread."""
        outcome = self.runner.scheduled(link_id)
        if outcome is not None:
            self._follow_up([outcome])

    def _digest_due(self, link_id: int) -> None:
        """A digest job's fire: its period joins the batch of digests firing together."""
        period = self.runner.due_period(link_id)
        if period is not None:
            self.batch.add(link_id, period)

    def _nudges(self, zone: str) -> None:
        """09:00 in `zone`: its owners' nudges, then their actions due for escalation."""
        self._follow_up(self.runner.nudges(zone))
        self._follow_up(self.runner.escalate(zone=zone))

    def _follow_up(self, outcomes: list[Outcome]) -> None:
        """Runs still pending (rate limited, unknown outcome, leased) get a one-off retry."""
        for o in outcomes:
            if o.state == "pending" and o.run_id is not None and o.retry_at is not None:
                self.scheduler.add_job(
                    self._retry,
                    "date",
                    run_date=o.retry_at,
                    args=[o.run_id],
                    id=f"retry:{o.run_id}",
                    replace_existing=True,
                )

    def _retry(self, run_id: int) -> None:
        self._follow_up([self.delivery.resume(run_id)])

    def job_ids(self) -> list[str]:
        return sorted(j.id for j in self.scheduler.get_jobs())

    def job(self, job_id: str) -> Any:
        return self.scheduler.get_job(job_id)


def _links_version(session: Session) -> Sequence[object]:
    """What changes when a link is added or its schedule changes (count, latest times)."""
    row = session.execute(
        select(
            func.count(ChannelLink.id),
            func.max(ChannelLink.created_at),
            func.max(ChannelLink.schedule_changed_at),
        )
    ).one()
    return tuple(row)


def start_scheduler(settings: Settings, runtime: Runtime, client: WebClient) -> DigestScheduler:
    """The one call `crobot serve` makes: build jobs from the database and start.

    With CROBOT_SCHEDULER=false the scheduler is built but not started (replicas that
    only answer Slack requests); the DigestRun claim makes either choice safe.
    """
    sched = DigestScheduler(settings, runtime, client)
    if not settings.scheduler_enabled:
        log.info("scheduler disabled (CROBOT_SCHEDULER=false); digests are not scheduled here")
        return sched
    return sched.start()
