"""Compose and deliver N channel digests to the fake Slack; print time and queries per digest.

    python -m benchmarks.digest_fanout [--channels 1000] [--db sqlite:///bench.db]

Each channel gets the ONC-301 sample world's data (milestones, actions, KPI series), so a
digest has real content. Delivery uses the exactly-once path (claim, post with metadata).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta

from slack_sdk import WebClient
from sqlalchemy import event, select

from digests.delivery import ChannelPacer, Delivery, delivery_client
from services.runtime import Runtime
from storage.db import Database
from storage.migrate import upgrade
from storage.models import ChannelLink
from tests.conftest import build_world, empty_database
from tests.digest_helpers import seed
from tests.fake_slack import running_fake_slack


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=1000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--scale", type=int, default=10, help="items per organisation")
    args = ap.parse_args()
    url = args.db or f"sqlite:///{os.path.join(tempfile.mkdtemp(), 'bench.db')}"
    upgrade(url)
    db = Database(url)
    empty_database(db)
    world = build_world(db)
    seed(world, args.scale)
    with db.write() as s:
        for i in range(args.channels - 4):
            s.add(
                ChannelLink(
                    team_id="T1",
                    channel_id=f"CB{i:05d}",
                    study_id=world.study_id,
                    audience=("sponsor", "vendor", "joint")[i % 3],
                    audience_org_id=world.apex_id if i % 3 == 1 else None,
                    timezone="Europe/Berlin",
                    charts_enabled=False,
                )
            )
    with db.read() as s:
        ids = list(s.scalars(select(ChannelLink.id).order_by(ChannelLink.id)))
    count = [0]

    def before(*_a: object) -> None:
        count[0] += 1

    for eng in {db.engine, db.write_engine}:
        event.listen(eng, "before_cursor_execute", before)
    with running_fake_slack() as fake:
        client = delivery_client(WebClient(token="xoxb-bench", base_url=fake.base_url))
        d = Delivery(Runtime(db), client, lease=timedelta(0), pacer=ChannelPacer(0.0))
        started = time.perf_counter()
        outcomes = d.send_links([(i, "bench") for i in ids], workers=args.workers)
        states = [o.state for o in outcomes]
        elapsed = time.perf_counter() - started
        posted = len(fake.posted())
    backend = url.split(":")[0]
    print(f"workers={args.workers}")
    print(f"backend={backend} channels={len(ids)} sent={states.count('sent')} posted={posted}")
    print(f"total={elapsed:.2f}s per_digest={elapsed / len(ids) * 1000:.1f}ms")
    print(f"sql statements per digest (claim+compose+attempt+finish): {count[0] / len(ids):.1f}")
    db.dispose()


if __name__ == "__main__":
    main()
