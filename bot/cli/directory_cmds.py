"""`crobot org|study|person|channel ...`: who is who, and which channel serves which study."""

from __future__ import annotations

import argparse
from typing import Any

from crobot.bot.cli.context import CliContext, run_service
from crobot.services import directory, signatures, workdays
from crobot.storage.models import Organization, OrgKind, Role, SignatureMode

FOUR_EYES_HELP = (
    "four eyes: even a sponsor approver's own KPI values and milestone completions wait "
    "for a second approver"
)
SIGNATURES_HELP = (
    "how decisions are made: 'part11' (21 CFR Part 11 electronic signatures: the approver's "
    "Slack identity plus their signing PIN) or 'acknowledge' (the Slack identity alone; "
    "shown as acknowledged, not signed; the default)"
)


TARGET_HELP = "patients the study plans to enrol (what `crobot forecast` aims at)"
ROLE_HELP = "sponsor_approver decides submissions; *_lead is told of its people's overdue actions"
ESCALATE_HELP = (
    "working days an action may be overdue before its owner's lead and the sponsor channel "
    "are told (default 3; 0: never)"
)
REPORT_DAYS_HELP = (
    "days after a period's end within which a KPI report counts as on time in the vendor "
    "scorecards (default 5)"
)


def register(sub: Any) -> None:
    org = sub.add_parser("org", help="organisations (sponsor, CROs, CMOs, labs)")
    osub = org.add_subparsers(dest="org_command", required=True)
    p = osub.add_parser("add", help="add an organisation")
    p.add_argument("name")
    p.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
    _slack_ids(p)
    p.set_defaults(func=cmd_org_add)
    p = osub.add_parser(
        "update", help="register an organisation's Slack workspace (its users become members)"
    )
    p.add_argument("name")
    _slack_ids(p)
    p.set_defaults(func=cmd_org_update)

    study = sub.add_parser("study", help="studies and their vendors")
    ssub = study.add_subparsers(dest="study_command", required=True)
    p = ssub.add_parser("add", help="add a study")
    p.add_argument("code", help="e.g. ONC-301")
    p.add_argument("--title", required=True)
    p.add_argument("--sponsor", required=True, help="sponsor organisation name")
    p.add_argument("--phase")
    p.add_argument("--four-eyes", action="store_true", help=FOUR_EYES_HELP)
    p.add_argument("--signatures", choices=[m.value for m in SignatureMode], help=SIGNATURES_HELP)
    p.add_argument("--enrolment-target", type=int, help=TARGET_HELP)
    p.add_argument("--escalate-after", type=int, dest="escalate_after_days", help=ESCALATE_HELP)
    p.add_argument("--kpi-report-days", type=int, help=REPORT_DAYS_HELP)
    p.set_defaults(func=cmd_study_add)
    p = ssub.add_parser("update", help="change a study's settings")
    p.add_argument("code", help="e.g. ONC-301")
    p.add_argument(
        "--four-eyes", action=argparse.BooleanOptionalAction, default=None, help=FOUR_EYES_HELP
    )
    p.add_argument("--signatures", choices=[m.value for m in SignatureMode], help=SIGNATURES_HELP)
    p.add_argument("--enrolment-target", type=int, help=TARGET_HELP)
    p.add_argument("--escalate-after", type=int, dest="escalate_after_days", help=ESCALATE_HELP)
    p.add_argument("--kpi-report-days", type=int, help=REPORT_DAYS_HELP)
    p.set_defaults(func=cmd_study_update)
    vendor = ssub.add_parser("vendor", help="vendors on a study")
    vsub = vendor.add_subparsers(dest="vendor_command", required=True)
    p = vsub.add_parser("add", help="put a vendor organisation on a study")
    p.add_argument("study")
    p.add_argument("vendor")
    p.add_argument("--scope", help="services, e.g. 'monitoring, data management'")
    p.set_defaults(func=cmd_vendor_add)

    person = sub.add_parser("person", help="Slack users and their roles")
    psub = person.add_subparsers(dest="person_command", required=True)
    p = psub.add_parser("add", help="register a Slack user")
    p.add_argument("user_id", help="Slack user id (U...)")
    p.add_argument("--team", required=True, dest="team_id", help="Slack team id (T...)")
    p.add_argument("--name", required=True, dest="display_name")
    p.add_argument("--org", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role], help=ROLE_HELP)
    p.add_argument("--tz", dest="timezone", help="IANA time zone, e.g. Asia/Kolkata")
    p.add_argument("--country", help="whose public holidays apply (ISO code; default: the zone's)")
    p.set_defaults(func=cmd_person_add)

    p = psub.add_parser("update", help="change a person's time zone, holiday country or role")
    p.add_argument("user_id", help="Slack user id (U...)")
    p.add_argument("--team", required=True, dest="team_id", help="Slack team id (T...)")
    p.add_argument("--tz", dest="timezone", help="IANA time zone, e.g. Asia/Kolkata")
    p.add_argument("--country", help="whose public holidays apply (ISO code, e.g. DE)")
    p.add_argument("--role", choices=[r.value for r in Role], help=ROLE_HELP)
    p.set_defaults(func=cmd_person_update)

    p = psub.add_parser(
        "reset-pin", help="remove a person's forgotten signing PIN (they set a new one in Home)"
    )
    p.add_argument("user_id", help="Slack user id (U...)")
    p.add_argument("--team", required=True, dest="team_id", help="Slack team id (T...)")
    p.set_defaults(func=cmd_person_reset_pin)

    channel = sub.add_parser("channel", help="link Slack channels to studies")
    csub = channel.add_subparsers(dest="channel_command", required=True)
    p = csub.add_parser("link", help="link a channel to a study and an audience")
    p.add_argument("channel_id", help="Slack channel id (C...)")
    p.add_argument("--team", required=True, dest="team_id")
    p.add_argument("--study", required=True)
    p.add_argument("--audience", required=True, help="sponsor | joint | vendor:ORG | joint:ORG")
    p.add_argument("--tz", dest="timezone", default="UTC", help="IANA zone for digests")
    p.add_argument("--country", help="whose public holidays apply (ISO code; default: the zone's)")
    p.set_defaults(func=cmd_channel_link)


