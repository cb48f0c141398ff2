"""The one Block Kit builder: every block, view and fallback `text` crobot sends is built here.

Text comes in two kinds, and the types keep them apart:

- `Mrkdwn` — markup crobot wrote itself (its own `*bold*`, `<@U…>` mentions of a stored
  (team, user), emoji codes). Only this module and `fmt()` make one.
- anything else (`str`, numbers, dates) — text a person or a file supplied. It reaches Slack
  only through `esc()`: `&`, `<`, `>` become entities, so it can never form `<!channel>`,
  `<@U…>` or a link; Slack's emphasis characters (`*`, `_`, `~`, backtick) become look-alikes,
  because mrkdwn has no escape for them; bidi control characters are dropped, so a name
  cannot reorder what is shown around it; in single-line fields newlines fold to a space,
  so a note cannot forge a line such as ":white_check_mark: Approved by …".

Build markup with `fmt("*{}* due {}", name, day)`: every argument is escaped unless it is
already `Mrkdwn`. Lengths are capped after escaping (an escaped `&` is five characters), so
no text object exceeds Slack's limits, and a cut never splits an entity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from crobot.services.errors import Msg

Block = dict[str, Any]

MAX_BLOCKS = 50  # a message
MAX_VIEW_BLOCKS = 100  # a modal or the Home tab
MAX_SECTION = 3000  # section text, context element
MAX_HEADER = 150
MAX_PLAIN = 75  # button text, option text, input label (Slack allows 2,000; we keep it short)
MAX_TITLE = 24  # modal title, submit, close
MAX_FIELD = 2000  # section field, input hint
MAX_TEXT = 3000  # the fallback `text` of a message (Slack truncates at 40,000; notifications
# show far less)
MAX_OPTIONS = 100  # static_select
MAX_METADATA = 3000  # private_metadata
MAX_VALUE = 2000  # button value, option value
# Native charts and tables (Block Kit changelog 2026-06-16 and the table block reference).
MAX_CHARTS = 2  # data_visualization blocks in one message
MAX_CHART_TITLE = 50
MAX_SERIES = 6
MAX_CATEGORY = 20  # an x-axis category label
MAX_AXIS_LABEL = 50
MAX_TABLE_ROWS = 100
MAX_TABLE_CELLS = 20
MAX_CELL = 2000

_MRKDWN = str.maketrans(
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
# Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
_BIDI = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_LINE_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029\x0b\x0c\x85]+\s*")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")
# What `clean` and `esc` would change (bidi controls, line breaks; mrkdwn characters): text
# without any of them is returned after one regex scan, which is most of what crobot shows.
_CLEAN_CHARS = "\u202a-\u202e\u2066-\u2069\r\n\u2028\u2029\x0b\x0c\x85"
_CLEAN_WORK = re.compile(f"[{_CLEAN_CHARS}]")
_ESC_WORK = re.compile(f"[{_CLEAN_CHARS}&<>*_~`]")
_SAFE_TYPES = frozenset({int, float, date})  # exact types: a subclass may print anything


class Mrkdwn(str):
    """Text that is already safe mrkdwn: built by crobot from escaped parts."""

    def __add__(self, other: str) -> Mrkdwn:
        return Mrkdwn(str.__add__(self, esc(other)))

    def join(self, parts: Iterable[str]) -> Mrkdwn:
        return Mrkdwn(str.join(self, (esc(p) for p in parts)))


def clean(value: object, *, line: bool = False) -> str:
    """Person- or file-supplied text without bidi controls (and, for one line, no breaks)."""
    text = "" if value is None else str(value)
    if _CLEAN_WORK.search(text) is None:  # most text: one scan instead of a translate
        return text.strip() if line else text
    text = text.translate(_BIDI)
    if line:
        text = _LINE_BREAKS.sub(" ", text).strip()
    return text


def esc(value: object, *, line: bool = False) -> Mrkdwn:
    """User text as safe mrkdwn. `Mrkdwn` passes through unchanged."""
    if isinstance(value, Mrkdwn):
        return value
    if type(value) in _SAFE_TYPES:  # digits, signs, dots, dashes, letters: nothing to escape
        return Mrkdwn(str(value))
    text = "" if value is None else str(value)
    if _ESC_WORK.search(text) is None:  # nothing to escape or drop: the common case, ~4x faster
        return Mrkdwn(text.strip() if line else text)
    return Mrkdwn(clean(text, line=line).translate(_MRKDWN))


def line(value: object) -> Mrkdwn:
    """User text for a single-line field (a name, a title, a reason shown inline)."""
    return esc(value, line=True)


def fmt(template: str, *args: object, **kwargs: object) -> Mrkdwn:
    """`template` is crobot's own markup; every argument is escaped unless it is `Mrkdwn`.

    Arguments are escaped as single lines; pass `esc(value)` (multi-line) explicitly for a
    note or reason quoted over several lines.
    """
    return Mrkdwn(
        template.format(*(line(a) for a in args), **{k: line(v) for k, v in kwargs.items()})
    )


def wording(text: str) -> Mrkdwn:
    """A message from the services (a `UserError`'s message or hint) as mrkdwn.

    Its template is crobot's own wording; the values a person or a file supplied (built
    with `services.errors.msg`) are escaped. A plain `str` message is crobot's wording.
    """
    if isinstance(text, Mrkdwn):
        return text
    if isinstance(text, Msg):
        values = (wording(v) if isinstance(v, Msg) else v for v in text.values)
        return Mrkdwn(fmt(text.template, *values).strip())
    return Mrkdwn(text)


def quote(value: object) -> Mrkdwn:
    """Multi-line user text (a note, a reason) as a block quote.

    Every line break Slack might honour ends a line, and crobot starts every line with
    "> " after escaping it, so no line of the text can stand outside the quote.
    """
    text = clean(value).strip()
    if not text:
        return Mrkdwn("")
    return Mrkdwn("\n".join("> " + esc(part) for part in _LINE_BREAKS.split(text)))


def mention(team_id: str | None, user_id: str | None) -> Mrkdwn:
    """A stored person as a Slack mention; anything that is not a user id is shown escaped."""
    uid = user_id or ""
    if re.fullmatch(r"[UW][A-Z0-9]{2,20}", uid):
        return Mrkdwn(f"<@{uid}>")
    return line(uid or "someone")


def channel_mention(channel_id: str | None) -> Mrkdwn:
    """A stored channel as a Slack channel link; anything that is not a channel id is shown
    escaped."""
    cid = channel_id or ""
    if re.fullmatch(r"[CGD][A-Z0-9]{2,20}", cid):
        return Mrkdwn(f"<#{cid}>")
    return line(cid or "a channel")


def code(value: object) -> Mrkdwn:
    """Text shown literally in a code span (an error code, a command). Slack applies no
    emphasis inside one, so only entities and backticks need neutralising."""
    text = clean(value, line=True).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Mrkdwn("`" + text.replace("`", "\u02cb") + "`")


def cap(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut, never inside an entity."""
    if len(text) <= limit:
        return text
    cut = _ENTITY_TAIL.sub("", text[: limit - 1])
    return cut + "…"


