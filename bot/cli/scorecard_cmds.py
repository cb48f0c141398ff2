"""`crobot scorecard [--org ORG] [--study CODE] [--quarter 2026Q4] [--json|--csv]`: vendor
scorecards from the command line (the operator sees every vendor, as the sponsor does)."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crobot.bot.cli.context import CliContext, CliError
from crobot.handlers.scorecard_blocks import change_cell, target_cell, with_unit
from crobot.services import scorecards
from crobot.services.errors import UserError
from crobot.services.lookup import org_by_name, study_by_code
from crobot.services.quarters import Quarter
from crobot.services.runtime import Runtime
from crobot.services.scorecards import Scorecard
from crobot.services.visibility import Audience, Scope
from crobot.storage.models import Study, StudyVendor


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scorecard",
        help="vendor scorecards: computed measures and reported KPIs against their targets",
    )
    p.add_argument("--org", help="only this vendor (default: every vendor)")
    p.add_argument("--study", help="only this study (default: every study)")
    p.add_argument(
        "--quarter", help="the quarter, e.g. 2026Q4 or 2026-Q4 (default: the current one)"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list, one object per vendor")
    fmt.add_argument("--csv", action="store_true", help="CSV, one row per line of a scorecard")
    p.set_defaults(func=cmd_scorecard)


def cmd_scorecard(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = Runtime(ctx.db, ctx.settings.default_tz)
    today = runtime.today()
    try:
        quarter = Quarter.parse(args.quarter) if args.quarter else Quarter.of(today)
        with ctx.db.read() as s:
            cards = collect(s, study=args.study, org=args.org, quarter=quarter, today=today)
    except UserError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(scorecards.to_json(cards), indent=2, ensure_ascii=False))
    elif args.csv:
        print(scorecards.to_csv(cards), end="")
    else:
        print(render_text(cards, quarter))
    return 0


def collect(
    s: Session, *, study: str | None, org: str | None, quarter: Quarter, today: date
) -> list[Scorecard]:
    """The scorecards asked for: one study's or every study's, one vendor's or all."""
    if study is not None:
        studies = [study_by_code(s, study)]
    else:
        stmt = select(Study).where(Study.id.in_(select(StudyVendor.study_id)))
        if org is not None:
            vendor = org_by_name(s, org)
            stmt = stmt.where(
                Study.id.in_(select(StudyVendor.study_id).where(StudyVendor.org_id == vendor.id))
            )
        studies = list(s.scalars(stmt.order_by(Study.code)))
        if org is not None and not studies:
            raise UserError(f"{vendor.name} is not a vendor on any study.")
    cards: list[Scorecard] = []
    for st in studies:
        everything = Audience(st.id, Scope.SPONSOR, None, st.sponsor_org_id)
        orgs = scorecards.orgs_for(s, st, everything, org)
        cards += scorecards.build(s, st, orgs, quarter, today=today)
    return cards


def render_text(cards: list[Scorecard], quarter: Quarter) -> str:
    if not cards:
        return f"No vendor scorecards for {quarter.label}."
    out: list[str] = []
    for c in cards:
        out.append(
            f"{c.org_name} — {c.study_code} — {c.quarter.label} "
            f"(as of {c.as_of.isoformat()}; change vs {c.quarter.previous().label})"
        )
        for line in c.lines:
            kind = "computed" if line.computed else "reported"
            out.append(
                f"  {line.label} [{kind}]: {with_unit(line.value, line.unit)} · target "
                f"{target_cell(line)} · {line.status} · {change_cell(line)}"
            )
            out.append(f"      {line.explanation}")
        out.append("")
    return "\n".join(out).rstrip()
