"""Start-up of the two ways crobot meets Slack: HTTP (uvicorn) and Socket Mode.

Both build the same pieces (settings -> database -> runtime -> Bolt app), then start
what runs beside the listeners (`start_background`), then serve until stopped.

HTTP mode can run several worker processes (`crobot serve --workers N`, default: the
cores this process may use), because one interpreter runs one thread of Python at a time
and a request costs milliseconds of it. uvicorn's supervisor spawns the workers; each
builds its own database engine and pool, Bolt app and listener threads through the app
factory `http_worker_app`. The digest scheduler runs once per `crobot serve`, in the
process that was started (the supervisor), not in the workers: one set of jobs, one
catch-up and one sweep per host, as before, and no scheduling work competing with
requests in the workers. Several schedulers would be safe (the outbox claim decides who
posts, as between replicas) but would only repeat the same polling. The workers learn
schedule changes as a request-only replica does: the scheduler polls for them.
Socket Mode stays one process (one WebSocket connection).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType

import uvicorn
from pydantic import SecretStr
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from uvicorn.supervisors import Multiprocess

from crobot.bot.app import create_app, require_tokens
from crobot.bot.http import SlackASGI
from crobot.bot.scheduling import start_scheduler
from crobot.bot.settings import Settings
from crobot.services.runtime import Runtime
from crobot.storage.db import Database

log = logging.getLogger(__name__)

Stop = Callable[[], None]


def build(settings: Settings) -> tuple[Runtime, App]:
    db = Database(settings.database_url, audit_keys=settings.audit_key_source())
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


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def http_asgi(settings: Settings, runtime: Runtime, app: App) -> SlackASGI:
    return SlackASGI(
        app,
        runtime.db,
        workers=max(8, settings.listener_workers * 2),
        on_shutdown=runtime.db.dispose,
    )


def run_http(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 3000, workers: int = 1
) -> None:
    """Serve POST /slack/events and GET /healthz until SIGINT/SIGTERM, in this process
    (`workers` 1) or in `workers` processes spawned by uvicorn."""
    require_tokens(settings)
    if workers > 1:
        _run_http_workers(settings, host=host, port=port, workers=workers)
        return
    runtime, app = build(settings)
    stop = start_background(settings, runtime, app)
    log.info("crobot listening on http://%s:%s/slack/events", host, port)
    _exit_cleanly_on_sigterm()
    try:
        uvicorn.run(
            http_asgi(settings, runtime, app),
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


WORKER_SETTINGS = "CROBOT_WORKER_SETTINGS"
SUPERVISOR = "CROBOT_SUPERVISOR_PID"


def _run_http_workers(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """uvicorn's supervisor here (it restarts a worker that dies; SIGTERM stops them all,
    each draining its requests), the scheduler beside it."""
    stop: Stop = lambda: None  # noqa: E731
    runtime = None
    if settings.scheduler_enabled:
        runtime, app = build(settings)
        stop = start_background(settings, runtime, app)
    # The workers are spawned (a fresh interpreter, not a fork): they get these settings
    # through their environment, as they would have come (the environment or .env) —
    # including settings given in code, as the benchmarks and tests do.
    os.environ[WORKER_SETTINGS] = settings_json(settings)
    os.environ[SUPERVISOR] = str(os.getpid())
    log.info("crobot listening on http://%s:%s/slack/events, %d workers", host, port, workers)
    try:
        serve_in_workers(
            f"{__name__}:http_worker_app",
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
        )
    except KeyboardInterrupt:
        pass
    finally:
        os.environ.pop(WORKER_SETTINGS, None)
        os.environ.pop(SUPERVISOR, None)
        log.info("crobot stopped")
        stop()
        if runtime is not None:
            runtime.db.dispose()


def serve_in_workers(factory: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    """What `uvicorn.run(factory, factory=True, workers=N)` does, but with a listening
    socket that says it is TCP (`tcp_listener`). Returns when SIGINT/SIGTERM stopped them."""
    config = uvicorn.Config(
        factory,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=False,
    )
    Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()


def tcp_listener(sock: socket.socket) -> socket.socket:
    """The supervisor's listening socket, marked IPPROTO_TCP.

    uvicorn binds it with protocol 0; the connections each worker accepts inherit that, and
    asyncio turns Nagle's algorithm off (TCP_NODELAY) only for sockets that say IPPROTO_TCP.
    With Nagle on, a response's body waits for the client's delayed ACK of its headers:
    ~40 ms added to every request on a kept-alive connection (uvicorn issue #3149; one
    process is not affected, its listener is made from getaddrinfo, which says TCP).
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


def http_worker_app() -> SlackASGI:
    """uvicorn's app factory, called once in each worker process: its own database engine
    and pool, Bolt app and threads; no scheduler (the supervisor runs it)."""
    _exit_with_supervisor()  # first: the supervisor may die while this one starts
    raw = os.environ.get(WORKER_SETTINGS)
    settings = Settings(**json.loads(raw)) if raw else Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    runtime, app = build(settings)
    return http_asgi(settings, runtime, app)


def _exit_with_supervisor(every: float = 1.0) -> None:
    """A worker stops (gracefully, as on SIGTERM) once its supervisor is gone, e.g. killed
    with SIGKILL: it would otherwise go on answering on the inherited socket, orphaned,
    with nobody to stop it."""
    # The parent it was spawned by (not `os.getppid()` now: it may be gone already).
    parent = int(os.environ.get(SUPERVISOR, "0")) or os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        log.warning("the crobot serve supervisor (pid %s) is gone; this worker stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="crobot-supervisor-watch", daemon=True).start()


def settings_json(settings: Settings) -> str:
    """`settings` as the environment would give them (aliases, secrets revealed), for the
    worker processes of the same server."""
    out: dict[str, object] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = str(value)
        out[field.alias or name] = value
    return json.dumps(out)


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
