"""One benchmark server process: crobot's HTTP stack, or a bare Bolt app on the same stack.

    python -m benchmarks.serve --kind crobot --url sqlite:///bench.db --port 8101 \
        --slack-url http://127.0.0.1:9000/api/
    python -m benchmarks.serve --kind bare ...

Both run uvicorn + `bot.http.SlackASGI` (thread-dispatched Bolt, GET /healthz) with the
same signing secret, dispatch threads and listener pool size; only the Bolt app differs:

- crobot: `bot.runners.run_http` — what `crobot serve` runs: `bot.app.create_app` with
  every listener crobot registers (scheduler off: CROBOT_SCHEDULER=false);
- bare:   a Bolt `App` whose only listener is `/cro` -> `ack()`.

Run as its own process so the benchmark can read its peak RSS from /proc.
"""

from __future__ import annotations

import argparse
import logging
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

        runners.run_http(settings, host="127.0.0.1", port=args.port)
        return 0
    db = Database(settings.database_url)
    app = bare_app(settings)
    # The same SlackASGI (and thread count) as bot.runners.run_http gives crobot.
    asgi = SlackASGI(app, db, workers=max(8, settings.listener_workers * 2))
    uvicorn.run(
        asgi, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on",
        access_log=False,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
