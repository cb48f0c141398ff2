"""The `/cro` slash command: ack fast, answer reads in the ack, run the rest after it.

Subcommands are listed in `router.TABLE` (one module per group: help, status,
milestone, action, kpi, digest). The ack function plans the command and either answers
it in the ack (reads: nothing else is started) or, for writes and slow or Slack-calling
commands, acks empty and hands the plan to Bolt's listener threads
(`handlers.handoff.after_ack`), which run it and answer through the command's
`response_url`. No lazy listener is registered: Bolt would start it, with a deep copy of
the request, for every command, reads included.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from crobot.handlers import middleware
from crobot.handlers.commands.router import CommandRequest, CommandRouter, Plan
from crobot.handlers.handoff import after_ack

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


def cro_ack(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    router = CommandRouter(middleware.runtime(context))
    plan = router.plan(CommandRequest.from_body(body, middleware.identity(context)), client)
    if plan.later:
        ack()
        after_ack(context, lambda: cro_later(router, plan, client))
    else:
        ack(**router.execute(plan).payload())


def cro_later(router: CommandRouter, plan: Plan, client: WebClient) -> None:
    reply = router.finish(plan, client)
    if not reply.silent:
        deliver_reply(plan.request.response_url or "", reply.payload())


def register(app: App) -> None:
    app.command("/cro")(cro_ack)
