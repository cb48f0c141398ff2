"""What listeners, digests and the CLI share at run time: the database and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from crobot.storage.db import Database


def _utcnow() -> datetime:
    return datetime.now(UTC)


class NotInstalled(Exception):
    """crobot has no (longer a) bot token for this Slack workspace: uninstalled, its
    tokens revoked, or never installed there. Nothing can be sent to it."""

    def __init__(self, team_id: str) -> None:
        super().__init__(f"crobot is not installed in Slack workspace {team_id}")
        self.team_id = team_id


@dataclass
class Runtime:
    db: Database
    default_tz: str = "UTC"
    now: Callable[[], datetime] = field(default=_utcnow)
    # How long an outbox claim is this process's own (CROBOT_OUTBOX_LEASE_SECONDS): every
    # Delivery a process builds uses it, so all of them agree when a claim has expired.
    outbox_lease: timedelta = timedelta(minutes=2)

    # Several workspaces (OAuth installs): the bot token for a workspace (team id), fresh
    # (rotated if about to expire), or NotInstalled. None: one workspace, the app's token.
    bot_token: Callable[[str], str] | None = None

    # Observers told (after commit) that an approval has Slack work in the outbox (its
    # Approve/Reject post, or its decision to show): the approvals outbox delivers it now
    # instead of at the scheduler's next sweep. Called with the approval id.
    approval_listeners: list[Callable[[int], None]] = field(default_factory=list)

    # Observers told (after commit) that a channel's digest schedule changed: the running
    # scheduler re-reads that channel link's row. Called with the channel link id.
    schedule_listeners: list[Callable[[int], None]] = field(default_factory=list)

    def approval_requested(self, approval_id: int) -> None:
        """A submission awaits a decision; call after the transaction committed."""
        for listener in self.approval_listeners:
            listener(approval_id)

    def approval_decided(self, approval_id: int) -> None:
        """An approval was decided; call after the transaction committed."""
        for listener in self.approval_listeners:
            listener(approval_id)

    def schedule_changed(self, link_id: int) -> None:
        for listener in self.schedule_listeners:
            listener(link_id)

    @property
    def wall_clock(self) -> bool:
        """`now` is the real clock (not a test's or a benchmark's fixed one)."""
        return self.now is _utcnow

    def __deepcopy__(self, memo: dict[int, object]) -> Runtime:
        # One runtime per process, shared by reference: Bolt deep-copies a request's
        # context for its lazy listeners, and a copied engine or listener list is useless.
        return self

    def today(self, tz: str | None = None) -> date:
        """Today's date where the user (or channel) is, not where the server is."""
        return self.now().astimezone(ZoneInfo(tz or self.default_tz)).date()
