"""The outbox: exactly-once delivery of every message crobot sends on its own.

Digests, overdue nudges, failure notices, an approval's request post, decision updates
and the submitter's notices, the audit chain's daily anchors, an enrolment milestone
flagged at risk (or recovered) by the forecast, QTL breaches and warnings, an overdue
action's escalation, quarter-end vendor scorecards (kinds: see `DigestRun`). The protocol,
for one (target, key):
1. Claim: INSERT a `DigestRun` row. The UNIQUE (target, period_key) constraint decides
   which process (or thread) posts; every other claimant gets an IntegrityError and stops.
   Work written by a transaction (an approval's rows) is inserted unclaimed, and the first
   deliverer claims it by compare-and-set (`resume_pending`).
2. Before each attempt, `attempts` is incremented and committed (the first one in the
   claim's own transaction: a claim is made to be attempted). An attempt > 1 means an
   earlier one may have reached Slack (a crash, a timeout or a reset after the request
   was sent), so the channel's history (a DM's, for a direct message) since the row was
   made is searched for the run key, which every post carries in its message
   `metadata`. Found: the row is marked sent, nothing posted. A chat.update is idempotent
   and is simply sent again.
3. Post. Success stores the `ts`, and in the same transaction what the post means (an
   approval's posted copy, for instance). 429 is retried by slack_sdk's rate-limit handler
   (Retry-After honoured, capped so a worker thread never sleeps long); 5xx and
   connection errors come back here and are retried with backoff — always via step 2,
   never blindly, because Slack offers no idempotency key.
4. Permanent errors (channel_not_found, not_in_channel, is_archived, …) mark the row
   failed with the reason; a failed digest claims a one-off notice to a sponsor channel.
5. A row left pending by a crash is taken over by compare-and-set on (claimed_by,
   claimed_at) once its lease has expired, so two replicas never resume it together.
   The scheduler sweeps pending rows periodically; an approval's rows are also kicked
   right after the commit that wrote them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crobot.digests.compose import DigestView, compose
from crobot.digests.fanout import FanOut
from crobot.digests.nudges import compose_nudge
from crobot.digests.render import RenderedDigest, render, render_detail, render_short
from crobot.digests.targets import GONE_PREFIX, target_team
from crobot.handlers import blockkit as bk
from crobot.handlers import escalation_news, forecast_news, installs, qtl_news, scorecard_news
from crobot.handlers.approvals import posts as approval_posts
from crobot.handlers.user_tz import with_token
from crobot.services import anchors, approval_log, escalations
from crobot.services.lookup import sponsor_channels
from crobot.services.runtime import NotInstalled, Runtime
from crobot.storage.models import ChannelLink, DigestRun, DigestRunState

log = logging.getLogger(__name__)

PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "account_inactive",
        "invalid_auth",
        "token_revoked",
        "missing_scope",
        "user_not_found",
        "cannot_dm_bot",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
    }
)
METADATA_EVENT = "crobot_digest_run"
APPROVAL_METADATA_EVENT = "crobot_approval"
FORECAST_EVENT = forecast_news.METADATA_EVENT
QTL_EVENT = qtl_news.METADATA_EVENT
ESCALATION_EVENT = escalation_news.METADATA_EVENT
SCORECARD_EVENT = scorecard_news.METADATA_EVENT
HISTORY_PAGES = 25  # 5,000 messages since a run's first attempt
# Slack's refusals of a message's size or shape: a digest is then posted in a shorter form.
TOO_BIG = frozenset({"invalid_blocks", "msg_too_long"})
THREAD_PREFIX = "thread:"
MAX_RETRY_AFTER = 30.0  # longer waits are rescheduled, not slept in a worker thread
DETAIL_CACHE = 4096  # digests whose thread replies are kept rendered (a few KB each)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps Retry-After), but only for short waits."""

    def __init__(self, max_retry_count: int = 3, max_wait: float = MAX_RETRY_AFTER) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return retry_after(response.headers) <= self.max_wait


def retry_after(headers: Any) -> float:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def delivery_client(base: WebClient) -> WebClient:
    """A client for non-idempotent posts: retries only what Slack provably did not perform.

    The app's client also retries connection errors and 5xx automatically; for
    chat.postMessage that could post twice, so delivery handles those itself (step 2).
    """
    return WebClient(
        token=base.token,
        base_url=base.base_url,
        timeout=base.timeout,
        retry_handlers=[CappedRateLimitRetryHandler()],
    )


