"""`crobot serve [--host H --port P --workers N | --socket]`: run the Slack app."""

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
        "--workers",
        type=int,
        default=None,
        help="HTTP worker processes (default: the number of cores); the digest scheduler "
        "runs once, beside them",
    )
    p.add_argument(
        "--socket",
        action="store_true",
        help="use Socket Mode (needs SLACK_APP_TOKEN, no public URL)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, ctx: CliContext) -> int:
    from crobot.bot.runners import default_workers, run_http, run_socket

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port (1-65535).")
    if args.workers is not None and not 0 < args.workers <= 64:
        raise CliError(f"--workers {args.workers}: give 1 to 64 worker processes.")
    if args.socket and args.workers not in (None, 1):
        raise CliError("--workers is for HTTP mode: Socket Mode is one connection, one process.")
    try:
        if args.socket:
            run_socket(ctx.settings)
        else:
            workers = args.workers if args.workers is not None else default_workers()
            run_http(ctx.settings, host=args.host, port=args.port, workers=workers)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return 0