def plain_str(value: object, limit: int = MAX_PLAIN, *, line: bool = True) -> str:
    """Text Slack shows as it is (plain_text, a form's inline error). Slack does not parse
    it, but `<`/`>` are still swapped for look-alikes so that no payload ever carries a
    raw `<!channel>` from user text."""
    text = clean(value, line=line).replace("<", "\u2039").replace(">", "\u203a")
    return cap(text or " ", limit)


def plain(value: object, limit: int = MAX_PLAIN, *, line: bool = True) -> Block:
    """A plain_text object (see `plain_str`)."""
    return {"type": "plain_text", "text": plain_str(value, limit, line=line), "emoji": True}


def mrkdwn(text: Mrkdwn, limit: int = MAX_SECTION) -> Block:
    return {"type": "mrkdwn", "text": cap(text, limit)}


def fallback(text: Mrkdwn) -> str:
    """A message's top-level `text` (notifications, screen readers, old clients)."""
    return cap(str(text).replace("\n", " "), MAX_TEXT)


# --- blocks ------------------------------------------------------------------------------


def header(value: object) -> Block:
    return {"type": "header", "text": plain(value, MAX_HEADER)}


def section(
    text: Mrkdwn,
    *,
    block_id: str | None = None,
    accessory: Block | None = None,
    fields: Sequence[Mrkdwn] = (),
) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    if fields:
        block["fields"] = [mrkdwn(f, MAX_FIELD) for f in fields[:10]]
    return block


def context(*texts: Mrkdwn, block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [mrkdwn(t) for t in texts[:10]]}
    if block_id:
        block["block_id"] = block_id
    return block


def divider() -> Block:
    return {"type": "divider"}


def button(label: object, action_id: str, value: str, *, style: str | None = None) -> Block:
    el: Block = {
        "type": "button",
        "text": plain(label),
        "action_id": action_id,
        "value": value[:MAX_VALUE],
    }
    if style:
        el["style"] = style
    return el


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements[:25])}
    if block_id:
        block["block_id"] = block_id
    return block


def option(label: object, value: str) -> Block:
    return {"text": plain(label), "value": value[:MAX_VALUE]}


def static_select(options: Sequence[Block], initial: Block | None = None) -> Block:
    el: Block = {"type": "static_select", "options": list(options[:MAX_OPTIONS])}
    if initial is not None and initial in el["options"]:
        el["initial_option"] = initial
    return el


def datepicker(initial: str | None = None) -> Block:
    el: Block = {"type": "datepicker"}
    if initial:
        el["initial_date"] = initial
    return el


def text_input(*, multiline: bool = False, max_length: int | None = None) -> Block:
    el: Block = {"type": "plain_text_input", "multiline": multiline}
    if max_length:
        el["max_length"] = max_length
    return el


