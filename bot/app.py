"""Bolt `App` factory: settings -> WebClient (with retry handlers) -> App -> listeners."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from crobot.bot.settings import Settings
from crobot.handlers import register_listeners
from crobot.services.audit_keys import AuditKeyMissing
from crobot.services.runtime import Runtime

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A missing or malformed setting; the message names the variable."""


def build_web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=10)
    client.retry_handlers.extend(
        [
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ]
    )
    return client


def require_tokens(settings: Settings, *, socket: bool = False) -> None:
    if settings.oauth:
        _require_oauth(settings, socket=socket)
        return
    if settings.slack_client_id or settings.slack_client_secret:
        missing = "SLACK_CLIENT_SECRET" if settings.slack_client_id else "SLACK_CLIENT_ID"
        raise ConfigError(f"{missing} is not set (OAuth installs need both client id and secret).")
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not token:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...).")
    if not token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN is malformed: a bot token starts with xoxb-.")
    if socket:
        app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
        if not app_token:
            raise ConfigError("SLACK_APP_TOKEN is not set (Socket Mode needs the xapp-... token).")
        if not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN is malformed: an app-level token starts with xapp-.")
    elif not settings.slack_signing_secret or not settings.slack_signing_secret.get_secret_value():
        raise ConfigError("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request).")
    require_audit_key(settings)


def require_audit_key(settings: Settings) -> None:
    """Refuse to start without the audit chain's key, rather than fail every write later
    (PostgreSQL has no default key; SQLite's key file is made here if need be)."""
    try:
        settings.audit_key_source().load(create=True)
    except AuditKeyMissing as exc:
        raise ConfigError(f"audit trail: {exc}") from None


def _require_oauth(settings: Settings, *, socket: bool) -> None:
    if settings.slack_bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN and SLACK_CLIENT_ID/SLACK_CLIENT_SECRET are both set: keep the "
            "bot token for one workspace, or the client id and secret for OAuth installs."
        )
    if socket:
        raise ConfigError(
            "OAuth installs (SLACK_CLIENT_ID) need HTTP mode: Slack sends the installer back "
            "to /slack/oauth_redirect. Run `crobot serve` without --socket."
        )
    if not settings.slack_signing_secret or not settings.slack_signing_secret.get_secret_value():
        raise ConfigError("SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request).")


def create_app(settings: Settings, runtime: Runtime, *, client: WebClient | None = None) -> App:
    """The Bolt app: one workspace with SLACK_BOT_TOKEN, or (SLACK_CLIENT_ID and
    SLACK_CLIENT_SECRET) every workspace that installs crobot through OAuth."""
    client = client or build_web_client(settings)
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    oauth: dict[str, Any] = {}
    workspaces = None
    if settings.oauth:
        from crobot.bot.workspaces import Workspaces

        workspaces = Workspaces(settings, runtime.db)
        oauth = {
            "oauth_settings": workspaces.oauth_settings(),
            "authorize": workspaces.authorize(),
        }
        runtime.bot_token = workspaces.bot_token
    else:
        # Tokens are checked by require_tokens; no auth.test round trip at import time.
        oauth = {"token_verification_enabled": False}
    app = App(
        client=client,
        signing_secret=secret,
        # The ack is answered when the ack function returns; lazy listeners start after.
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(
            max_workers=settings.listener_workers, thread_name_prefix="crobot-listener"
        ),
        **oauth,
    )
    register_listeners(app, runtime)
    if workspaces is not None:
        from crobot.handlers import installs

        installs.register(app, runtime, workspaces.delete)
    return app
