"""`crobot qtl set | list | off`: quality tolerance limits from the command line.

The operator acts with the sponsor's authority (as for every CLI write, audited with the
operating-system account); `--as PERSON` acts as that person, whose role then decides."""

from __future__ import annotations

import argparse
from typing import Any

from crobot.bot.cli.context import CLI_ACTOR, CliContext, CliError, acting_as
from crobot.services import qtl
from crobot.services.errors import UserError
from crobot.services.kpi_values import shown
from crobot.services.lookup import study_by_code
from crobot.services.visibility import Audience, Scope


def register(sub: Any) -> None:
    q = sub.add_parser("qtl", help="quality tolerance limits (ICH E6(R3))")
    qsub = q.add_subparsers(dest="qtl_command", required=True)
    p = qsub.add_parser("set", help="set a study's limit on one KPI (trial level or one org)")
    p.add_argument("study")
    p.add_argument("kpi")
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--max", help="values above it breach (a lower-is-better KPI)")
    side.add_argument("--min", help="values below it breach (a higher-is-better KPI)")
    p.add_argument("--warn", help="warning threshold (a key risk indicator) inside the limit")
    p.add_argument("--org", help="only this organisation's values (default: trial level)")
    p.add_argument("--rationale", help="why this limit (kept in the audit trail)")
    p.add_argument("--as", dest="as_person", metavar="PERSON", help="act as this person")
    p.set_defaults(func=cmd_qtl_set)
    p = qsub.add_parser("list", help="limits in force and open breaches")
    p.add_argument("study")
    p.set_defaults(func=cmd_qtl_list)
    p = qsub.add_parser("off", help="withdraw a limit (its breaches stay on record)")
    p.add_argument("id", type=int)
    p.add_argument("--as", dest="as_person", metavar="PERSON", help="act as this person")
    p.set_defaults(func=cmd_qtl_off)


def cmd_qtl_set(args: argparse.Namespace, ctx: CliContext) -> int:
    bound, limit = ("max", args.max) if args.max is not None else ("min", args.min)
    try:
        with ctx.db.write() as s:
            actor = acting_as(s, args.as_person) if args.as_person else CLI_ACTOR
            lim = qtl.set_limit(
                s,
                actor,
                study=args.study,
                kpi=args.kpi,
                bound=bound,
                limit=limit,
                warn=args.warn,
                org=args.org,
                rationale=args.rationale,
            )
            print(f"limit #{lim.id}: {lim.kpi.key} {qtl.limit_text(lim.bound, lim.limit_value)}")
    except UserError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_qtl_list(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.read() as s:
            study = study_by_code(s, args.study)
            everything = Audience(study.id, Scope.SPONSOR, None, study.sponsor_org_id)
            for lim in qtl.limits(s, study.id, everything):
                who = lim.org.name if lim.org is not None else "trial level"
                warn = (
                    f" warn {qtl.limit_text(lim.bound, lim.warn_value)}"
                    if lim.warn_value is not None
                    else ""
                )
                why = f" — {lim.rationale}" if lim.rationale else ""
                print(
                    f"#{lim.id} {lim.kpi.key} {qtl.limit_text(lim.bound, lim.limit_value)}"
                    f"{warn} ({who}){why}"
                )
            for b in qtl.breaches(s, everything, open_only=True):
                print(
                    f"breach #{b.id} {b.kpi.key} {b.org.name} {b.period_label}: "
                    f"{shown(b.observed)} (limit {qtl.limit_text(b.bound, b.limit_value)}) open"
                )
    except UserError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_qtl_off(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.write() as s:
            actor = acting_as(s, args.as_person) if args.as_person else CLI_ACTOR
            lim = qtl.turn_off(s, actor, args.id)
            print(f"limit #{lim.id} withdrawn")
    except UserError as exc:
        raise CliError(str(exc)) from None
    return 0
