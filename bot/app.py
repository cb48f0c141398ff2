"""Bolt `App` factory: settings -> WebClient (with retry handlers) -> App -> listeners."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

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


def create_app(settings: Settings, runtime: Runtime, *, client: WebClient | None = None) -> App:
    client = client or build_web_client(settings)
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = App(
        client=client,
        signing_secret=secret,
        # Tokens are checked by require_tokens; no auth.test round trip at import time.
        token_verification_enabled=False,
        # The ack is answered when the ack function returns; lazy listeners start after.
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(
            max_workers=settings.listener_workers, thread_name_prefix="crobot-listener"
        ),
    )
    register_listeners(app, runtime)
    return app
