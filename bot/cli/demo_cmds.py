"""`crobot demo`: migrate, load the sample study (idempotently) and print its status and
this quarter's vendor scorecards (the vendor's own only, with `--as VENDOR`)."""

from __future__ import annotations

import argparse
from typing import Any

from crobot.bot.cli.context import CliContext
from crobot.bot.cli.progress import Progress
from crobot.bot.cli.scorecard_cmds import render_text
from crobot.bot.cli.status_text import render_status
from crobot.services import demo, scorecards
from crobot.services.lookup import study_by_code, vendor_org_ids
from crobot.services.quarters import Quarter
from crobot.services.runtime import Runtime
from crobot.services.status import study_status
from crobot.services.visibility import Audience, Scope
from crobot.storage.migrate import upgrade


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="load a sample study into the configured database and show its status"
    )
    p.add_argument(
        "--as",
        dest="view",
        default="sponsor",
        help="whose view to print: sponsor (default) or a vendor name",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    progress = Progress("demo")
    progress.step(f"migrating {ctx.db.engine.url.render_as_string(hide_password=True)}")
    upgrade(ctx.settings.database_url)
    runtime = Runtime(ctx.db, ctx.settings.default_tz)
    today = runtime.today()
    with ctx.db.write() as session:
        loaded = demo.load(session, today=today, progress=progress.step)
    progress.step(
        "loaded sample study " + demo.STUDY
        if loaded
        else f"{demo.STUDY} already present; nothing changed"
    )
    with ctx.db.read() as session:
        study = study_by_code(session, demo.STUDY)
        audience = Audience(study.id, Scope.SPONSOR, None, study.sponsor_org_id)
        if args.view != "sponsor":
            from crobot.services.lookup import org_by_name

            org = org_by_name(session, args.view)
            if org.id not in vendor_org_ids(session, study.id):
                print(f"{org.name} is not a vendor on {study.code}")
                return 2
            audience = Audience(study.id, Scope.VENDOR, org.id, study.sponsor_org_id)
        status = study_status(session, study, audience, today=today)
        print(render_status(status))
        quarter = Quarter.of(today)
        orgs = scorecards.orgs_for(session, study, audience, None)
        cards = scorecards.build(
            session, study, orgs, quarter, today=today, default_tz=runtime.default_tz
        )
        print(f"\nVendor scorecards, {quarter.label} so far (`crobot scorecard --help`)\n")
        print(render_text(cards, quarter))
    return 0
