"""The `/cro` slash command: ack fast, answer reads in the ack, run the rest lazily.

Subcommands are listed in `router.TABLE` (one module per group: help, status,
milestone, action, kpi; digest is the digests surface's module).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from crobot.handlers.commands.router import CommandRequest, CommandRouter, PendingPlans
from crobot.services.runtime import Runtime

log = logging.getLogger(__name__)


def reply_client(url: str) -> WebhookClient:
    """response_url replies, retried on 429 (honouring Retry-After), 5xx and dropped
    connections: a reply is worth a rare duplicate ephemeral message, never a lost one."""
    return WebhookClient(
        url,
        timeout=10,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=3),
        ],
    )


def deliver_reply(url: str, payload: dict[str, Any]) -> None:
    if not url:
        return
    try:
        resp = reply_client(url).send_dict(payload)
        if resp.status_code != 200:
            log.warning("a /cro reply was refused: HTTP %s", resp.status_code)
    except Exception as exc:  # response_url expired or Slack unreachable: nothing to tell
        log.warning("could not deliver a /cro reply: %s", type(exc).__name__)


def register(app: App, runtime: Runtime) -> None:
    router = CommandRouter(runtime)
    pending = PendingPlans()

    def cro_ack(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        req = CommandRequest.from_body(body)
        later = None
        try:
            plan = router.plan(req, client)
            if plan.later:
                later = plan
                ack()
            else:
                ack(**router.execute(plan).payload())
        finally:
            pending.settle(req.key, later)

    def cro_later(body: dict[str, Any], client: WebClient) -> None:
        plan = pending.take(CommandRequest.from_body(body).key)
        if plan is None:
            return  # answered in the ack
        reply = router.finish(plan, client)
        if reply.silent:
            return
        deliver_reply(str(body.get("response_url") or ""), reply.payload())

    app.command("/cro")(ack=cro_ack, lazy=[cro_later])