def input_block(
    block_id: str,
    label: str,
    element: Block,
    *,
    action_id: str = "value",
    optional: bool = False,
    hint: str = "",
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "element": {**element, "action_id": action_id},
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, MAX_FIELD)
    return block


# --- whole payloads ------------------------------------------------------------------------


def line_chart(
    title: object,
    categories: Sequence[str],
    series: Sequence[tuple[object, Sequence[float]]],
    *,
    x_label: object = "",
    y_label: object = "",
) -> Block:
    """A native line chart: one point per category in every series (at most six series).
    Names come from people (an organisation's name): shown as plain text, never parsed."""
    if not categories or not series or len(series) > MAX_SERIES:
        raise ValueError("a line chart needs categories and 1-6 series")
    if any(len(values) != len(categories) for _, values in series):
        raise ValueError("every series needs one value per category")
    cats = [plain_str(c, MAX_CATEGORY) for c in categories]
    axis: Block = {"categories": cats}
    if x_label:
        axis["x_label"] = plain_str(x_label, MAX_AXIS_LABEL)
    if y_label:
        axis["y_label"] = plain_str(y_label, MAX_AXIS_LABEL)
    return {
        "type": "data_visualization",
        "title": plain_str(title, MAX_CHART_TITLE),
        "chart": {
            "type": "line",
            "series": [
                {
                    "name": plain_str(name, MAX_CHART_TITLE),
                    "data": [{"label": c, "value": v} for c, v in zip(cats, values, strict=True)],
                }
                for name, values in series
            ],
            "axis_config": axis,
        },
    }


def table(
    header_row: Sequence[object], rows: Sequence[Sequence[object]], *, right: Sequence[int] = ()
) -> Block:
    """A native table: a header row, then at most 99 rows (the caller says what it left
    out); columns in `right` are right-aligned (numbers). Cells are raw text."""
    width = len(header_row)
    if not 1 <= width <= MAX_TABLE_CELLS or any(len(r) != width for r in rows):
        raise ValueError("a table needs 1-20 columns and rows of the same width")

    def cell(value: object) -> Block:
        return {"type": "raw_text", "text": plain_str(value, MAX_CELL)}

    body = [list(header_row), *rows[: MAX_TABLE_ROWS - 1]]
    return {
        "type": "table",
        "column_settings": [
            {"align": "right"} if i in right else {"is_wrapped": True} for i in range(width)
        ],
        "rows": [[cell(v) for v in row] for row in body],
    }


def fit(blocks: list[Block], limit: int = MAX_BLOCKS, *, note: str | None = None) -> list[Block]:
    """At most `limit` blocks; the last one says that the rest was cut."""
    if len(blocks) <= limit:
        return blocks
    return blocks[: limit - 1] + [context(Mrkdwn(note or "_…cut to fit one Slack message._"))]


def lines_block(
    lines: Sequence[Mrkdwn], *, budget: int, total: int | None = None, noun: str = ""
) -> list[Block]:
    """Pack lines into as few sections as fit, using at most `budget` blocks.

    A line is never split between sections. `total` is how many items there are when
    `lines` holds only the first of them; the rest is summarised as "…and N more".
    """
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    shown = 0
    for ln in lines:
        ln = Mrkdwn(cap(ln, MAX_SECTION))
        if chunk and size + len(ln) + 1 > MAX_SECTION:
            if len(blocks) + 2 > budget:
                break
            blocks.append(section(Mrkdwn("\n".join(chunk))))
            chunk, size = [], 0
        chunk.append(ln)
        size += len(ln) + 1
        shown += 1
    if chunk:
        blocks.append(section(Mrkdwn("\n".join(chunk))))
    total = max(total or 0, len(lines))
    if shown < total:
        what = f" {noun}" if noun else ""
        blocks.append(context(Mrkdwn(f"_…and {total - shown} more{what} not shown._")))
    return blocks


def message(text: Mrkdwn, blocks: list[Block], **extra: Any) -> dict[str, Any]:
    """Arguments for chat.postMessage / chat.update / chat.postEphemeral / response_url."""
    return {"text": fallback(text), "blocks": fit(blocks), **extra}


def modal(
    callback_id: str,
    title: str,
    blocks: list[Block],
    *,
    submit: str | None = None,
    close: str = "Cancel",
    private_metadata: str = "",
) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, MAX_TITLE),
        "close": plain(close, MAX_TITLE),
        "blocks": fit(blocks, MAX_VIEW_BLOCKS),
    }
    if submit:
        view["submit"] = plain(submit, MAX_TITLE)
    if private_metadata:
        if len(private_metadata) > MAX_METADATA:
            raise ValueError("private_metadata over Slack's 3,000 characters")
        view["private_metadata"] = private_metadata
    return view


def home(blocks: list[Block]) -> Block:
    return {
        "type": "home",
        "blocks": fit(blocks, MAX_VIEW_BLOCKS, note="_More items than fit here; use `/cro`._"),
    }
