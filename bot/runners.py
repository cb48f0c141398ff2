"""Start-up of the two ways crobot meets Slack: HTTP (uvicorn) and Socket Mode.

Both build the same pieces (settings -> database -> runtime -> Bolt app), then start
what runs beside the listeners (`start_background`), then serve until stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from types import FrameType

import uvicorn
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

from crobot.bot.app import create_app, require_tokens
from crobot.bot.http import SlackASGI
from crobot.bot.scheduling import start_scheduler
from crobot.bot.settings import Settings
from crobot.services.runtime import Runtime
from crobot.storage.db import Database

log = logging.getLogger(__name__)

Stop = Callable[[], None]


def build(settings: Settings) -> tuple[Runtime, App]:
    db = Database(settings.database_url)
    runtime = Runtime(
        db,
        default_tz=settings.default_tz,
        outbox_lease=timedelta(seconds=settings.outbox_lease_seconds),
    )
    return runtime, create_app(settings, runtime)


def start_background(settings: Settings, runtime: Runtime, app: App) -> Stop:
    """Start what runs beside the Slack listeners (the digest scheduler); return its stop.

    Every replica may run a scheduler: the DigestRun claim decides which one posts.
    """
    scheduler = start_scheduler(settings, runtime, app.client)
    return lambda: scheduler.shutdown(wait=False)


def run_http(settings: Settings, *, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve POST /slack/events and GET /healthz until SIGINT/SIGTERM."""
    require_tokens(settings)
    runtime, app = build(settings)
    stop = start_background(settings, runtime, app)
    asgi = SlackASGI(app, runtime.db, workers=max(8, settings.listener_workers * 2))
    log.info("crobot listening on http://%s:%s/slack/events", host, port)
    _exit_cleanly_on_sigterm()
    try:
        uvicorn.run(
            asgi,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            lifespan="on",
            access_log=False,
        )
    except (KeyboardInterrupt, _Terminated):
        log.info("crobot stopped")
    finally:
        stop()
        runtime.db.dispose()


class _Terminated(Exception):
    """SIGTERM, re-raised by uvicorn after its graceful shutdown."""


def _exit_cleanly_on_sigterm() -> None:
    # uvicorn drains requests on SIGTERM, restores the previous handler and re-sends the
    # signal; with the default handler the process would die before `start_background`'s
    # stop ran. This handler turns it into an exception the `finally` blocks see.
    if threading.current_thread() is not threading.main_thread():
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, _raise)


def socket_handler(settings: Settings, app: App) -> SocketModeHandler:
    token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    return SocketModeHandler(app, token)


def run_socket(settings: Settings) -> None:
    """Connect to Slack over Socket Mode (no public URL needed) until interrupted."""
    require_tokens(settings, socket=True)
    runtime, app = build(settings)
    handler = socket_handler(settings, app)
    stop = start_background(settings, runtime, app)
    log.info("crobot connecting to Slack in Socket Mode")
    _exit_cleanly_on_sigterm()
    try:
        handler.start()
    except (KeyboardInterrupt, _Terminated):
        log.info("crobot stopping")
    finally:
        handler.close()
        stop()
        runtime.db.dispose()
