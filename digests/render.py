"""Render a DigestView into Block Kit blocks plus a fallback `text`, via Jinja2 templates.

Escaping and blocks come from the one builder, `handlers.blockkit`: every `{{ value }}` in
the templates passes through its `line()` escape (the environment's `finalize` hook)
unless it is already `Mrkdwn` (markup crobot built itself), so a name can neither form
`<!channel>`, `<@U…>` or a link, nor shout with `*…*`, nor start a forged line.

Shape: the top-level message is a summary that reads on a phone — a header, a context
line, and one block per section holding its first TOP_LINES items (each line at most
TOP_LINE_CHARS), so no section can crowd out a later one. A section with more goes on in
a thread reply of its own (`render_detail`, posted by the outbox), whose list is capped
per section and packed line by line into blocks, never cut mid-line. Every limit (50
blocks, 3,000 characters per section text) is counted on the escaped text, where an `&`
is five characters; a single line longer than a section is cut at an entity boundary.
`render_short` is what is posted if Slack still refuses the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from crobot.digests.compose import DigestView
from crobot.handlers import blockkit, kpi_charts
from crobot.handlers.blockkit import Block, Mrkdwn, cap, fmt, line
from crobot.handlers.qtl_news import open_line
from crobot.services.kpis import Trend, pending_mark
from crobot.services.visibility import Scope

MILESTONE_LINES = 15
ACTION_LINES = 30
KPI_LINES = 30
APPROVAL_LINES = 15
TOP_LINES = 5  # items per section in the top-level message; the thread has the rest
TOP_LINE_CHARS = 280  # a line at the top stays a line on a phone; the thread has it whole
TOP_TAIL = 60  # room kept for the "…and N more in the thread" line
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
        # Templates ship with the package and never change under a running process: no
        # os.stat of every template file on every get_template (issue 18's profile: ~4%).
        auto_reload=False,
    )
    env.filters.update(
        bold=_bold,
        zone=_zone,
        day=_day,
        day_long=_day_long,
        when=_when,
        num=_num,
        signed=_signed,
        iso=lambda value: value.isoformat() if value else "beyond the horizon",
        pending_mark=lambda point: Mrkdwn(pending_mark(point)),  # crobot's words: spaces kept
    )
    return env


@cache
def _template(name: str) -> Template:
    """Compiled once per process (a digest uses ~80 macro calls: no loader lookup each)."""
    return environment().get_template(name)


def _macro(name: str, *args: Any) -> Mrkdwn:
    return Mrkdwn(str(getattr(_template("lines.j2").module, name)(*args)).strip("\n"))


def _render(template: str, **ctx: Any) -> Mrkdwn:
    """A template's output: escaped values inside crobot's own markup."""
    return Mrkdwn(_template(template).render(**ctx).strip())


@dataclass
class RenderedDigest:
    text: str  # fallback (notifications, screen readers)
    blocks: list[Block]
    full_text: str  # every section, for the CLI preview
    thread: list[str] = field(default_factory=list)  # keys of sections detailed in a thread
    # Those sections' thread replies, rendered from the same lines (`render_detail` each).
    details: dict[str, RenderedDigest] = field(default_factory=dict)


def _more(count: int, noun: str) -> Mrkdwn:
    return Mrkdwn(f"_…and {count} more {noun}_")


@dataclass
class Section:
    """One part of a digest: every line the thread may show, and how many items exist."""

    key: str  # names the part in the thread reply's outbox row (`digests.delivery`)
    heading: Mrkdwn
    lines: list[Mrkdwn]  # items, and for actions their owners' group lines
    items: list[bool]  # per line: an item (counted), or a group line
    total: int  # items in the record: COUNT, not the capped list
    noun: str

    def detail(self) -> list[Mrkdwn]:
        """The thread's lines: the capped list and what it leaves out."""
        shown = sum(self.items)
        rest = self.total - shown
        return self.lines + ([_more(rest, self.noun)] if rest > 0 else [])

    def top(self) -> tuple[Mrkdwn, bool]:
        """The section's one block in the top-level message, and whether the thread should
        carry the rest: at most TOP_LINES items, each line at most TOP_LINE_CHARS."""
        limit = blockkit.MAX_SECTION - TOP_TAIL
        text, shown, cut, used = str(self.heading), 0, False, 0
        for ln, is_item in zip(self.lines, self.items, strict=True):
            if is_item and shown >= TOP_LINES:
                break
            short = cap(ln, TOP_LINE_CHARS)
            if len(text) + 1 + len(short) > limit:
                break
            cut = cut or short != ln
            text, shown, used = f"{text}\n{short}", shown + is_item, used + 1
        while used and not self.items[used - 1]:  # never end on an owner with no action
            used -= 1
            text = text.rsplit("\n", 1)[0]
        thread = cut or used < len(self.lines)
        rest = self.total - sum(self.items[:used])
        if thread:
            text += "\n" + (
                f"_…and {rest} more {self.noun} in the thread_"
                if rest
                else "_In full in the thread_"
            )
        elif rest > 0:
            text += "\n" + _more(rest, self.noun)
        return Mrkdwn(text), thread


