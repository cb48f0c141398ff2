"""The `/cro` slash command: ack fast, answer reads in the ack, run the rest lazily.

Subcommands are listed in `router.TABLE` (one module per group: help, status,
milestone, action, kpi; digest is the digests surface's module).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from handlers.commands.router import CommandRequest, CommandRouter, PendingPlans
from services.runtime import Runtime

log = logging.getLogger(__name__)


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

    def cro_later(body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        plan = pending.take(CommandRequest.from_body(body).key)
        if plan is None:
            return  # answered in the ack
        reply = router.finish(plan, client)
        if reply.silent:
            return
        try:
            respond(**reply.payload())
        except Exception as exc:  # response_url expired or Slack unreachable: nothing to tell
            log.warning("could not deliver a /cro reply: %s", type(exc).__name__)

    app.command("/cro")(ack=cro_ack, lazy=[cro_later])
