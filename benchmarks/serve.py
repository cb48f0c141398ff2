"""One benchmark server process: crobot's HTTP stack, or a bare Bolt app on the same stack.

    python -m benchmarks.serve --kind crobot --url sqlite:///bench.db --port 8101 \
        --slack-url http://127.0.0.1:9000/api/ [--workers N]
    python -m benchmarks.serve --kind bare ...

Both run uvicorn + `bot.http.SlackASGI` (thread-dispatched Bolt, GET /healthz) with the
same signing secret, dispatch threads, listener pool size and worker processes; only the
Bolt app differs:

- crobot: `bot.runners.run_http` — what `crobot serve --workers N` runs:
  `bot.app.create_app` with every listener crobot registers (scheduler off:
  CROBOT_SCHEDULER=false);
- bare:   a Bolt `App` whose only listener is `/cro` -> `ack()`, served the same way (with
  N > 1, uvicorn's workers build it through the factory `bare_worker_app`).

Run as its own process so the benchmark can read its peak RSS (and its workers') from
/proc.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from pydantic import SecretStr
from slack_bolt import Ack, App
from slack_sdk import WebClient

from crobot.bot.http import SlackASGI
from crobot.bot.settings import Settings
from crobot.storage.db import Database
from tests.slack_requests import SIGNING_SECRET


def bare_app(settings: Settings) -> App:
    client = WebClient(token="xoxb-bench-token", base_url=settings.slack_api_url)
    app = App(
        client=client,
        signing_secret=SIGNING_SECRET,
        token_verification_enabled=False,
        # As crobot's create_app: the ack is answered when the ack function returns,
        # instead of Bolt polling for it in 10 ms sleeps.
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(
            max_workers=settings.listener_workers, thread_name_prefix="bare-listener"
        ),
    )

    def cro(ack: Ack) -> None:
        ack()

    app.command("/cro")(cro)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kind", choices=("crobot", "bare"), required=True)
    p.add_argument("--url", required=True, help="database URL")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--slack-url", required=True, help="Slack Web API base URL (the fake)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (uvicorn)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        CROBOT_DATABASE_URL=args.url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-bench-token"),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        CROBOT_SLACK_API_URL=args.slack_url,
        CROBOT_SCHEDULER=False,
        CROBOT_LOG_LEVEL="WARNING",
    )
    if args.kind == "crobot":
        # Exactly `crobot serve`'s code path (bot.runners.run_http), minus argv parsing;
        # imported here so the bare process does not carry crobot's modules (its RSS).
        from crobot.bot import runners

        runners.run_http(settings, host="127.0.0.1", port=args.port, workers=args.workers)
        return 0
    if args.workers > 1:  # as crobot's workers are served (bot.runners)
        from crobot.bot.runners import WORKER_SETTINGS, serve_in_workers, settings_json

        os.environ[WORKER_SETTINGS] = settings_json(settings)
        serve_in_workers(
            "benchmarks.serve:bare_worker_app", host="127.0.0.1", port=args.port,
            workers=args.workers, log_level="warning",
        )  # fmt: skip
        return 0
    uvicorn.run(
        bare_asgi(settings), host="127.0.0.1", port=args.port, log_level="warning",
        lifespan="on", access_log=False,
    )  # fmt: skip
    return 0


def bare_asgi(settings: Settings) -> SlackASGI:
    # The same SlackASGI (and thread count) as bot.runners.http_asgi gives crobot.
    db = Database(settings.database_url)
    return SlackASGI(bare_app(settings), db, workers=max(8, settings.listener_workers * 2))


def bare_worker_app() -> SlackASGI:
    """uvicorn's factory in each worker of the bare server (settings as crobot's get them)."""
    from crobot.bot.runners import WORKER_SETTINGS

    return bare_asgi(Settings(**json.loads(os.environ[WORKER_SETTINGS])))


if __name__ == "__main__":
    raise SystemExit(main())
