"""Render a DigestView into Block Kit blocks plus a plain-text fallback, via Jinja2 templates.

Escaping: every `{{ value }}` in the templates passes through `slack_escape` (the
environment's `finalize` hook), unless it is already `Mrkdwn` (markup we built ourselves).
`&`, `<` and `>` become entities, so user text can never form `<!channel>`, `<@U…>` or a
link; Slack's emphasis characters (`*`, `_`, `~`, backtick) are replaced by look-alikes,
because mrkdwn has no escape for them and a milestone called `*URGENT*` must not shout.

Limits: at most 50 blocks and 3,000 characters per section text. Each list is capped,
with the rest summarised as "…and N more"; sections are packed line by line, never cut
mid-line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from crobot.digests.compose import DigestView
from crobot.services.visibility import Scope

MAX_BLOCKS = 50
SECTION_CHARS = 3000
HEADER_CHARS = 150
MILESTONE_LINES = 15
ACTION_LINES = 30
KPI_LINES = 30
APPROVAL_LINES = 15

_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "*": "\u2217",  # ∗ asterisk operator
        "_": "\u02cd",  # ˍ modifier letter low macron
        "~": "\u223c",  # ∼ tilde operator
        "`": "\u02cb",  # ˋ modifier letter grave accent
    }
)


class Mrkdwn(str):
    """Text that is already safe mrkdwn (built by us from escaped parts)."""


def slack_escape(value: object) -> str:
    if isinstance(value, Mrkdwn):
        return value
    if value is None:
        return ""
    return str(value).translate(_ESCAPES)


def _finalize(value: object) -> str:
    return slack_escape(value)


def _bold(value: object) -> Mrkdwn:
    return Mrkdwn(f"*{slack_escape(value)}*")


def _trusted(value: object) -> Mrkdwn:
    """Values we validated ourselves (IANA zone names): only & < > need escaping."""
    return Mrkdwn(str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    return f"{value:%a %d %b}"


def _day_long(value: datetime) -> str:
    return f"{value:%a %d %b %Y, %H:%M} {value.tzname()}"


def _when(value: datetime) -> str:
    return f"{value:%a %d %b %H:%M} {value.tzname()}"


def _num(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return "—" if value is None else str(value)


def _signed(value: float) -> str:
    return f"{value:+,.6g}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("crobot.digests", "templates"),
        autoescape=False,  # HTML escaping is wrong for Slack; `finalize` does Slack's
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=False,
    )
    env.filters.update(
        bold=_bold,
        trusted=_trusted,
        day=_day,
        day_long=_day_long,
        when=_when,
        num=_num,
        signed=_signed,
    )
    return env


def _macro(name: str, *args: Any) -> str:
    module = environment().get_template("lines.j2").module
    return str(getattr(module, name)(*args)).strip("\n")


def _render(template: str, **ctx: Any) -> str:
    return environment().get_template(template).render(**ctx).strip()


@dataclass
class Section:
    heading: str
    lines: list[str]


@dataclass
class RenderedDigest:
    text: str  # plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]]
    full_text: str  # every section, for the CLI preview


def _capped(lines: list[str], cap: int, total: int, noun: str, plus: bool = False) -> list[str]:
    shown = lines[:cap]
    rest = total - len(shown)
    if rest > 0:
        shown.append(f"_…and {rest}{'+' if plus else ''} more {noun}_")
    return shown


def sections(view: DigestView) -> list[Section]:
    out: list[Section] = []
    today = view.today
    ms = [
        ("Milestones due in the next 14 days", view.due),
        ("Slipped milestones", view.slipped),
        (f"Completed since {_day(view.since)}", view.completed),
    ]
    for heading, rows in ms:
        if rows:
            lines = [_macro("milestone", m, today) for m in rows[:MILESTONE_LINES]]
            out.append(Section(heading, _capped(lines, MILESTONE_LINES, len(rows), "milestones")))
    if view.owners:
        lines = []
        shown = 0
        for g in view.owners:
            if len(lines) >= ACTION_LINES:
                break
            lines.append(_macro("owner", g))
            for a in g.items:
                if len(lines) >= ACTION_LINES:
                    break
                lines.append(_macro("action", a))
                shown += 1
        rest = view.open_actions - shown
        if rest > 0:
            plus = "+" if view.actions_truncated else ""
            lines.append(f"_…and {rest}{plus} more open actions_")
        heading = f"Open actions: {view.open_actions}, overdue: {view.overdue_actions}"
        out.append(Section(heading, lines))
    if view.kpis:
        lines = [_macro("kpi", k, t) for k in view.kpis for t in k.trends]
        out.append(Section("KPIs", _capped(lines, KPI_LINES, len(lines), "KPI lines")))
    if view.audience.scope == Scope.SPONSOR and view.pending_approvals:
        lines = [_macro("approval", a) for a in view.approvals[:APPROVAL_LINES]]
        lines = _capped(lines, APPROVAL_LINES, view.pending_approvals, "pending approvals")
        out.append(Section(f"Pending approvals: {view.pending_approvals}", lines))
    return out


def _pack(section: Section) -> list[str]:
    """Section texts of at most SECTION_CHARS each, split only between lines."""
    chunks: list[str] = []
    current = f"*{section.heading}*"
    for line in section.lines:
        if len(current) + 1 + len(line) > SECTION_CHARS:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}"
    chunks.append(current)
    return chunks


def audience_label(view: DigestView) -> str:
    scope = view.audience.scope
    return {Scope.SPONSOR: "sponsor", Scope.VENDOR: "vendor", Scope.JOINT: "joint"}.get(
        scope, "public"
    )


def render(view: DigestView) -> RenderedDigest:
    header = _render("header.j2", v=view)[:HEADER_CHARS]
    context = _render("context.j2", v=view, audience=audience_label(view))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    texts: list[str] = []
    for sec in sections(view):
        texts.extend(_pack(sec))
    if not texts:
        texts.append("Nothing due, slipped, open or reported for this channel. ✨")
    room = MAX_BLOCKS - len(blocks)
    if len(texts) > room:
        hidden = len(texts) - (room - 1)
        texts = texts[: room - 1]
        note = f"_…{hidden} more part(s) not shown; `/cro status` has the full picture._"
        section_blocks = [_section(t) for t in texts]
        section_blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    else:
        section_blocks = [_section(t) for t in texts]
    blocks.extend(section_blocks)
    fallback = _render("fallback.j2", v=view)
    full = "\n\n".join([header, context, *texts])
    return RenderedDigest(fallback, blocks, full)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