def _heading(text: str) -> Mrkdwn:
    """A section heading: crobot's words and numbers, bold."""
    return Mrkdwn(f"*{text}*")


def _listed(key: str, heading: str, lines: list[Mrkdwn], total: int, noun: str) -> Section:
    return Section(key, _heading(heading), lines, [True] * len(lines), total, noun)


def sections(view: DigestView) -> list[Section]:
    out: list[Section] = []
    today = view.today
    ms = [
        ("due", "Milestones due in the next 14 days", view.due, view.due_total),
        ("slipped", "Slipped milestones", view.slipped, view.slipped_total),
        ("completed", f"Completed since {_day(view.since)}", view.completed, view.completed_total),
    ]
    for key, heading, rows, total in ms:
        if rows:
            lines = [_macro("milestone", m, today) for m in rows[:MILESTONE_LINES]]
            out.append(_listed(key, heading, lines, max(total, len(rows)), "milestones"))
    if view.later:
        lines = [_macro("milestone", m, today) for m in view.later]
        out.append(_listed("later", "Coming after that", lines, len(lines), "milestones"))
    if view.owners:
        out.append(_actions(view))
    if view.forecast is not None:
        lines = [_macro("forecast", view.forecast)]
        out.append(_listed("forecast", "Enrolment forecast", lines, 1, "lines"))
    if view.kpis:
        lines = [_macro("kpi", k, t) for k in view.kpis for t in k.trends]
        out.append(_listed("kpis", "KPIs", lines[:KPI_LINES], len(lines), "KPI lines"))
    if view.audience.scope == Scope.SPONSOR and view.breaches:
        lines = [open_line(b, today) for b in view.breaches[:APPROVAL_LINES]]
        heading = f"Open QTL breaches: {len(view.breaches)}"
        out.append(_listed("qtl", heading, lines, len(view.breaches), "open breaches"))
    if view.audience.scope == Scope.SPONSOR and view.pending_approvals:
        lines = [_macro("approval", a) for a in view.approvals[:APPROVAL_LINES]]
        heading = f"Pending approvals: {view.pending_approvals}"
        out.append(
            _listed("approvals", heading, lines, view.pending_approvals, "pending approvals")
        )
    return out


def _actions(view: DigestView) -> Section:
    lines: list[Mrkdwn] = []
    items: list[bool] = []
    for g in view.owners:
        if len(lines) + 1 >= ACTION_LINES:  # an owner's line only with an action under it
            break
        lines.append(_macro("owner", g))
        items.append(False)
        for a in g.items:
            if len(lines) >= ACTION_LINES:
                break
            lines.append(_macro("action", a))
            items.append(True)
    heading = _heading(f"Open actions: {view.open_actions}, overdue: {view.overdue_actions}")
    total = max(view.open_actions, sum(items))
    return Section("actions", heading, lines, items, total, "open actions")


def _pack(heading: Mrkdwn, lines: list[Mrkdwn]) -> list[Mrkdwn]:
    """Section texts of at most MAX_SECTION characters each, split only between lines.

    Lines are escaped already, so their length is what Slack counts; one line longer than
    a whole section is cut (never inside an entity) rather than sent over the limit.
    """
    limit = blockkit.MAX_SECTION
    chunks: list[str] = []
    current: str = heading
    for item in lines:
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


def _title(view: DigestView) -> str:
    # The header is plain text (Slack shows `&amp;` there literally): it gets the raw words.
    return f"{view.study_code} digest — {_day_long(view.generated_at)}"


def render(view: DigestView) -> RenderedDigest:
    """The top-level message: a phone-sized summary where every section has its own block
    (at most TOP_LINES items), whatever the others hold; `thread` names the sections whose
    full list goes in a thread reply (`render_detail`)."""
    title = _title(view)
    context = _render("context.j2", v=view, audience=audience_label(view))
    head = [blockkit.header(title), blockkit.context(context)]
    if view.changes:
        head.append(blockkit.section(_changes(view)))
    parts = sections(view)
    tops = [sec.top() for sec in parts]
    body: list[Block] = []
    for sec, (text, _) in zip(parts, tops, strict=True):
        body.append(blockkit.section(text))
        if sec.key == "kpis":  # the lines above stay as the fallback of what follows
            body += kpi_blocks(view)
    body = body or [blockkit.section(EMPTY)]
    threaded = [sec for sec, (_, more) in zip(parts, tops, strict=True) if more]
    fallback = blockkit.fallback(_render("fallback.j2", v=view))
    texts = [t for sec in parts for t in _pack(sec.heading, sec.detail())] or [EMPTY]
    full = "\n\n".join([title, context, *texts])
    thread = [sec.key for sec in threaded]
    details = {sec.key: _detail(view, sec) for sec in threaded}
    return RenderedDigest(fallback, head + body, full, thread, details)


