"""The fake Slack Web API (tests/fake_slack.py) in a process of its own.

    python -m benchmarks.fake_slack_server [--pace 0.0]

Prints its base URL on the first line of stdout, then serves until killed. Benchmarks run
it apart from the process they measure, so the fake's own CPU (parsing and storing every
posted message) does not compete with crobot's for one interpreter lock.
"""

from __future__ import annotations

import argparse
import time

from tests.fake_slack import FakeSlack


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pace", type=float, default=0.0, help="seconds per call (throttled Slack)")
    args = p.parse_args(argv)
    fake = FakeSlack().start()
    fake.state.pace_seconds = args.pace
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
