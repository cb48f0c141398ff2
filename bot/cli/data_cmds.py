"""`crobot kpi import`, `crobot export`, `crobot audit verify|export`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy.orm import Session

from crobot.bot.cli.context import CLI_ACTOR, CliContext, CliError
from crobot.bot.cli.progress import Progress
from crobot.services import audit, export
from crobot.services.actor import Actor
from crobot.services.errors import UserError
from crobot.services.kpi_import import ImportResult, import_csv
from crobot.services.runtime import Runtime


class Importer(Protocol):
    def __call__(
        self,
        session: Session,
        actor: Actor,
        text: str,
        *,
        today: date,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportResult: ...


def register(sub: Any) -> None:
    kpi = sub.add_parser("kpi", help="KPI values")
    ksub = kpi.add_subparsers(dest="kpi_command", required=True)
    p = ksub.add_parser("import", help="import KPI values from CSV (all rows or none)")
    p.add_argument("file", type=Path, help="CSV with columns study,org,kpi,period,value[,note]")
    p.set_defaults(func=cmd_kpi_import)

    p = sub.add_parser(
        "export", help="export milestones, actions, KPI values or the approval history as CSV"
    )
    p.add_argument("what", choices=["milestones", "actions", "kpis", "approvals"])
    p.add_argument("--study", help="only this study")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    aud = sub.add_parser("audit", help="the hash-chained audit trail")
    asub = aud.add_subparsers(dest="audit_command", required=True)
    p = asub.add_parser("verify", help="check the hash chain; names the first broken link")
    p.set_defaults(func=cmd_audit_verify)
    p = asub.add_parser("export", help="export the audit trail for an inspection")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--study", help="only events of this study")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(func=cmd_audit_export)


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        yield fh


def cmd_kpi_import(args: argparse.Namespace, ctx: CliContext) -> int:
    result = run_import(args.file, ctx, import_csv)
    print(f"imported {result.rows} KPI value(s) for {', '.join(sorted(result.studies))}")
    return 0


def run_import(path: Path, ctx: CliContext, importer: Importer) -> ImportResult:
    """Read a CSV file and import it in one transaction as the CLI operator, all rows or
    none; a refused file is one CliError naming its bad rows."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    today = Runtime(ctx.db, ctx.settings.default_tz).today()
    progress = Progress("validating and importing rows")
    try:
        with ctx.db.write() as session:
            result = importer(session, CLI_ACTOR, text, today=today, progress=progress.update)
    except UserError as exc:
        progress.done()
        raise CliError(f"{path}: {exc}") from None
    progress.done()
    return result


def cmd_export(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.read() as session, _output(args.out) as out:
            if args.what == "approvals":
                count = export.export_approvals(session, out, study=args.study)
            else:
                count = export.export_csv(session, args.what, out, study=args.study)
    except UserError as exc:
        raise CliError(str(exc)) from None
    if args.out:
        print(f"wrote {count} {args.what} row(s) to {args.out}")
    return 0


def cmd_audit_verify(args: argparse.Namespace, ctx: CliContext) -> int:
    with ctx.db.read() as session:
        result = audit.verify(session)
    print(result.describe())
    return 0 if result.ok else 1


def cmd_audit_export(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.read() as session, _output(args.out) as out:
            count = export.export_audit(session, out, fmt=args.format, study=args.study)
    except UserError as exc:
        raise CliError(str(exc)) from None
    if args.out:
        print(f"wrote {count} audit event(s) to {args.out}")
    return 0