class ChannelPacer:
    """At most one post per channel per `interval` seconds on average (Slack's ~1/s per
    channel), allowing a short burst of `burst` posts as Slack does."""

    def __init__(self, interval: float = 1.0, burst: int = 1) -> None:
        self.interval = interval
        self.burst = max(1, burst)
        self._due: dict[str, float] = {}  # when the channel's bucket is empty again
        self._lock = threading.Lock()

    def ready_at(self, channel: str) -> float:
        """When (time.monotonic) `wait` would no longer sleep for `channel`."""
        with self._lock:
            return self._due.get(channel, 0.0) - (self.burst - 1) * self.interval

    def wait(self, channel: str) -> None:
        with self._lock:
            now = time.monotonic()
            due = max(now, self._due.get(channel, 0.0))
            at = max(now, due - (self.burst - 1) * self.interval)
            self._due[channel] = due + self.interval
        if at > now:
            time.sleep(at - now)


@dataclass(frozen=True)
class Outcome:
    run_id: int | None
    state: str  # sent | failed | pending | duplicate | skipped
    ts: str | None = None
    detail: str | None = None
    retry_at: datetime | None = None


@dataclass
class Payload:
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    ts: str | None = None  # set: rewrite that message (chat.update) instead of posting
    metadata_event: str = METADATA_EVENT
    thread_ts: str | None = None  # set: a reply in that message's thread
    shorter: Payload | None = None  # posted instead if Slack refuses this one's size
    thread: list[str] = field(default_factory=list)  # a digest's parts to detail in its thread
    metadata: dict[str, Any] = field(default_factory=dict)  # more for the event payload
    # The thread parts rendered from the very view this digest was composed from (no
    # thread_ts yet): each reply is posted from here instead of composing the digest again.
    details: dict[str, Payload] = field(default_factory=dict)


