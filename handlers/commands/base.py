"""What every `/cro` subcommand gets and gives back.

A subcommand is `fn(ctx: CommandContext, args: list[str]) -> Reply`, registered by name
in the router's table (`TABLE` in `handlers/commands/router.py`). It parses its words,
calls a service, and renders with `handlers.blockkit`; a `UserError` it raises becomes an
ephemeral error reply, with nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from slack_sdk import WebClient

from crobot.handlers.blockkit import Block, Mrkdwn, fit, mention, message
from crobot.services.actor import Actor
from crobot.services.runtime import Runtime
from crobot.storage.models import ChannelLink


@dataclass
class CommandContext:
    runtime: Runtime
    client: WebClient
    team_id: str
    user_id: str
    channel_id: str
    actor: Actor
    link: ChannelLink | None
    user_tz: str
    trigger_id: str | None = None

    def today(self) -> date:
        return self.runtime.today(self.user_tz)

    @property
    def mention(self) -> Mrkdwn:
        return mention(self.team_id, self.user_id)


@dataclass
class Reply:
    text: Mrkdwn  # the notification / screen-reader text (`blockkit.fallback` of it is sent)
    blocks: list[Block] = field(default_factory=list)
    in_channel: bool = False  # shared-state changes are announced to the channel
    silent: bool = False  # nothing to say (a form opened instead)
    is_error: bool = False  # a rejected command: nothing was stored

    def __post_init__(self) -> None:
        self.blocks = fit(self.blocks)

    def payload(self) -> dict[str, Any]:
        """The ack body or response_url message."""
        kind = "in_channel" if self.in_channel else "ephemeral"
        return {"response_type": kind, **message(self.text, self.blocks)}


Subcommand = Callable[[CommandContext, list[str]], Reply]
