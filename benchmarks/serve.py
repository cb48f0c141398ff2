"""One benchmark server process: crobot's HTTP stack, or a bare Bolt app on the same stack.

    python benchmarks/serve.py --kind crobot --url sqlite:///bench.db --port 8101 \
        --slack-url http://127.0.0.1:9000/api/
    python benchmarks/serve.py --kind bare ...

Both run uvicorn + `bot.http.SlackASGI` (thread-dispatched Bolt, GET /healthz) with the
same signing secret and listener pool size; only the Bolt app differs:

- crobot: `bot.app.create_app(settings, runtime)` — every listener crobot registers;
- bare:   a Bolt `App` whose only listener is `/cro` -> `ack()`.

Run as its own process so the benchmark can read its peak RSS from /proc.
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

import uvicorn  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from slack_bolt import Ack, App  # noqa: E402
from slack_sdk import WebClient  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.http import SlackASGI  # noqa: E402
from bot.settings import Settings  # noqa: E402
from services.runtime import Runtime  # noqa: E402
from storage.db import Database  # noqa: E402
from tests.slack_requests import SIGNING_SECRET  # noqa: E402


def bare_app(settings: Settings) -> App:
    client = WebClient(token="xoxb-bench-token", base_url=settings.slack_api_url)
    app = App(
        client=client,
        signing_secret=SIGNING_SECRET,
        token_verification_enabled=False,
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
    p.add_argument(
        "--process-before-response",
        action="store_true",
        help="experiment: run the ack listener on the dispatch thread (Bolt's FaaS mode)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        CROBOT_DATABASE_URL=args.url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-bench-token"),
        SLACK_SIGNING_SECRET=SecretStr(SIGNING_SECRET),
        CROBOT_SLACK_API_URL=args.slack_url,
        CROBOT_SCHEDULER=False,
    )
    db = Database(settings.database_url)
    runtime = Runtime(db, default_tz=settings.default_tz)
    app = create_app(settings, runtime) if args.kind == "crobot" else bare_app(settings)
    if args.process_before_response:
        # Bolt only takes this at construction; set what its constructor sets. Without it
        # Bolt's runner polls for ack() in 10 ms sleeps, a floor under every command.
        app._process_before_response = True
        app._listener_runner.process_before_response = True
    asgi = SlackASGI(app, db)
    uvicorn.run(
        asgi,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
