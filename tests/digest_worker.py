"""A separate process that delivers digests: used to race replicas and to SIGKILL mid fan-out.

python -m tests.digest_worker race DB_URL SLACK_URL LINK_ID START_AT PERIOD...
python -m tests.digest_worker fanout DB_URL SLACK_URL PERIOD
python -m tests.digest_worker scorecards DB_URL SLACK_URL START_AT NOW
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import select

from crobot.digests.delivery import ChannelPacer, Delivery, delivery_client
from crobot.digests.runner import DigestRunner
from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.models import ChannelLink


def _delivery(db_url: str, slack_url: str) -> tuple[Database, Delivery]:
    db = Database(db_url)
    client = delivery_client(WebClient(token="xoxb-test", base_url=slack_url, timeout=5))
    # lease 0: the previous process is known dead (the test killed it).
    return db, Delivery(
        Runtime(db), client, lease=timedelta(0), backoff=0.05, pacer=ChannelPacer(0.0)
    )


def race(db_url: str, slack_url: str, link_id: int, start_at: float, periods: list[str]) -> None:
    db, d = _delivery(db_url, slack_url)
    # Lease held: a racing replica must never take over a live claim.
    d.lease = timedelta(minutes=5)
    while time.time() < start_at:
        time.sleep(0.001)
    states = [d.send_link(link_id, p).state for p in periods]
    print(json.dumps(states))
    db.dispose()


def fanout(db_url: str, slack_url: str, period: str) -> None:
    db, d = _delivery(db_url, slack_url)
    resumed = d.resume_pending()
    with db.read() as s:
        ids = list(s.scalars(select(ChannelLink.id).order_by(ChannelLink.id)))
    states = [d.send_link(i, period).state for i in ids]
    found = sum(1 for o in resumed if o.detail == "found in history")
    print(json.dumps({"resumed": len(resumed), "found": found, "sent": states.count("sent")}))
    db.dispose()


def scorecards(db_url: str, slack_url: str, start_at: float, now: datetime) -> None:
    """One replica's quarter-end scorecard job, its clock stopped at `now`."""
    db, d = _delivery(db_url, slack_url)
    d.lease = timedelta(minutes=5)  # a racing replica must never take over a live claim
    d.runtime.now = lambda: now
    while time.time() < start_at:
        time.sleep(0.001)
    outcomes = DigestRunner(d.runtime, d).scorecards()
    print(json.dumps([[o.run_id, o.state] for o in outcomes]))
    db.dispose()


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "race":
        race(argv[1], argv[2], int(argv[3]), float(argv[4]), argv[5:])
    elif mode == "fanout":
        fanout(argv[1], argv[2], argv[3])
    elif mode == "scorecards":
        scorecards(argv[1], argv[2], float(argv[3]), datetime.fromisoformat(argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