def _changes(view: DigestView) -> Mrkdwn:
    """Since the last digest, in crobot's words and numbers only."""
    c = view.changes
    assert c is not None
    parts = [f"{c.actions_opened} action(s) opened, {c.actions_closed} closed"]
    if c.escalated:
        parts[0] += f", {c.escalated} escalated"
    if c.reforecast:
        parts.append(f"{c.reforecast} milestone forecast(s) changed, {c.slipped} later")
    if c.approvals_requested or c.approved or c.rejected:
        parts.append(
            f"{c.approvals_requested} approval(s) asked for, "
            f"{c.approved} approved, {c.rejected} rejected"
        )
    return Mrkdwn(f"*Since {_day(view.since)}:* " + " · ".join(parts))


KPI_TABLE = ["KPI", "Organisation", "Latest", "Change", "Target", "Status"]
MAX_DIGEST_CHARTS = 2


def _gap(t: Trend) -> float:
    """How far off its target (the one that applies to it) a value is, as a share of that
    target (0 when on target)."""
    goal = t.target.value
    if goal is None or t.on_target is not False:
        return 0.0
    scale = abs(goal) or 1.0
    return abs(t.latest.value - goal) / scale


def _status(t: Trend) -> str:
    return "—" if t.on_target is None else ("on target" if t.on_target else "OFF TARGET")


def _change(t: Trend) -> str:
    if t.change is None:
        return "—"
    word = "" if t.good is None or t.change == 0 else (" better" if t.good else " worse")
    return f"{t.arrow} {_signed(t.change)}{word}"


def kpi_blocks(view: DigestView) -> list[Block]:
    """The KPI section as a native table, off-target rows first, good and bad said in
    words; then charts of the (at most two) KPIs furthest off target."""
    rows: list[tuple[float, list[str]]] = []
    for k in view.kpis:
        sign = "≥" if k.direction.value == "up" else "≤"
        for t in k.trends:
            goal = t.target.value  # the study's and organisation's, saying whose
            target = "—" if goal is None else f"{sign} {_num(goal)} {k.unit} ({t.target.where()})"
            latest = f"{_num(t.latest.value)} {k.unit}{pending_mark(t.latest)}"
            latest += f" ({t.latest.period_label})"
            cells = [k.label, t.org_name, latest, _change(t), target, _status(t)]
            rows.append((_gap(t) + (1.0 if t.on_target is False else 0.0), cells))
    if not rows:
        return []
    rows.sort(key=lambda r: -r[0])  # off target first, furthest first; stable otherwise
    blocks = [blockkit.table(KPI_TABLE, [cells for _, cells in rows], right=[2])]
    worst = sorted(
        (max((_gap(t) for t in k.trends), default=0.0), i, k) for i, k in enumerate(view.kpis)
    )
    charted = 0 if view.charts else MAX_DIGEST_CHARTS
    for gap, _, k in reversed(worst):
        if gap <= 0 or charted == MAX_DIGEST_CHARTS:
            break
        drawn = kpi_charts.chart(k, k.points, k.targets)
        if drawn:
            blocks += drawn
            charted += 1
    return blocks


def render_detail(view: DigestView, key: str) -> RenderedDigest | None:
    """A thread reply with one section's full (capped) list; None if it has gone."""
    sec = next((s for s in sections(view) if s.key == key), None)
    return None if sec is None else _detail(view, sec)


def _detail(view: DigestView, sec: Section) -> RenderedDigest:
    texts = _pack(sec.heading, sec.detail())
    note = "_…cut to fit one Slack message; `/cro status` has the full picture._"
    blocks = blockkit.fit([blockkit.section(t) for t in texts], blockkit.MAX_BLOCKS, note=note)
    text = blockkit.fallback(Mrkdwn(f"{line(view.study_code)} digest: {sec.heading}"))
    return RenderedDigest(text, blocks, "\n".join(texts), [])


def render_short(view: DigestView) -> RenderedDigest:
    """What is posted when Slack refuses the full digest (`invalid_blocks`, `msg_too_long`):
    the counts, which fit whatever the names hold, and where the rest is."""
    title = _title(view)
    context = _render("context.j2", v=view, audience=audience_label(view))
    summary = _render("fallback.j2", v=view)
    note = Mrkdwn("_The full digest did not fit in a Slack message; `/cro status` has it._")
    blocks = [
        blockkit.header(title),
        blockkit.context(context),
        blockkit.section(summary),
        blockkit.context(note),
    ]
    return RenderedDigest(blockkit.fallback(summary), blocks, summary, [])
