"""Render a DigestView into Block Kit blocks plus a fallback `text`, via Jinja2 templates.

Escaping and blocks come from the one builder, `handlers.blockkit`: every `{{ value }}` in
the templates passes through its `line()` escape (the environment's `finalize` hook)
unless it is already `Mrkdwn` (markup crobot built itself), so a name can neither form
`<!channel>`, `<@U…>` or a link, nor shout with `*…*`, nor start a forged line.

Limits: at most 50 blocks and 3,000 characters per section text, counted on the escaped
text (an escaped `&` is five characters). Each list is capped, with the rest summarised as
"…and N more"; sections are packed line by line, never cut mid-line; a single line longer
than a section is cut at an entity boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from crobot.digests.compose import DigestView
from crobot.handlers import blockkit
from crobot.handlers.blockkit import Block, Mrkdwn, cap, fmt, line
from crobot.services.kpis import pending_mark
from crobot.services.visibility import Scope

MILESTONE_LINES = 15
ACTION_LINES = 30
KPI_LINES = 30
APPROVAL_LINES = 15
EMPTY = Mrkdwn("Nothing due, slipped, open or reported for this channel. ✨")
# IANA zone names as `digests.schedule` validates them: nothing Slack would parse.
_ZONE = re.compile(r"[A-Za-z0-9+\-/]+(?:_[A-Za-z0-9+\-/]+)*")


def _bold(value: object) -> Mrkdwn:
    return fmt("*{}*", value)


def _zone(value: object) -> Mrkdwn:
    """A validated zone name as is (`America/New_York` keeps its underscore); else escaped."""
    text = str(value)
    return Mrkdwn(text) if _ZONE.fullmatch(text) else line(text)


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
        return f"{value:,.15g}"  # every digit given (123,456.7), never rounded to six
    return "—" if value is None else str(value)


def _signed(value: float) -> str:
    return f"{value:+,.15g}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("crobot.digests", "templates"),
        autoescape=False,  # HTML escaping is wrong for Slack; `finalize` does Slack's
        finalize=line,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=False,
    )
    env.filters.update(
        bold=_bold,
        zone=_zone,
        day=_day,
        day_long=_day_long,
        when=_when,
        num=_num,
        signed=_signed,
        pending_mark=lambda point: Mrkdwn(pending_mark(point)),  # crobot's words: spaces kept
    )
    return env


def _macro(name: str, *args: Any) -> Mrkdwn:
    module = environment().get_template("lines.j2").module
    return Mrkdwn(str(getattr(module, name)(*args)).strip("\n"))


def _render(template: str, **ctx: Any) -> Mrkdwn:
    """A template's output: escaped values inside crobot's own markup."""
    return Mrkdwn(environment().get_template(template).render(**ctx).strip())


@dataclass
class Section:
    heading: Mrkdwn
    lines: list[Mrkdwn]


@dataclass
class RenderedDigest:
    text: str  # fallback (notifications, screen readers)
    blocks: list[Block]
    full_text: str  # every section, for the CLI preview


def _more(count: int, noun: str) -> Mrkdwn:
    return Mrkdwn(f"_…and {count} more {noun}_")


def _capped(lines: list[Mrkdwn], limit: int, total: int, noun: str) -> list[Mrkdwn]:
    shown = lines[:limit]
    if total > len(shown):
        shown.append(_more(total - len(shown), noun))
    return shown


def _heading(text: str) -> Mrkdwn:
    """A section heading: crobot's words and numbers, bold."""
    return Mrkdwn(f"*{text}*")


def sections(view: DigestView) -> list[Section]:
    out: list[Section] = []
    today = view.today
    ms = [
        ("Milestones due in the next 14 days", view.due, view.due_total),
        ("Slipped milestones", view.slipped, view.slipped_total),
        (f"Completed since {_day(view.since)}", view.completed, view.completed_total),
    ]
    for heading, rows, total in ms:
        if rows:
            lines = [_macro("milestone", m, today) for m in rows[:MILESTONE_LINES]]
            total = max(total, len(rows))
            out.append(
                Section(_heading(heading), _capped(lines, MILESTONE_LINES, total, "milestones"))
            )
    if view.owners:
        out.append(_actions(view))
    if view.kpis:
        lines = [_macro("kpi", k, t) for k in view.kpis for t in k.trends]
        out.append(Section(_heading("KPIs"), _capped(lines, KPI_LINES, len(lines), "KPI lines")))
    if view.audience.scope == Scope.SPONSOR and view.pending_approvals:
        lines = [_macro("approval", a) for a in view.approvals[:APPROVAL_LINES]]
        lines = _capped(lines, APPROVAL_LINES, view.pending_approvals, "pending approvals")
        heading = _heading(f"Pending approvals: {view.pending_approvals}")
        out.append(Section(heading, lines))
    return out


def _actions(view: DigestView) -> Section:
    lines: list[Mrkdwn] = []
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
        lines.append(_more(rest, "open actions"))
    heading = _heading(f"Open actions: {view.open_actions}, overdue: {view.overdue_actions}")
    return Section(heading, lines)


def _pack(section: Section) -> list[Mrkdwn]:
    """Section texts of at most MAX_SECTION characters each, split only between lines.

    Lines are escaped already, so their length is what Slack counts; one line longer than
    a whole section is cut (never inside an entity) rather than sent over the limit.
    """
    limit = blockkit.MAX_SECTION
    chunks: list[str] = []
    current: str = section.heading
    for item in section.lines:
        text = cap(item, limit)
        if len(current) + 1 + len(text) > limit:
            chunks.append(current)
            current = text
        else:
            current = f"{current}\n{text}"
    chunks.append(current)
    return [Mrkdwn(c) for c in chunks]


def audience_label(view: DigestView) -> str:
    scope = view.audience.scope
    return {Scope.SPONSOR: "sponsor", Scope.VENDOR: "vendor", Scope.JOINT: "joint"}.get(
        scope, "public"
    )


def render(view: DigestView) -> RenderedDigest:
    # The header is plain text (Slack shows `&amp;` there literally): it gets the raw words.
    title = f"{view.study_code} digest — {_day_long(view.generated_at)}"
    context = _render("context.j2", v=view, audience=audience_label(view))
    head = [blockkit.header(title), blockkit.context(context)]
    texts = [t for sec in sections(view) for t in _pack(sec)] or [EMPTY]
    room = blockkit.MAX_BLOCKS - len(head)
    hidden = len(texts) - (room - 1)
    note = f"_…{hidden} more part(s) not shown; `/cro status` has the full picture._"
    body = blockkit.fit([blockkit.section(t) for t in texts], room, note=note)
    fallback = blockkit.fallback(_render("fallback.j2", v=view))
    full = "\n\n".join([title, context, *texts])
    return RenderedDigest(fallback, head + body, full)
