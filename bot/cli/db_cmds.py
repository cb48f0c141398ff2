"""`crobot db upgrade`: bring the schema to the newest Alembic revision."""

from __future__ import annotations

import argparse
from typing import Any

from crobot.bot.cli.context import CliContext
from crobot.services.kpi_catalog import seed_definitions
from crobot.storage.migrate import upgrade


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply migrations and ship KPI definitions")
    up.set_defaults(func=cmd_upgrade)


def cmd_upgrade(args: argparse.Namespace, ctx: CliContext) -> int:
    upgrade(ctx.settings.database_url)
    with ctx.db.write() as s:
        added = seed_definitions(s)
    print(f"database at head; {added} KPI definition(s) added")
    return 0
