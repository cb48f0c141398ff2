"""`crobot kpi import`, `crobot export`, `crobot audit verify|anchor|export`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date
from pathlib import Path
from typing import IO, Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from crobot.bot.app import build_web_client
from crobot.bot.cli import catalogue_cmds
from crobot.bot.cli.context import CLI_ACTOR, CliContext, CliError, acting_as
from crobot.bot.cli.progress import Progress
from crobot.digests.delivery import Delivery, delivery_client
from crobot.services import anchors, audit, export, signatures
from crobot.services.actor import Actor
from crobot.services.errors import UserError
from crobot.services.kpi_import import CsvFile, ImportResult, import_csv, verify_imports
from crobot.services.runtime import Runtime
from crobot.storage.models import DigestRun


class Importer(Protocol):
    def __call__(
        self,
        session: Session,
        actor: Actor,
        file: CsvFile,
        *,
        today: date,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportResult: ...


def register(sub: Any) -> None:
    kpi = sub.add_parser("kpi", help="KPI values, the KPI catalogue and study targets")
    ksub = kpi.add_subparsers(dest="kpi_command", required=True)
    p = ksub.add_parser("import", help="import KPI values from CSV (all rows or none)")
    p.add_argument("file", type=Path, help="CSV with columns study,org,kpi,period,value[,note]")
    p.add_argument(
        "--as",
        dest="as_person",
        metavar="PERSON",
        help="import as this registered person (U123 or TEAM:U123): their role decides "
        "which rows wait for an approver; default: the operator, every row waits",
    )
    p.set_defaults(func=cmd_kpi_import)
    catalogue_cmds.register(ksub)

    p = sub.add_parser(
        "export", help="export milestones, actions, KPI values or the approval history as CSV"
    )
    p.add_argument("what", choices=["milestones", "actions", "kpis", "approvals", "qtl"])
    p.add_argument("--study", help="only this study")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.add_argument(
        "--format",
        choices=["csv", "md"],
        default="csv",
        help="qtl only: CSV, or a Markdown table for the CSR (section 9.6)",
    )
    p.add_argument(
        "--as",
        dest="as_person",
        metavar="PERSON",
        help="qtl only: what this registered person sees (a vendor: its own KPIs' breaches)",
    )
    p.set_defaults(func=cmd_export)

    aud = sub.add_parser("audit", help="the hash-chained audit trail")
    asub = aud.add_subparsers(dest="audit_command", required=True)
    p = asub.add_parser(
        "verify",
        help="check the hash chain (names the first broken link) and that every signed "
        "decision is bound to what it signed",
    )
    p.add_argument(
        "--anchors",
        action="store_true",
        help="also read every anchor back from Slack and check the chain against it",
    )
    p.set_defaults(func=cmd_audit_verify)
    p = asub.add_parser(
        "anchor",
        help="post the chain's head to each study's sponsor channel (once a day; the "
        "scheduler does it daily)",
    )
    p.set_defaults(func=cmd_audit_anchor)
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
    result = run_import(args.file, ctx, import_csv, as_person=args.as_person)
    print(f"imported {result.rows} KPI value(s) for {', '.join(sorted(result.studies))}")
    return 0


def run_import(
    path: Path, ctx: CliContext, importer: Importer, *, as_person: str | None = None
) -> ImportResult:
    """Read a CSV file and import it in one transaction, all rows or none, as the CLI
    operator or as the registered person `as_person` names; a refused file is one CliError
    naming its bad rows."""
    try:
        file = CsvFile.of(path.name, path.read_bytes())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UserError as exc:
        raise CliError(f"{path}: {exc}") from None
    today = Runtime(ctx.db, ctx.settings.default_tz).today()
    progress = Progress("validating and importing rows")
    try:
        with ctx.db.write() as session:
            actor = acting_as(session, as_person) if as_person else CLI_ACTOR
            result = importer(session, actor, file, today=today, progress=progress.update)
    except UserError as exc:
        progress.done()
        raise CliError(f"{path}: {exc}") from None
    progress.done()
    return result


def cmd_export(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.read() as session, _output(args.out) as out:
            if args.what != "qtl" and (args.format != "csv" or args.as_person):
                raise UserError("`--format md` and `--as` are for `crobot export qtl` only.")
            if args.what == "qtl":
                actor = acting_as(session, args.as_person) if args.as_person else None
                count = export.export_qtl(
                    session, out, fmt=args.format, study=args.study, actor=actor
                )
            elif args.what == "approvals":
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
        problems = signatures.verify_signatures(session)
        imports = verify_imports(session)
    print(result.describe())
    for problem in problems:
        print(f"SIGNATURE BROKEN: {problem}")
    for problem in imports:
        print(f"IMPORTED ROWS CHANGED: {problem}")
    problems += imports
    if result.unverifiable:
        return 2
    if not args.anchors:
        return 0 if result.ok and not problems else 1
    fetch = _anchor_reader(_slack_client(ctx))
    with ctx.db.read() as session:
        checks = anchors.check(session, fetch)
    for check in checks:
        print(("  " if check.ok else "  MISMATCH ") + check.describe())
    bad = sum(not c.ok for c in checks)
    print(
        f"anchors: {len(checks)} read back, all match the chain"
        if not bad
        else f"anchors: {bad} of {len(checks)} do not match the chain"
    )
    return 0 if result.ok and not problems and not bad else 1


def cmd_audit_anchor(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = Runtime(ctx.db, ctx.settings.default_tz)
    delivery = Delivery(runtime, delivery_client(_slack_client(ctx)))
    day = runtime.now().astimezone(UTC).date().isoformat()
    outcomes = delivery.send_anchors(day)
    if not outcomes:
        print("no study has a sponsor channel to anchor to")
    for outcome in outcomes:
        with ctx.db.read() as session:
            run = session.get(DigestRun, outcome.run_id) if outcome.run_id else None
        what = run.target if run else "?"
        print(f"{what} {day}: {outcome.state}" + (f" ts={outcome.ts}" if outcome.ts else ""))
    return 0 if all(o.state in ("sent", "duplicate", "skipped") for o in outcomes) else 1


def _slack_client(ctx: CliContext) -> WebClient:
    token = ctx.settings.slack_bot_token
    if token is None or not token.get_secret_value():
        raise CliError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...).")
    return build_web_client(ctx.settings)


def _anchor_reader(client: WebClient) -> anchors.Fetch:
    def fetch(channel: str, ts: str) -> dict[str, Any] | None:
        try:
            resp = client.conversations_history(
                channel=channel,
                latest=ts,
                oldest=ts,
                inclusive=True,
                limit=1,
                include_all_metadata=True,
            )
        except SlackApiError as exc:
            raise anchors.Unreadable(str(exc.response.get("error", "error"))) from None
        found = [m for m in resp.get("messages") or [] if m.get("ts") == ts]
        return dict(found[0]) if found else None

    return fetch


def cmd_audit_export(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        with ctx.db.read() as session, _output(args.out) as out:
            count = export.export_audit(session, out, fmt=args.format, study=args.study)
    except UserError as exc:
        raise CliError(str(exc)) from None
    if args.out:
        print(f"wrote {count} audit event(s) to {args.out}")
    return 0
