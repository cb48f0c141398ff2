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
from crobot.services.user_tz import known_timezone, remember_timezone, valid_zone

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
        return None
    try:
        with runtime.db.write() as s:
            remember_timezone(s, team_id, user_id, tz, now=runtime.now())
    except IntegrityError:
        pass  # a concurrent request cached it first; same answer
    except DBAPIError as exc:
        log.warning("could not cache a time zone: %s", type(exc).__name__)
    return tz


def user_timezone(runtime: Runtime, client: WebClient, actor: Actor) -> str:
    with runtime.db.read() as s:
        tz = known_timezone(s, actor, now=runtime.now())
    if tz is None:
        own = workspace_client(runtime, client, actor.team_id) or client
        tz = fetch_timezone(runtime, own, actor.team_id, actor.user_id)
    return tz or runtime.default_tz
