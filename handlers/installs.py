"""A workspace removes crobot: `app_uninstalled` and `tokens_revoked` (several workspaces).

Its tokens are deleted from the installation store at once, so nothing more is posted
there (digests/delivery.py skips that workspace's rows, with one log line); each study it
takes part in has its sponsor told once, in the study's first sponsor channel of another
workspace. The notice is an outbox row keyed by the event id, so Slack re-sending the
event tells nobody twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.digests.targets import GONE_PREFIX, gone_channel, gone_key, gone_study, studies_in
from crobot.handlers import blockkit as bk
from crobot.services.runtime import Runtime
from crobot.storage.models import DigestRun, DigestRunState, Organization, Study, utcnow

log = logging.getLogger(__name__)

Forget = Callable[..., None]  # (enterprise_id=..., team_id=...) -> None


def register(app: App, runtime: Runtime, forget: Forget) -> None:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crobot-gone")

    def left(body: dict[str, Any], context: BoltContext, why: str) -> None:
        team, enterprise = context.team_id, context.enterprise_id
        forget(enterprise_id=enterprise, team_id=team)
        log.warning("crobot %s in Slack workspace %s: its tokens are deleted", why, team)
        if not team:
            return
        event_id = str(body.get("event_id") or f"{why}:{utcnow().isoformat()}")
        with runtime.db.write() as s:
            targets = enqueue_notices(s, team, event_id)
        if targets:
            pool.submit(_deliver_now, runtime, app, f"{GONE_PREFIX}{team}")

    def on_uninstalled(body: dict[str, Any], context: BoltContext) -> None:
        left(body, context, "was uninstalled")

    def on_revoked(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
        tokens = event.get("tokens") or {}
        if tokens.get("bot"):
            left(body, context, "lost its bot token")
            return
        for user in tokens.get("oauth") or []:  # crobot asks for no user tokens; be tidy
            app_store = app.installation_store
            if app_store is not None:
                app_store.delete_installation(
                    enterprise_id=context.enterprise_id, team_id=context.team_id, user_id=user
                )

    app.event("app_uninstalled")(on_uninstalled)
    app.event("tokens_revoked")(on_revoked)


def enqueue_notices(session: Session, team_id: str, event_id: str) -> int:
    """One unclaimed outbox row per study the workspace takes part in (unless Slack sent
    this event before); the sweep delivers them if the kick does not."""
    target = f"{GONE_PREFIX}{team_id}"
    added = 0
    for study_id in studies_in(session, team_id):
        key = gone_key(event_id, study_id)
        exists = session.scalars(
            select(DigestRun.id).where(DigestRun.target == target, DigestRun.period_key == key)
        ).first()
        if exists is not None or gone_channel(session, team_id, study_id) is None:
            continue
        now = utcnow()
        session.add(
            DigestRun(
                target=target,
                period_key=key,
                state=DigestRunState.PENDING,
                attempts=0,
                claimed_by=None,
                claimed_at=now,
                created_at=now,
            )
        )
        added += 1
    session.flush()
    return added


def _deliver_now(runtime: Runtime, app: App, target: str) -> None:
    from crobot.digests.delivery import Delivery, delivery_client

    try:
        delivery = Delivery(runtime, delivery_client(app.client), lease=runtime.outbox_lease)
        delivery.resume_pending(target)
    except Exception:  # the rows stay pending for the scheduler's sweep
        log.exception("telling the sponsor about %s failed", target)


def gone_payload(runtime: Runtime, team_id: str, period_key: str) -> dict[str, Any] | None:
    """The sponsor channel's notice that crobot left `team_id` (chat.postMessage args)."""
    with runtime.db.read() as s:
        study = s.get(Study, gone_study(period_key))
        link = gone_channel(s, team_id, study.id) if study is not None else None
        org = s.scalars(
            select(Organization.name).where(Organization.slack_team_id == team_id)
        ).first()
    if study is None or link is None:
        return None
    who = bk.fmt("{} ({})", org, team_id) if org else bk.fmt("{}", team_id)
    text = bk.fmt(
        ":warning: crobot was removed from the Slack workspace {}. Nothing more of {} is "
        "posted there (digests, reminders, approval notices) until its admin installs "
        "crobot again.",
        who,
        study.code,
    )
    return {"channel": link.channel_id, **bk.message(text, [bk.section(text)])}