def _slack_ids(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--slack-team",
        dest="slack_team_id",
        help="its Slack workspace id (T...): that workspace's users are its members",
    )
    p.add_argument(
        "--enterprise",
        dest="slack_enterprise_id",
        help="its Enterprise Grid org id (E...): every workspace of it, when no --slack-team",
    )


def _fields(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def cmd_org_add(args: argparse.Namespace, ctx: CliContext) -> int:
    org = run_service(
        ctx,
        directory.add_org,
        **_fields(args, "name", "kind", "slack_team_id", "slack_enterprise_id"),
    )
    print(f"organisation #{org.id} {org.name} ({org.kind.value}) added{_where(org)}")
    return 0


def cmd_org_update(args: argparse.Namespace, ctx: CliContext) -> int:
    org = run_service(
        ctx, directory.update_org, **_fields(args, "name", "slack_team_id", "slack_enterprise_id")
    )
    print(f"organisation {org.name}:{_where(org) or ' no Slack workspace registered'}")
    return 0


def _where(org: Organization) -> str:
    parts = [f"workspace {org.slack_team_id}"] if org.slack_team_id else []
    parts += [f"Enterprise Grid org {org.slack_enterprise_id}"] if org.slack_enterprise_id else []
    return f" (Slack {', '.join(parts)})" if parts else ""


def cmd_study_add(args: argparse.Namespace, ctx: CliContext) -> int:
    study = run_service(
        ctx,
        directory.add_study,
        **_fields(
            args,
            "code",
            "title",
            "sponsor",
            "phase",
            "four_eyes",
            "signatures",
            "enrolment_target",
            "escalate_after_days",
            "kpi_report_days",
        ),
    )
    notes = [_four_eyes(True)] if study.four_eyes else []
    if study.escalate_after_days != 3:
        notes.append(_escalation(study.escalate_after_days))
    if study.signatures == SignatureMode.PART11:
        notes.append(_signatures(study.signatures))
    print(f"study {study.code} added" + (f" ({'; '.join(notes)})" if notes else ""))
    if study.enrolment_target:
        print(f"enrolment target: {study.enrolment_target} patients")
    return 0


def cmd_study_update(args: argparse.Namespace, ctx: CliContext) -> int:
    study = run_service(
        ctx,
        directory.update_study,
        **_fields(
            args,
            "code",
            "four_eyes",
            "signatures",
            "enrolment_target",
            "escalate_after_days",
            "kpi_report_days",
        ),
    )
    print(
        f"study {study.code}: {_four_eyes(study.four_eyes)}; {_signatures(study.signatures)}; "
        f"{_escalation(study.escalate_after_days)}"
    )
    if study.enrolment_target:
        print(f"enrolment target: {study.enrolment_target} patients")
    print(f"KPI reports on time: within {study.kpi_report_days} day(s) of the period end")
    return 0


def _escalation(days: int) -> str:
    if days == 0:
        return "overdue actions are not escalated"
    return f"overdue actions escalated after {days} working day(s)"


def _signatures(mode: SignatureMode) -> str:
    if mode == SignatureMode.PART11:
        return "Part 11 signatures (every decision needs the approver's signing PIN)"
    return "decisions acknowledged by Slack identity (not Part 11 signatures)"


def _four_eyes(on: bool) -> str:
    if on:
        return "four eyes on (a second approver decides every submission, even an approver's)"
    return "four eyes off (a sponsor approver's own sponsor values are approved at once)"


def cmd_vendor_add(args: argparse.Namespace, ctx: CliContext) -> int:
    run_service(ctx, directory.add_study_vendor, **_fields(args, "study", "vendor", "scope"))
    print(f"{args.vendor} is now a vendor on {args.study.upper()}")
    return 0


def cmd_person_add(args: argparse.Namespace, ctx: CliContext) -> int:
    person = run_service(
        ctx,
        directory.add_person,
        **_fields(args, "team_id", "user_id", "display_name", "org", "role", "timezone", "country"),
    )
    print(
        f"{person.display_name} ({person.team_id}:{person.slack_user_id}) added as "
        f"{person.role.value}"
    )
    return 0


def cmd_person_reset_pin(args: argparse.Namespace, ctx: CliContext) -> int:
    run_service(ctx, signatures.reset_pin, team_id=args.team_id, user_id=args.user_id)
    print(f"signing PIN of {args.team_id}:{args.user_id} removed; they set a new one in Home")
    return 0


def cmd_person_update(args: argparse.Namespace, ctx: CliContext) -> int:
    person = run_service(
        ctx,
        directory.update_person,
        **_fields(args, "team_id", "user_id", "timezone", "country", "role"),
    )
    place = person.country or f"{workdays.zone_country(person.timezone) or '—'} (from the zone)"
    print(
        f"{person.display_name} ({person.team_id}:{person.slack_user_id}): "
        f"{person.timezone or 'zone from Slack'}; holidays of {place}; {person.role.value}"
    )
    return 0


def cmd_channel_link(args: argparse.Namespace, ctx: CliContext) -> int:
    link = run_service(
        ctx,
        directory.link_channel,
        **_fields(args, "team_id", "channel_id", "study", "audience", "timezone", "country"),
    )
    print(
        f"channel {link.channel_id} linked to {args.study.upper()} as {args.audience} "
        f"({link.timezone})"
    )
    return 0
