"""What every listener needs, resolved once per request by one Bolt middleware.

Slack puts the acting user's workspace in different places per payload kind (a slash
command's `team_id`, an interaction's `user.team_id`, an event's `team`/`user`); this is
the one place that reads it. A person is always (team id, user id): in a Slack Connect
channel the workspace of the *user* counts, not the workspace the payload came through.

Listeners take `context: BoltContext` and read `runtime(context)` and `identity(context)`;
lazy listeners get a copy of the context and read the same values (both survive Bolt's
copy: `Runtime` is shared by reference, `Identity` is immutable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltContext, BoltResponse

from crobot.services.runtime import Runtime

RUNTIME = "crobot_runtime"
IDENTITY = "crobot_identity"


@dataclass(frozen=True)
class Identity:
    """Who sent a request: (workspace, user). Empty strings when Slack named nobody."""

    team_id: str
    user_id: str

    @property
    def known(self) -> bool:
        return bool(self.team_id and self.user_id)


def identity_of(body: dict[str, Any]) -> Identity:
    user = body.get("user")
    event = body.get("event") or {}
    if isinstance(user, dict):  # interactions: block_actions, view_submission, …
        team = user.get("team_id") or (body.get("team") or {}).get("id")
        uid = user.get("id")
    elif body.get("command"):  # slash commands
        team, uid = body.get("team_id"), body.get("user_id")
    else:  # events: the user's own workspace when Slack says it, else the envelope's
        uid = event.get("user") if isinstance(event.get("user"), str) else None
        team = event.get("user_team") or event.get("team") or body.get("team_id")
    return Identity(str(team or ""), str(uid or ""))


def runtime(context: BoltContext) -> Runtime:
    value = context.get(RUNTIME)
    if not isinstance(value, Runtime):
        raise RuntimeError("crobot's middleware did not run for this request")
    return value


def identity(context: BoltContext) -> Identity:
    value = context.get(IDENTITY)
    if not isinstance(value, Identity):
        raise RuntimeError("crobot's middleware did not run for this request")
    return value


def install(app: App, rt: Runtime) -> None:
    members = None
    if rt.bot_token is not None:  # several workspaces: users are recognised on first use
        from crobot.handlers.members import Members

        members = Members(rt)

    def resolve(
        context: BoltContext, body: dict[str, Any], next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        context[RUNTIME] = rt
        who = context[IDENTITY] = identity_of(body)
        # Only through the installation of the user's own workspace, which sees their
        # whole profile (guest or not); an external user in a shared channel is judged by
        # the (team, user) crobot already knows.
        if members is not None and who.known and context.team_id == who.team_id:
            members.recognise(context.client, who, context.enterprise_id)
        return next()

    app.middleware(resolve)
