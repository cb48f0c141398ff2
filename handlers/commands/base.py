"""What every `/cro` subcommand gets and gives back.

A subcommand is `fn(ctx: CommandContext, args: list[str]) -> Reply`, registered by name
in the router's table (`handlers/commands/__init__.py`). It parses its words, calls a
service, and renders; a `UserError` it raises becomes an ephemeral error reply, with
nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from slack_sdk import WebClient

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


@dataclass
class Reply:
    text: str  # plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    in_channel: bool = False  # shared-state changes are announced to the channel
    silent: bool = False  # nothing to say (a form opened instead)
    is_error: bool = False  # a rejected command: nothing was stored

    def payload(self) -> dict[str, Any]:
        return {
            "response_type": "in_channel" if self.in_channel else "ephemeral",
            "text": self.text,
            "blocks": self.blocks,
        }


Subcommand = Callable[[CommandContext, list[str]], Reply]