class _Transient(Exception):
    """Slack's answer is unknown or temporary; the next attempt checks history first."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _Permanent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Deferred(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def run_key(target: str, period_key: str) -> str:
    return f"{target}|{period_key}"


@dataclass
class Delivery:
    runtime: Runtime
    client: WebClient
    worker_id: str = field(default_factory=worker_identity)
    lease: timedelta = timedelta(minutes=2)
    max_tries: int = 4
    backoff: float = 1.0
    give_up_after: int = 12  # attempts across restarts before a run is marked failed
    pacer: ChannelPacer = field(default_factory=ChannelPacer)
    sleep: Callable[[float], None] = time.sleep
    # Test hook: called after the claim is committed and before anything is posted.
    after_claim: Callable[[int], None] | None = None
    # Several workspaces: the one this copy posts to (its client holds that bot token).
    team_id: str | None = None
    # A fan-out (digests/fanout.py) takes a sent digest's thread rows to post when the
    # channel's pace allows, instead of this worker sleeping on the pacer for each.
    defer_thread: Callable[[str, list[DigestRun]], None] | None = None
    # Thread replies rendered with their parent, by parent run id (see Payload.details).
    # Only a cache: a reply not found here is composed as of its parent's time, as after a
    # restart. Shared by reference with the per-workspace copies `replace` makes.
    details: dict[int, dict[str, Payload]] = field(default_factory=dict, repr=False)

    # --- public API ---------------------------------------------------------------
    def send(self, target: str, period_key: str, *, link_id: int | None = None) -> Outcome:
        """Deliver (target, period) unless another claim already owns it."""
        run = self._claim(target, period_key, link_id)
        if run is None:
            return self._existing(target, period_key)
        if self.after_claim is not None:
            self.after_claim(run.id)
        return self._deliver(run.id, first=run)

    def send_anchors(self, day: str) -> list[Outcome]:
        """Post the audit chain's head to every study's sponsor channel, once per day."""
        with self.runtime.db.read() as s:
            study_ids = anchors.studies(s)
        return [self.send(anchors.target(study_id), day) for study_id in study_ids]

    def send_link(self, link_id: int, period_key: str) -> Outcome:
        return self.send(f"link:{link_id}", period_key, link_id=link_id)

    def send_links(self, items: list[tuple[int, str]], *, workers: int = 8) -> list[Outcome]:
        """Fan out many channels' digests on private threads (never Bolt's workers).

        Channels are distinct, so per-channel pacing holds; a digest's thread replies wait
        for their channel's pace in a queue while the threads go on with other channels
        (digests/fanout.py); the workspace-wide 429s are absorbed by the capped rate-limit
        handler or rescheduled.
        """
        return FanOut(self, items, workers).run()

    def deliver_thread_row(self, run: DigestRun) -> Outcome | None:
        """A thread reply's row as written with its sent parent: taken over and attempted
        in one write transaction (compare-and-set: only one process gets it)."""
        taken = self._take_and_attempt(run)
        return None if taken is None else self._deliver(run.id, first=taken)

    def resume_pending(self, target: str | None = None) -> list[Outcome]:
        """Deliver pending rows (of one `target`, or all): unclaimed ones at once, crash
        leftovers once their lease has expired."""
        outcomes = []
        for run in self._pending_runs(target):
            leased_until = run.claimed_at + self.lease
            if run.claimed_by is not None and leased_until > self.runtime.now():
                outcomes.append(Outcome(run.id, "pending", detail="leased", retry_at=leased_until))
                continue
            taken = self._take_and_attempt(run)
            if taken is not None:
                outcomes.append(self._deliver(run.id, first=taken))
        return outcomes

    def resume(self, run_id: int) -> Outcome:
        with self.runtime.db.read() as s:
            run = s.get(DigestRun, run_id)
        if run is None or run.state != DigestRunState.PENDING:
            return Outcome(run_id, "duplicate")
        if run.claimed_by == self.worker_id:
            return self._deliver(run_id)
        taken = None
        if run.claimed_at + self.lease <= self.runtime.now():
            taken = self._take_and_attempt(run)
        if taken is None:
            return Outcome(run_id, "pending", detail="owned elsewhere")
        return self._deliver(run_id, first=taken)

    # --- claim ----------------------------------------------------------------------
    def _claim(self, target: str, period_key: str, link_id: int | None) -> DigestRun | None:
        """The claimed row, its first attempt already counted (one write transaction, not
        two); None if another claim owns (target, period)."""
        try:
            with self.runtime.db.write() as s:
                run = DigestRun(
                    target=target,
                    period_key=period_key,
                    channel_link_id=link_id,
                    state=DigestRunState.PENDING,
                    attempts=1,
                    claimed_by=self.worker_id,
                    claimed_at=self.runtime.now(),
                    created_at=self.runtime.now(),
                )
                s.add(run)
                s.flush()
                s.expunge(run)
                return run
        except IntegrityError:
            return None

    def _unclaimed(self, target: str, period_key: str) -> DigestRun:
        now = self.runtime.now()
        return DigestRun(
            target=target,
            period_key=period_key,
            state=DigestRunState.PENDING,
            attempts=0,
            claimed_by=None,
            claimed_at=now,
            created_at=now,
        )

    def _existing(self, target: str, period_key: str) -> Outcome:
        with self.runtime.db.read() as s:
            run = s.scalars(
                select(DigestRun).where(
                    DigestRun.target == target, DigestRun.period_key == period_key
                )
            ).one()
        if (
            run.state == DigestRunState.PENDING
            and run.claimed_at + self.lease <= self.runtime.now()
        ):
            taken = self._take_and_attempt(run)
            if taken is not None:
                return self._deliver(run.id, first=taken)
        return Outcome(run.id, "duplicate", run.slack_ts, run.state.value)

    def _pending_runs(self, target: str | None = None) -> list[DigestRun]:
        stmt = select(DigestRun).where(DigestRun.state == DigestRunState.PENDING)
        if target is not None:
            stmt = stmt.where(DigestRun.target == target)
        with self.runtime.db.read() as s:
            return list(s.scalars(stmt.order_by(DigestRun.id)))

    def _take_and_attempt(self, run: DigestRun) -> DigestRun | None:
        """Take over a stale claim and count its attempt in one write transaction: the
        row as taken; None if another process changed its claim since `run` was read."""
        with self.runtime.db.write() as s:
            now = self.runtime.now()
            attempts = s.scalar(
                update(DigestRun)
                # Compare-and-set: only one process replaces a given (claimed_by, claimed_at).
                .where(
                    DigestRun.id == run.id,
                    DigestRun.state == DigestRunState.PENDING,
                    DigestRun.claimed_by == run.claimed_by,
                    DigestRun.claimed_at == run.claimed_at,
                )
                .values(claimed_by=self.worker_id, claimed_at=now, attempts=DigestRun.attempts + 1)
                .returning(DigestRun.attempts)
            )
        if attempts is None:
            return None
        log.info("delivering outbox row %s (%s %s)", run.id, run.target, run.period_key)
        taken = DigestRun(
            target=run.target,
            period_key=run.period_key,
            channel_link_id=run.channel_link_id,
            state=DigestRunState.PENDING,
            attempts=attempts,
            claimed_by=self.worker_id,
            claimed_at=now,
            created_at=run.created_at,
        )
        taken.id = run.id
        return taken

    # --- deliver --------------------------------------------------------------------
    def _begin_attempt(self, run_id: int) -> DigestRun | None:
        """Count the attempt before touching Slack; None if the run is no longer ours."""
        with self.runtime.db.write() as s:
            run = s.get(DigestRun, run_id, with_for_update=True)
            if run is None or run.state != DigestRunState.PENDING:
                return None
            if run.claimed_by != self.worker_id:
                return None
            run.attempts += 1
            s.flush()
            s.expunge(run)
            return run

    def _deliver(self, run_id: int, *, first: DigestRun | None = None) -> Outcome:
        """Attempt until sent, failed or deferred; `first`: the claim, whose first attempt
        is already counted."""
        if self.runtime.bot_token is not None and self.team_id is None:
            return self._deliver_in_workspace(run_id, first=first)
        payload: Payload | None = None
        for try_no in range(self.max_tries):
            run = first if try_no == 0 and first is not None else self._begin_attempt(run_id)
            if run is None:
                return Outcome(run_id, "duplicate", detail="no longer ours")
            key = run_key(run.target, run.period_key)
            try:
                if payload is None:
                    payload = self._payload(run)
                    if payload is None:
                        self._finish(run_id, DigestRunState.SKIPPED, error="nothing to send")
                        return Outcome(run_id, "skipped")
                if run.attempts > 1 and payload.ts is None:
                    found = self._find_posted(payload, key, run.created_at)
                    if found is not None:
                        ts = str(found.get("ts"))
                        log.info("run %s already posted as %s; not posting again", key, ts)
                        meta = (found.get("metadata") or {}).get("event_payload") or {}
                        self._finish(
                            run_id, DigestRunState.SENT, ts=ts, channel=payload.channel, posted=meta
                        )
                        return Outcome(run_id, "sent", ts, "found in history")
                if run.attempts > self.give_up_after:
                    raise _Permanent("gave up after repeated unknown outcomes")
                ts = self._send(payload, key)
            except _Permanent as exc:
                if exc.reason in TOO_BIG and payload is not None and payload.shorter is not None:
                    # Slack posted nothing: the shorter form goes out in the next attempt.
                    log.warning("run %s refused (%s); posting a shorter form", key, exc.reason)
                    payload = payload.shorter
                    continue
                self._finish(run_id, DigestRunState.FAILED, error=exc.reason)
                log.warning("outbox row %s failed permanently: %s", key, exc.reason)
                self._notify_failure(run, exc.reason)
                return Outcome(run_id, "failed", detail=exc.reason)
            except _Deferred as exc:
                retry_at = self.runtime.now() + timedelta(seconds=exc.seconds)
                log.info("run %s rate limited; retry at %s", key, retry_at.isoformat())
                return Outcome(run_id, "pending", detail="ratelimited", retry_at=retry_at)
            except _Transient as exc:
                log.warning("run %s attempt %s: %s", key, run.attempts, exc)
                if try_no + 1 < self.max_tries:
                    wait = self.backoff * (2**try_no)
                    if exc.timed_out:
                        # A request that timed out may still be in Slack's hands: give it
                        # at least as long again before looking for it in history.
                        wait = max(wait, float(self.client.timeout))
                    self.sleep(wait)
                continue
            replies = self._finish(
                run_id,
                DigestRunState.SENT,
                ts=ts,
                channel=payload.channel,
                thread=payload.thread,
                posted=payload.metadata,
            )
            if replies:
                self._thread(run_id, payload, ts, replies)
            return Outcome(run_id, "sent", ts)
        retry_at = self.runtime.now() + self.lease
        return Outcome(run_id, "pending", detail="unknown outcome", retry_at=retry_at)

    def _thread(self, run_id: int, payload: Payload, ts: str, replies: list[DigestRun]) -> None:
        """A sent digest's thread replies: now, one after the other, or (in a fan-out) when
        the channel's pace allows. Their content is the parent's, already rendered."""
        if payload.details:
            rendered = {}
            for part, reply in payload.details.items():
                short = replace(reply.shorter, thread_ts=ts) if reply.shorter else None
                rendered[part] = replace(reply, thread_ts=ts, shorter=short)
            while len(self.details) >= DETAIL_CACHE:
                self.details.pop(next(iter(self.details)), None)
            self.details[run_id] = rendered
        if self.defer_thread is not None:
            self.defer_thread(payload.channel, replies)
            return
        for row in replies:
            self.deliver_thread_row(row)
        self.details.pop(run_id, None)

    def _deliver_in_workspace(self, run_id: int, *, first: DigestRun | None = None) -> Outcome:
        """Several workspaces: deliver with the bot token of the row's workspace, fetched
        (and refreshed if about to expire) just before use; a workspace crobot is no longer
        installed in gets nothing (the row is skipped, said once in the log)."""
        assert self.runtime.bot_token is not None
        with self.runtime.db.read() as s:
            run = s.get(DigestRun, run_id)
            team = target_team(s, run) if run is not None else None
        if run is None:
            return Outcome(run_id, "duplicate")
        try:
            if team is None:
                raise NotInstalled("(none)")
            token = self.runtime.bot_token(team)
        except NotInstalled as exc:
            self._finish(run_id, DigestRunState.SKIPPED, error=str(exc))
            return Outcome(run_id, "skipped", detail=str(exc))
        except Exception as exc:  # the store or Slack's token endpoint is unreachable now
            log.warning("no bot token for workspace %s yet: %s", team, type(exc).__name__)
            retry_at = self.runtime.now() + self.lease
            return Outcome(run_id, "pending", detail="no token", retry_at=retry_at)
        client = with_token(self.client, token)
        return replace(self, client=client, team_id=team)._deliver(run_id, first=first)

    def _finish(
        self,
        run_id: int,
        state: DigestRunState,
        *,
        ts: str | None = None,
        channel: str | None = None,
        error: str | None = None,
        thread: Sequence[str] = (),
        posted: dict[str, Any] | None = None,
    ) -> list[DigestRun]:
        """`posted`: what the message's metadata says (an anchor's seq and HMAC). Returns
        the thread reply rows written (unclaimed), detached."""
        replies: list[DigestRun] = []
        values: dict[str, Any] = {"state": state, "error": error[:300] if error else None}
        if state == DigestRunState.SENT:
            values.update(slack_ts=ts, slack_channel=channel, sent_at=self.runtime.now())
        with self.runtime.db.write() as s:
            # One statement: the UPDATE locks the row as SELECT … FOR UPDATE did, and says
            # what the row is for.
            row = s.execute(
                update(DigestRun)
                .where(DigestRun.id == run_id)
                .values(**values)
                .returning(DigestRun.target, DigestRun.period_key)
            ).first()
            if row is None:
                return replies
            target, period_key = row
            if state == DigestRunState.SENT:
                if target.startswith(approval_log.TARGET_PREFIX) and channel and ts:
                    approval_log.delivered(s, target, period_key, channel, ts)
                # The thread replies are outbox rows written with the parent's `sent`, so
                # a crash between the two posts loses neither.
                replies = [self._unclaimed(f"{THREAD_PREFIX}{run_id}", p) for p in thread]
                s.add_all(replies)
                if target.startswith(anchors.TARGET_PREFIX) and channel and ts:
                    anchors.delivered(s, target, period_key, channel, ts, posted or {})
            if replies:
                s.flush()
                for reply in replies:
                    s.expunge(reply)
        return replies

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            status = exc.response.status_code if exc.response is not None else 0
            if error in PERMANENT_ERRORS:
                raise _Permanent(error) from exc
            if status == 429:
                raise _Deferred(retry_after(exc.response.headers)) from exc
            if status >= 500 or error in ("internal_error", "fatal_error", "request_timeout"):
                raise _Transient(f"{status} {error}") from exc
            # Any other API refusal will not change by retrying: fail, do not storm.
            raise _Permanent(error or f"http {status}") from exc
        except (OSError, HTTPException) as exc:  # timeouts, resets, refused connections
            timed_out = isinstance(exc, TimeoutError) or isinstance(
                getattr(exc, "reason", None), TimeoutError
            )
            raise _Transient(f"{type(exc).__name__}: {exc}", timed_out=timed_out) from exc

    def _send(self, payload: Payload, key: str) -> str:
        if payload.ts is not None:
            self._call(
                self.client.chat_update,
                channel=payload.channel,
                ts=payload.ts,
                text=payload.text,
                blocks=payload.blocks,
            )
            return payload.ts
        self.pacer.wait(payload.channel)
        resp = self._call(
            self.client.chat_postMessage,
            channel=payload.channel,
            text=payload.text,
            blocks=payload.blocks,
            metadata={
                "event_type": payload.metadata_event,
                "event_payload": {"run_key": key, **payload.metadata},
            },
            unfurl_links=False,
            unfurl_media=False,
            **({"thread_ts": payload.thread_ts} if payload.thread_ts else {}),
        )
        return str(resp["ts"])

    def _find_posted(self, payload: Payload, key: str, since: datetime) -> dict[str, Any] | None:
        """An earlier attempt's post (the message), found by its run key in the messages since
        the row was made (`since`: its first attempt, not the latest claim). Every page
        back to `since` is read: a busy channel may hold more than one page since then."""
        oldest = f"{(since - timedelta(minutes=5)).timestamp():.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            # A thread reply is not in the channel's history: it is read from its thread.
            where = {"ts": payload.thread_ts} if payload.thread_ts else {}
            resp = self._call(
                self.client.conversations_replies
                if payload.thread_ts
                else self.client.conversations_history,
                channel=payload.channel,
                oldest=oldest,
                limit=200,
                include_all_metadata=True,
                **where,
                **({"cursor": cursor} if cursor else {}),
            )
            for msg in resp.get("messages") or []:
                meta = msg.get("metadata") or {}
                if (
                    meta.get("event_type") == payload.metadata_event
                    and (meta.get("event_payload") or {}).get("run_key") == key
                ):
                    return dict(msg)
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                return None
        # Not seen in HISTORY_PAGES pages: posting again could duplicate; try again later.
        raise _Transient("history too long to search in one attempt")

    # --- payloads -------------------------------------------------------------------
    def _payload(self, run: DigestRun) -> Payload | None:
        kind, _, rest = run.target.partition(":")
        if kind == "link":
            return self._digest_payload(int(rest))
        if kind == THREAD_PREFIX.rstrip(":"):
            return self._detail_payload(int(rest), run.period_key)
        if kind == "dm":
            team, _, user = rest.partition(":")
            return self._nudge_payload(team, user)
        if kind == "notice":
            return self._notice_payload(int(rest), run.period_key)
        if kind == "anchor":
            return self._anchor_payload(int(rest), run.period_key)
        if kind == "forecast":
            news = forecast_news.payload(self.runtime, run.target, run.period_key)
            return None if news is None else Payload(**news, metadata_event=FORECAST_EVENT)
        if kind in ("qtl", "qtlwarn"):
            said = qtl_news.payload(self.runtime, run.target, run.period_key)
            return None if said is None else Payload(**said, metadata_event=QTL_EVENT)
        if kind == escalations.TARGET_PREFIX.rstrip(":"):
            told = escalation_news.payload(self.runtime, run.target, run.period_key)
            if told is None:
                return None
            if escalation_news.DM_USER in told:
                told["channel"] = self._open_dm(told.pop(escalation_news.DM_USER))
            return Payload(**told, metadata_event=ESCALATION_EVENT)
        if kind == "scorecard":
            card = scorecard_news.payload(self.runtime, run.target, run.period_key)
            return None if card is None else Payload(**card, metadata_event=SCORECARD_EVENT)
        if kind == "approval":
            msg = approval_posts.payload(self.runtime, self.client, run.target, run.period_key)
            if msg is None:
                return None
            if approval_posts.DM_USER in msg:
                msg["channel"] = self._open_dm(msg.pop(approval_posts.DM_USER))
            return Payload(**msg, metadata_event=APPROVAL_METADATA_EVENT)
        if kind == GONE_PREFIX.rstrip(":"):
            gone = installs.gone_payload(self.runtime, rest, run.period_key)
            return Payload(**gone) if gone is not None else None
        raise _Permanent(f"unknown target {run.target}")

    def _open_dm(self, user: str) -> str:
        """The bot's direct-message channel with `user` (opened if need be)."""
        resp = self._call(self.client.conversations_open, users=user)
        return str(resp["channel"]["id"])

    def _digest_payload(self, link_id: int) -> Payload | None:
        with self.runtime.db.read() as s:
            link = s.get(ChannelLink, link_id)
            if link is None:
                return None
            view = compose(s, link, self.runtime.now())
        out = render(view)
        short = render_short(view)
        channel = view.channel_id
        shorter = Payload(channel, short.text, short.blocks)
        details = {part: _detail(view, d) for part, d in out.details.items()}
        payload = Payload(channel, out.text, out.blocks, shorter=shorter, thread=out.thread)
        payload.details = details
        return payload

    def _detail_payload(self, parent_id: int, part: str) -> Payload | None:
        """A digest's thread reply: rendered with its parent when this process posted it,
        else composed as of the parent's time (the same window)."""
        rendered = self.details.get(parent_id, {}).pop(part, None)
        if rendered is not None:
            return rendered
        with self.runtime.db.read() as s:
            parent = s.get(DigestRun, parent_id)
            link = s.get(ChannelLink, parent.channel_link_id or 0) if parent else None
            if parent is None or link is None or not parent.slack_ts or not parent.slack_channel:
                return None
            view = compose(s, link, parent.created_at)
        out = render_detail(view, part)
        if out is None:
            return None
        detail = _detail(view, out)
        channel, ts = parent.slack_channel, parent.slack_ts
        short = replace(detail.shorter, channel=channel, thread_ts=ts) if detail.shorter else None
        return replace(detail, channel=channel, thread_ts=ts, shorter=short)

    def _nudge_payload(self, team: str, user: str) -> Payload | None:
        with self.runtime.db.read() as s:
            nudge = compose_nudge(s, team, user, self.runtime.now(), self.runtime.default_tz)
        if nudge is None:
            return None
        return Payload(self._open_dm(user), nudge.text, nudge.blocks)

    def _notice_payload(self, link_id: int, period_key: str) -> Payload | None:
        with self.runtime.db.read() as s:
            link = s.get(ChannelLink, link_id)
            failed = s.scalars(
                select(DigestRun).where(
                    DigestRun.target == f"link:{link_id}", DigestRun.period_key == period_key
                )
            ).first()
            if link is None or failed is None:
                return None
            sponsor = _sponsor_channel(s, link)
        if sponsor is None:
            return None
        text = bk.fmt(
            ":warning: The {} digest for {} ({}) could not be posted: {}. "
            "Invite crobot to the channel, unarchive it, or relink it; it will not be retried.",
            link.study.code,
            bk.channel_mention(link.channel_id),
            period_key,
            bk.code(failed.error),
        )
        return Payload(sponsor, **bk.message(text, [bk.section(text)]))

    def _anchor_payload(self, study_id: int, day: str) -> Payload | None:
        with self.runtime.db.read() as s:
            head = anchors.head_for(s, study_id)
        if head is None:
            return None
        text = bk.fmt(
            ":lock: Audit trail anchor for {} on {}: event #{} has HMAC {}. "
            "Kept here so the trail can be checked against it (`crobot audit verify "
            "--anchors`).",
            head.study_code,
            day,
            head.seq,
            bk.code(head.hash),
        )
        return Payload(
            head.channel,
            **bk.message(text, [bk.section(text)]),
            metadata_event=anchors.METADATA_EVENT,
            metadata={"seq": head.seq, "hash": head.hash},
        )

    def _notify_failure(self, run: DigestRun, reason: str) -> None:
        if not run.target.startswith("link:"):
            return
        link_id = int(run.target.split(":", 1)[1])
        with self.runtime.db.read() as s:
            link = s.get(ChannelLink, link_id)
            sponsor = _sponsor_channel(s, link) if link is not None else None
        if link is None or sponsor is None or sponsor == link.channel_id:
            log.warning("no sponsor channel to tell about failed run %s", run.target)
            return
        self.send(f"notice:{link_id}", run.period_key)


def _detail(view: DigestView, out: RenderedDigest) -> Payload:
    """One thread reply of a digest (its thread_ts set once the parent is posted)."""
    note = bk.Mrkdwn("_This part did not fit in a Slack message; `/cro status` has it._")
    short = Payload(view.channel_id, bk.fallback(note), [bk.section(note)])
    return Payload(view.channel_id, out.text, out.blocks, shorter=short)


def _sponsor_channel(session: Session, link: ChannelLink) -> str | None:
    """Where a failed digest is reported: the study's first sponsor channel in the failed
    channel's workspace (where this bot can post)."""
    channels = sponsor_channels(session, link.study_id, team_id=link.team_id)
    return channels[0] if channels else None
