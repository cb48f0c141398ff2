"""The `crobot` command line. Each command group lives in its own module with `register`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from sqlalchemy.exc import OperationalError

from crobot.bot.cli.context import CliContext, CliError

# Modules that add command groups; each defines `register(subparsers)` and sets `func`.
GROUPS = (
    "crobot.bot.cli.db_cmds",
    "crobot.bot.cli.demo_cmds",
    "crobot.bot.cli.directory_cmds",
    "crobot.bot.cli.data_cmds",
    "crobot.bot.cli.site_cmds",
    "crobot.bot.cli.qtl_cmds",
    "crobot.bot.cli.scorecard_cmds",
    "crobot.bot.cli.serve_cmds",
    "crobot.bot.cli.console_cmds",
    "crobot.bot.cli.digest_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crobot",
        description="crobot: milestones, actions, KPIs, digests and approvals for "
        "sponsor/CRO teams in Slack.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = CliContext()
    try:
        # Inside the try: a malformed setting is a one-line error, not a traceback.
        logging.basicConfig(
            level=ctx.settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        result = args.func(args, ctx)
    except CliError as exc:
        print(f"crobot: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(
            f"crobot: database unavailable ({_first_line(exc)}); check CROBOT_DATABASE_URL",
            file=sys.stderr,
        )
        return 3
    finally:
        ctx.close()
    return int(result or 0)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
