"""`crobot kpi define | update | retire | list | target`: the sponsor's KPI catalogue and a
study's KPI targets, from the command line.

The catalogue is changed here only (the operator acts with the sponsor's authority, each
change audited with the operating-system account); a study's targets also from Slack by
its sponsor approvers (`/cro kpi target`). `--as PERSON` sets a target as that person,
whose role then decides."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from crobot.bot.cli.context import CLI_ACTOR, CliContext, CliError, acting_as
from crobot.services import kpi_admin, kpi_targets
from crobot.services.errors import UserError
from crobot.services.kpi_values import shown, value_range
from crobot.services.lookup import kpi_definitions, study_by_code
from crobot.storage.models import KpiDefinition, utcnow

UNIT_HELP = "%, days, hours, weeks, a count (count, patients, sites, …), EUR/kEUR/…, score"


def _options(p: argparse.ArgumentParser, *, new: bool) -> None:
    p.add_argument("--label", required=new, help="the name people read (unique)")
    p.add_argument("--unit", required=new, help=UNIT_HELP)
    p.add_argument("--direction", required=new, metavar="up|down", help="which way is better")
    p.add_argument("--target", help="the default target (a study may set its own)")
    p.add_argument("--min", help="the lowest plausible value of one period")
    p.add_argument("--max", help="the highest plausible value of one period")
    p.add_argument(
        "--whole",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="values are whole numbers (it counts things)",
    )
    p.add_argument(
        "--kind",
        metavar="cro|cmo|lab|any|sponsor",
        help="who reports it: vendors of one kind, any vendor, or only the sponsor "
        "(a rating of a vendor); default any",
    )
    p.add_argument(
        "--aggregation", metavar="latest|sum|average", help="how periods add up; default latest"
    )
    p.add_argument("--description", help="what it measures, in a sentence")


def register(ksub: Any) -> None:
    """Add the catalogue's commands to the `crobot kpi` group."""
    p = ksub.add_parser("define", help="add a KPI to the catalogue")
    p.add_argument("key", help="2-40 lower-case letters, digits and _ (e.g. otif_delivery)")
    _options(p, new=True)
    p.set_defaults(func=cmd_define)

    p = ksub.add_parser("update", help="change a KPI's definition (only the options given)")
    p.add_argument("key")
    _options(p, new=False)
    p.add_argument("--no-target", action="store_true", help="remove the default target")
    p.set_defaults(func=cmd_update)

    p = ksub.add_parser("retire", help="retire a KPI: its history stays, no new values")
    p.add_argument("key")
    p.set_defaults(func=cmd_retire)

    p = ksub.add_parser("list", help="the catalogue (and a study's targets with --study)")
    p.add_argument("--study", help="show the targets that apply in this study")
    p.set_defaults(func=cmd_list)

    p = ksub.add_parser(
        "target", help="set a study's target for a KPI (study-wide or one organisation's)"
    )
    p.add_argument("study")
    p.add_argument("kpi", help="a catalogue KPI's key or a computed measure's")
    p.add_argument("value", nargs="?", help="the target (inside the KPI's range)")
    p.add_argument("--org", help="only this organisation (default: study-wide)")
    p.add_argument("--clear", action="store_true", help="remove the target instead")
    p.add_argument("--as", dest="as_person", metavar="PERSON", help="act as this person")
    p.set_defaults(func=cmd_target)


FIELDS = (
    "label",
    "unit",
    "direction",
    "target",
    "min",
    "max",
    "whole",
    "kind",
    "aggregation",
    "description",
)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The options given (an update changes only those; `--no-whole` is given, as False)."""
    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    if getattr(args, "no_target", False):
        given["no_target"] = True
    return given


def _line(kpi: KpiDefinition) -> str:
    target = "no target" if kpi.target is None else f"target {shown(kpi.target)}"
    better = "up" if kpi.direction.value == "up" else "down"
    retired = f", retired {kpi.retired_at.date().isoformat()}" if kpi.retired_at else ""
    return (
        f"{kpi.key}: {kpi.label} ({kpi.unit}, {better}, {target}, {value_range(kpi)}, "
        f"{kpi.aggregation.value}, kind {kpi.kind.value}{retired})"
    )


def _committed(ctx: CliContext, change: Callable[[Session], str]) -> int:
    """Run one change in one transaction; print what it says once it is committed."""
    try:
        with ctx.db.write() as s:
            said = change(s)
    except UserError as exc:
        raise CliError(str(exc)) from None
    print(said)
    return 0


def cmd_define(args: argparse.Namespace, ctx: CliContext) -> int:
    return _committed(
        ctx,
        lambda s: "defined " + _line(kpi_admin.define(s, CLI_ACTOR, key=args.key, **_given(args))),
    )


def cmd_update(args: argparse.Namespace, ctx: CliContext) -> int:
    return _committed(
        ctx,
        lambda s: "updated " + _line(kpi_admin.update(s, CLI_ACTOR, key=args.key, **_given(args))),
    )


def cmd_retire(args: argparse.Namespace, ctx: CliContext) -> int:
    def retire(s: Session) -> str:
        kpi = kpi_admin.retire(s, CLI_ACTOR, key=args.key, now=utcnow())
        return f"retired {kpi.key}: its history stays; it takes no new values"

    return _committed(ctx, retire)


def cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.read() as s:
            book = None
            if args.study:
                study = study_by_code(s, args.study)
                book = kpi_targets.targets_for_study(s, study.id)
            for kpi in kpi_definitions(s):
                print(_line(kpi))
                if book is not None:
                    for applied in book.all_for(kpi.key, kpi.target):
                        whom = applied.org_name or "study-wide"
                        print(f"  {whom}: {applied.describe()}")
    except UserError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_target(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.clear == (args.value is not None):
        raise CliError("give a target value, or --clear (not both)")

    def change(s: Session) -> str:
        actor = acting_as(s, args.as_person) if args.as_person else CLI_ACTOR
        if args.clear:
            done = kpi_targets.clear_target(s, actor, study=args.study, kpi=args.kpi, org=args.org)
        else:
            done = kpi_targets.set_target(
                s, actor, study=args.study, kpi=args.kpi, value=args.value, org=args.org
            )
        whom = f" for {done.org.name}" if done.org else " study-wide"
        now = "target cleared" if done.value is None else done.describe()
        was = "" if done.previous is None else f" (was {shown(done.previous)})"
        return f"{done.study.code} {done.subject.key}{whom}: {now}{was}"

    return _committed(ctx, change)
