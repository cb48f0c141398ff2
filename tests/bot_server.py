"""Run the real HTTP stack (uvicorn + SlackASGI + Bolt) in a thread for end-to-end tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from pydantic import SecretStr
from slack_bolt import App

from crobot.bot.app import create_app
from crobot.bot.http import SlackASGI
from crobot.bot.settings import Settings
from crobot.services.runtime import Runtime
from tests.slack_requests import SIGNING_SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_settings(database_url: str, slack_api_url: str) -> Settings:
    return Settings(
        CROBOT_DATABASE_URL=database_url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-test-token"),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        CROBOT_SLACK_API_URL=slack_api_url,
        CROBOT_SCHEDULER=False,
    )


@dataclass
class RunningBot:
    url: str
    app: App
    runtime: Runtime

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"


@contextmanager
def running_bot(settings: Settings, runtime: Runtime) -> Iterator[RunningBot]:
    app = create_app(settings, runtime)
    asgi = SlackASGI(app, runtime.db)
    port = free_port()
    config = uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)
    try:
        yield RunningBot(f"http://127.0.0.1:{port}", app, runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
