"""`/cro help [topic]`: the grammar, per topic, with examples (crobot's own markup)."""

from __future__ import annotations

from crobot.handlers.blockkit import Mrkdwn, context, header, section
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.services.command_parser import suggest
from crobot.services.dates import DATE_HINT
from crobot.services.errors import UserError, msg

TOPICS: dict[str, tuple[str, list[str]]] = {
    "status": (
        "Study status",
        [
            "`/cro status [STUDY]` — milestones due and late, open and overdue actions, "
            "latest KPIs, pending approvals.",
        ],
    ),
    "milestone": (
        "Milestones",
        [
            '`/cro milestone add STUDY "Name" planned:YYYY-MM-DD [org:ORG] [count:N] [--shared]`',
            "`/cro milestone update ID forecast:DATE` · `status:at_risk` · `status:planned` "
            "· `status:auto` · `count:N` · `done [actual:DATE]`",
            "`count:N` makes it an enrolment milestone (N patients by the planned date): the "
            "forecast marks it at risk below 50% on-time odds, unless the sponsor pinned its "
            "status by hand (`status:auto` hands it back).",
            "`/cro milestone list [STUDY] [--open|--late]`",
            "A `done` waits for a sponsor approver, unless an approver completes the "
            "sponsor's own milestone (and the study has no four eyes).",
        ],
    ),
    "action": (
        "Action items",
        [
            '`/cro action add STUDY "Title" @owner due:DATE [priority:low|normal|high] '
            "[milestone:ID] [--shared]`",
            "`/cro action done ID`",
            "`/cro action list [STUDY] [@owner|mine] [--overdue] [--all]` "
            "(in a direct message: all your studies)",
        ],
    ),
    "kpi": (
        "KPIs",
        [
            '`/cro kpi report STUDY KPI VALUE [period:2026-W47] [note:"..."] [org:ORG]`',
            "`/cro kpi show STUDY KPI [last:8w]` · `/cro kpi trend STUDY KPI` · "
            "`/cro kpi list [STUDY]`",
            "`/cro kpi target STUDY KPI N [org:ORG]` · `/cro kpi target STUDY KPI --clear "
            "[org:ORG]` — sponsor approvers; the organisation's target, else the study's, "
            "else the catalogue's default applies, and every view says which.",
            "A value waits for a sponsor approver, unless an approver reports the sponsor's "
            "own (and the study has no four eyes); corrections supersede. A vendor reports "
            "the KPIs of its kind (CRO, CMO, lab) and those for everyone; a retired KPI "
            "takes no new value. The catalogue itself is the operator's (`crobot kpi define "
            "| update | retire`).",
            "Values: `12`, `1.5` or `1,5`; `1,500` is 1500; `%` only for percentages; each "
            "KPI has a range (`/cro kpi list`).",
        ],
    ),
    "site": (
        "Sites and enrolment",
        [
            '`/cro site add STUDY SITE "Name" country:DE org:ORG [planned:DATE] [activated:DATE]`',
            "`/cro site report STUDY SITE enrolled N [period:2026-W47]` — patients enrolled "
            "in that period; waits for a sponsor approver as a KPI value does.",
            "`/cro site list [STUDY]` — a vendor sees its own sites only.",
        ],
    ),
    "qtl": (
        "Quality tolerance limits",
        [
            '`/cro qtl set STUDY KPI max:N|min:N [warn:N] [org:ORG] [rationale:"..."]` — '
            "sponsor approvers; `max` for a lower-is-better KPI, `min` otherwise.",
            "`/cro qtl list [STUDY]` — limits in force and open breaches · `/cro qtl off ID`",
            "An approved value beyond a limit opens a breach, posted with Assign owner / "
            "Evaluate; a sponsor approver closes it once evaluated.",
        ],
    ),
    "forecast": (
        "Enrolment forecast",
        [
            "`/cro forecast [STUDY]` — P10 / P50 / P90 dates to reach the enrolment target "
            "(Poisson–gamma model; a labelled pooled-Poisson fallback with fewer than 5 "
            "active sites or 8 weeks of data), and each enrolment milestone's on-time odds.",
        ],
    ),
    "scorecard": (
        "Vendor scorecards",
        [
            "`/cro scorecard [ORG] [period:2026-Q4] [study:CODE]` — per vendor: the measures "
            "crobot computes from its records (milestones and actions on time, forecast "
            "slips, KPI reports on time and rejected, the sponsor's approval turnaround) and "
            "the vendor's reported KPIs, against their targets, with the change from the "
            "previous quarter.",
            "The sponsor's staff see every vendor's; a vendor sees only its own. Each "
            "quarter's scorecards are posted on the first working morning after it ends.",
        ],
    ),
    "digest": (
        "Digests",
        [
            '`/cro digest preview` · `/cro digest schedule "Mon 09:00" [tz:Europe/Berlin]` '
            "· `/cro digest off`",
        ],
    ),
    "dates": ("Dates", [DATE_HINT, "Dates are read in your own Slack time zone."]),
}
HELP_HINT = "Topics: " + ", ".join(f"`{t}`" for t in TOPICS) + " — e.g. `/cro help kpi`."


def help_command(ctx: CommandContext, args: list[str]) -> Reply:
    if len(args) > 1:
        raise UserError("`help` takes one topic at most.", HELP_HINT)
    if args:
        topic = args[0].lower().removesuffix("s")
        topic = {"date": "dates", "milestones": "milestone"}.get(topic, topic)
        if topic not in TOPICS:
            did = suggest(args[0].lower(), TOPICS)
            raise UserError(msg("There is no help topic `{}`. {}", args[0], did), HELP_HINT)
        title, lines = TOPICS[topic]
        return Reply(
            Mrkdwn(f"{title}: " + " ".join(lines)),
            [header(f"/cro {topic}"), section(Mrkdwn("\n".join(lines)))],
        )
    blocks = [header("crobot: /cro commands")]
    text = []
    for _topic, (title, lines) in TOPICS.items():
        blocks.append(section(Mrkdwn(f"*{title}*\n" + "\n".join(lines))))
        text.append(title)
    more = "In a channel linked to a study you may leave out STUDY. " + HELP_HINT
    blocks.append(context(Mrkdwn(more)))
    return Reply(Mrkdwn("crobot commands: " + ", ".join(text)), blocks)
