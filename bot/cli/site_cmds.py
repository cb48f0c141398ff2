"""`crobot site import FILE.csv` and `crobot forecast STUDY`."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from crobot.bot.cli.context import CliContext, CliError
from crobot.bot.cli.data_cmds import run_import
from crobot.services import forecast_text
from crobot.services.enrolment import study_forecast
from crobot.services.errors import UserError
from crobot.services.lookup import study_by_code
from crobot.services.runtime import Runtime
from crobot.services.site_import import import_csv


def register(sub: Any) -> None:
    site = sub.add_parser("site", help="study sites and their enrolment")
    ssub = site.add_subparsers(dest="site_command", required=True)
    p = ssub.add_parser("import", help="import sites and enrolment from CSV (all rows or none)")
    p.add_argument(
        "file",
        type=Path,
        help="CSV with columns study,site,country,org,activated,period,enrolled[,name,planned]",
    )
    p.set_defaults(func=cmd_site_import)

    p = sub.add_parser("forecast", help="when a study reaches its enrolment target, with odds")
    p.add_argument("study")
    p.add_argument("--target", type=int, help="patients (default: the study's enrolment target)")
    p.add_argument("--as-of", type=_iso_date, help="forecast as of this date (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_forecast)


def _iso_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {raw!r}") from None


def cmd_site_import(args: argparse.Namespace, ctx: CliContext) -> int:
    result = run_import(args.file, ctx, import_csv)
    print(f"imported {result.rows} site row(s) for {', '.join(sorted(result.studies))}")
    return 0


def cmd_forecast(args: argparse.Namespace, ctx: CliContext) -> int:
    as_of = args.as_of or Runtime(ctx.db, ctx.settings.default_tz).today()
    try:
        with ctx.db.read() as session:
            study = study_by_code(session, args.study)
            sf = study_forecast(session, study, as_of=as_of, target=args.target)
    except UserError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(sf.as_json()))
        return 0
    warning = forecast_text.fallback_line(sf)
    if warning is not None:
        print(warning)
    print(forecast_text.headline(sf))
    print(forecast_text.model_line(sf))
    for m in sf.forecast.milestones:
        print("  " + forecast_text.milestone_line(m))
    for note in [forecast_text.INTERVAL, *forecast_text.notes(sf)]:
        print(note)
    return 0
