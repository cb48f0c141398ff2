"""A Slack user's IANA time zone: Person.timezone, then the cache, then `users.info`.

The rule and the cache table live in `services.user_tz`; this module adds the one Slack
call, so a burst of clicks or commands costs at most one `users.info` per user.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import DBAPIError, IntegrityError

from crobot.services.actor import Actor
from crobot.services.runtime import NotInstalled, Runtime
from crobot.services.user_tz import (
    known_timezone,
    recorded_timezone,
    remember_timezone,
    valid_zone,
)

log = logging.getLogger(__name__)


def workspace_client(runtime: Runtime, base: WebClient, team_id: str) -> WebClient | None:
    """The client that asks Slack about a user of `team_id`. One workspace: `base`.
    Several: a client with that workspace's own bot token, which sees the user's whole
    profile (another workspace's bot sees a Slack Connect stranger without `tz`); None
    when crobot is not installed there."""
    if runtime.bot_token is None:
        return base
    try:
        token = runtime.bot_token(team_id)
    except NotInstalled:
        return None
    except Exception as exc:  # the store or Slack's token endpoint: try again later
        log.warning("no bot token for workspace %s: %s", team_id, type(exc).__name__)
        return None
    return with_token(base, token)


def with_token(base: WebClient, token: str) -> WebClient:
    """`base` (its Slack API URL, timeout and retry handlers) with another bot token."""
    return WebClient(
        token=token,
        base_url=base.base_url,
        timeout=base.timeout,
        retry_handlers=list(base.retry_handlers),
    )


def fetch_timezone(runtime: Runtime, client: WebClient, team_id: str, user_id: str) -> str | None:
    """Ask Slack (`users.info`) and cache the answer; None when Slack cannot tell."""
    try:
        user = client.users_info(user=user_id).get("user") or {}
    except SlackApiError as exc:
        log.warning("users.info failed: %s", exc.response.get("error"))
        return None
    except Exception as exc:  # network trouble: callers fall back to a channel/default zone
        log.warning("users.info unreachable: %s", type(exc).__name__)
        return None
    tz = valid_zone(user.get("tz"))
    if tz is None:
        if user.get("is_stranger"):
            # Slack Connect: this workspace's bot sees another workspace's user as a
            # stranger, without a zone; callers fall back (see user_timezone).
            log.info("users.info: %s:%s is a stranger here, without a time zone", team_id, user_id)
        return None
    try:
        with runtime.db.write() as s:
            remember_timezone(s, team_id, user_id, tz, now=runtime.now())
    except IntegrityError:
        pass  # a concurrent request cached it first; same answer
    except DBAPIError as exc:
        log.warning("could not cache a time zone: %s", type(exc).__name__)
    return tz


def user_timezone(
    runtime: Runtime, client: WebClient, actor: Actor, *, channel_tz: str | None = None
) -> str:
    """The user's zone: known without asking, else Slack's answer (through their own
    workspace's installation when there are several), else the zone recorded for them
    before (a Slack Connect stranger's profile has none), else the channel's, else the
    default. Times shown in it always name the zone."""
    with runtime.db.read() as s:
        tz = known_timezone(s, actor, now=runtime.now())
    if tz is None:
        own = workspace_client(runtime, client, actor.team_id) or client
        tz = fetch_timezone(runtime, own, actor.team_id, actor.user_id)
    if tz is None:
        with runtime.db.read() as s:
            tz = recorded_timezone(s, actor)
        log.info(
            "time zone of %s unknown to Slack here: using %s",
            actor.label,
            f"the zone recorded for them, {tz}"
            if tz
            else f"the channel's, {channel_tz}"
            if channel_tz
            else f"the default, {runtime.default_tz}",
        )
    return tz or channel_tz or runtime.default_tz
