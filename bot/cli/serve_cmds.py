"""`crobot serve [--host H --port P | --socket]`: run the Slack app."""

from __future__ import annotations

import argparse
from typing import Any

from crobot.bot.app import ConfigError
from crobot.bot.cli.context import CliContext, CliError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the Slack app (HTTP on --host/--port, or --socket for Socket Mode)"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (HTTP mode)")
    p.add_argument("--port", type=int, default=3000, help="port to listen on (HTTP mode)")
    p.add_argument(
        "--socket",
        action="store_true",
        help="use Socket Mode (needs SLACK_APP_TOKEN, no public URL)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, ctx: CliContext) -> int:
    from crobot.bot.runners import run_http, run_socket

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port (1-65535).")
    try:
        if args.socket:
            run_socket(ctx.settings)
        else:
            run_http(ctx.settings, host=args.host, port=args.port)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return 0
