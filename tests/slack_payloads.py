"""Check what crobot sent Slack: every payload valid Block Kit, and no raw user markup.

`validate_calls(fake.state.calls)` parses the blocks and views of every message and view
call (and response_url reply) with `slack_sdk.models` — whose validators raise on
over-long text and too many blocks — and checks Slack's limits on top. `assert_no_raw`
walks every string of every payload for control sequences a person typed: if one arrives
raw, Slack would ping @channel, plant a link, set bold or forge a line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests.fake_slack import Call

MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})
VIEW_METHODS = frozenset({"views.open", "views.publish", "views.update", "views.push"})
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_TEXT = 40000  # Slack truncates a message's `text` beyond this

# What a hostile person types, as it must never reach Slack. The emphasis markers are
# control sequences only where Slack parses mrkdwn, so they are not looked for inside
# plain_text objects (Slack shows those literally); everything else is looked for everywhere.
MENTIONS_AND_LINKS: tuple[str, ...] = ("<!channel>", "<!here>", "<@U0EVIL", "<https://evil.example")
EMPHASIS: tuple[str, ...] = ("*b*", "_i_", "~s~")
BIDI: tuple[str, ...] = tuple(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# A line a note could forge: it starts a line (not inside a `>` quote) and claims a decision.
FORGED_LINE = re.compile(r"\n[ \t]*:white_check_mark:[ \t]*[*\u2217]?Approved by", re.IGNORECASE)
Needle = str | re.Pattern[str]
HOSTILE_NEEDLES: tuple[Needle, ...] = (*MENTIONS_AND_LINKS, *EMPHASIS, *BIDI, FORGED_LINE)
SKIPPED_KEYS = frozenset({"private_metadata"})  # opaque to Slack, never shown


@dataclass(frozen=True)
class Problem:
    where: str
    what: str
    needle: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


# --- Block Kit validity --------------------------------------------------------------


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


CHART_TYPES = ("line", "bar", "area")
MAX_CHARTS, MAX_CHART_TITLE, MAX_SERIES, MAX_CATEGORY, MAX_AXIS_LABEL = 2, 50, 6, 20, 50
MAX_TABLE_ROWS, MAX_TABLE_CELLS = 100, 20


def chart_problems(raw: dict[str, Any]) -> list[str]:
    """A data_visualization block against its reference (slack_sdk does not model it):
    title ≤ 50; a line/bar/area chart has 1–6 uniquely named series, each with exactly one
    numeric point per x-axis category, categories ≤ 20 characters, axis titles ≤ 50."""
    out: list[str] = []
    title = raw.get("title")
    if not isinstance(title, str) or not title or len(title) > MAX_CHART_TITLE:
        out.append(f"chart title {title!r} missing or over {MAX_CHART_TITLE}")
    chart = raw.get("chart") or {}
    if chart.get("type") not in CHART_TYPES:
        return [*out, f"chart type {chart.get('type')!r} not drawn here"]
    axis = chart.get("axis_config") or {}
    cats = axis.get("categories")
    if not isinstance(cats, list) or not cats:
        return [*out, "no axis categories"]
    out += [f"category {c!r} over {MAX_CATEGORY}" for c in cats if len(str(c)) > MAX_CATEGORY]
    for key in ("x_label", "y_label"):
        if len(str(axis.get(key, ""))) > MAX_AXIS_LABEL:
            out.append(f"{key} over {MAX_AXIS_LABEL}")
    series = chart.get("series") or []
    if not 1 <= len(series) <= MAX_SERIES:
        out.append(f"{len(series)} series, not 1-{MAX_SERIES}")
    names = [str(x.get("name", "")) for x in series]
    if len(set(names)) != len(names) or not all(names):
        out.append(f"series names not unique and present: {names}")
    for x in series:
        labels = [d.get("label") for d in x.get("data") or []]
        if labels != cats:
            out.append(f"series {x.get('name')!r}: points {labels} != categories {cats}")
        if not all(isinstance(d.get("value"), int | float) for d in x.get("data") or []):
            out.append(f"series {x.get('name')!r}: a value is not a number")
    return out


def table_problems(raw: dict[str, Any]) -> list[str]:
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows:
        return ["table without rows"]
    out = [f"{len(rows)} table rows, over {MAX_TABLE_ROWS}"] if len(rows) > MAX_TABLE_ROWS else []
    widths = {len(r) for r in rows}
    if max(widths) > MAX_TABLE_CELLS or len(widths) != 1:
        out.append(f"table rows of widths {sorted(widths)} (same width, at most 20 cells)")
    if len(raw.get("column_settings") or []) > MAX_TABLE_CELLS:
        out.append("more than 20 column settings")
    return out


def block_problems(blocks: Any, *, limit: int) -> list[str]:
    """What is wrong with a `blocks` array, per slack_sdk's models and Slack's limits."""
    if not isinstance(blocks, list):
        return [f"blocks is {type(blocks).__name__}, not a list"]
    out: list[str] = []
    if len(blocks) > limit:
        out.append(f"{len(blocks)} blocks, over {limit}")
    charts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "data_visualization"]
    if len(charts) > MAX_CHARTS:
        out.append(f"{len(charts)} charts in one message, over {MAX_CHARTS}")
    for i, (raw, parsed) in enumerate(zip(blocks, Block.parse_all(blocks), strict=True)):
        if isinstance(raw, dict) and raw.get("type") == "data_visualization":
            out += [f"block {i} (data_visualization): {p}" for p in chart_problems(raw)]
            continue
        if isinstance(raw, dict) and raw.get("type") == "table":
            out += [f"block {i} (table): {p}" for p in table_problems(raw)]
        if parsed is None:
            out.append(f"block {i} ({_text_of(raw)[:40]!r}): slack_sdk does not know it")
            continue
        try:
            parsed.validate_json()
            parsed.to_dict()  # validates every nested element and text object too
        except SlackObjectFormationError as exc:
            out.append(f"block {i} ({raw.get('type')}): {exc}")
        kind = raw.get("type")
        if kind == "section" and len(_text_of(raw.get("text"))) > MAX_SECTION:
            out.append(f"block {i}: section text {len(_text_of(raw.get('text')))} > {MAX_SECTION}")
        if kind == "header" and len(_text_of(raw.get("text"))) > MAX_HEADER:
            out.append(f"block {i}: header text {len(_text_of(raw.get('text')))} > {MAX_HEADER}")
    return out


def message_problems(payload: dict[str, Any]) -> list[str]:
    """A chat.postMessage / chat.update / chat.postEphemeral / response_url payload."""
    if payload.get("delete_original"):
        return []
    out: list[str] = []
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        out.append("no fallback `text`")
    elif len(text) > MAX_TEXT:
        out.append(f"text {len(text)} > {MAX_TEXT}")
    if payload.get("blocks") is not None:
        out.extend(block_problems(payload["blocks"], limit=MAX_MESSAGE_BLOCKS))
    return out


def view_problems(view: Any) -> list[str]:
    """A views.open / views.publish / views.update view."""
    if not isinstance(view, dict):
        return [f"view is {type(view).__name__}, not an object"]
    out = block_problems(view.get("blocks") or [], limit=MAX_VIEW_BLOCKS)
    try:
        View(**view).validate_json()
    except (SlackObjectFormationError, TypeError) as exc:
        out.append(f"view: {exc}")
    return out


def ack_problems(body: str | dict[str, Any]) -> list[str]:
    """An HTTP ack body: empty, a message (slash command), or a view_submission answer."""
    if isinstance(body, str):
        if not body.strip():
            return []
        body = json.loads(body)
    assert isinstance(body, dict)
    if body.get("response_action") in ("update", "push"):
        return view_problems(body.get("view"))
    if body.get("response_action") == "errors":
        errors = body.get("errors")
        return [] if isinstance(errors, dict) and errors else ["errors answer without errors"]
    if body.get("response_action") == "clear":
        return []
    return message_problems(body)


def is_response_url(call: Call) -> bool:
    return call.method.startswith("/") and not call.method.startswith("/upload/")


def call_problems(call: Call) -> list[str]:
    if call.method in MESSAGE_METHODS or is_response_url(call):
        return message_problems(call.params)
    if call.method in VIEW_METHODS:
        return view_problems(call.params.get("view"))
    return []


def validate_calls(calls: Iterable[Call], acks: Iterable[str | dict[str, Any]] = ()) -> int:
    """Fail with every problem found; return how many payloads were checked."""
    problems: list[str] = []
    checked = 0
    for n, call in enumerate(calls):
        if call.method in MESSAGE_METHODS | VIEW_METHODS or is_response_url(call):
            checked += 1
            problems.extend(f"call {n} {call.method}: {p}" for p in call_problems(call))
    for n, body in enumerate(acks):
        checked += 1
        problems.extend(f"ack {n}: {p}" for p in ack_problems(body))
    assert not problems, "invalid Slack payloads:\n" + "\n".join(problems)
    return checked


# --- raw user markup -----------------------------------------------------------------


def strings(value: Any, path: str = "", *, plain: bool = False) -> Iterator[tuple[str, str, bool]]:
    """(path, string, inside a plain_text object) for every string in a payload."""
    if isinstance(value, str):
        yield path, value, plain
    elif isinstance(value, dict):
        inside = plain or value.get("type") == "plain_text"
        for key, item in value.items():
            if key not in SKIPPED_KEYS:
                yield from strings(item, f"{path}.{key}", plain=inside)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{path}[{i}]", plain=plain)


def _hits(text: str, needle: Needle) -> str | None:
    if isinstance(needle, re.Pattern):
        m = needle.search(text)
        return None if m is None else m.group(0)
    return needle if needle in text else None


def raw_problems(payload: Any, needles: Sequence[Needle], where: str) -> list[Problem]:
    out = []
    for path, text, plain in strings(payload):
        for needle in needles:
            if plain and isinstance(needle, str) and needle in EMPHASIS:
                continue
            hit = _hits(text, needle)
            if hit is not None:
                at = text.find(hit)
                excerpt = text[max(0, at - 30) : at + len(hit) + 30]
                out.append(Problem(f"{where}{path}", f"raw {hit!r} in …{excerpt!r}…", hit))
    return out


def assert_no_raw(
    calls: Iterable[Call],
    needles: Sequence[Needle] = HOSTILE_NEEDLES,
    acks: Iterable[str | dict[str, Any]] = (),
) -> int:
    """Fail if any needle appears in any string of any recorded payload or ack body."""
    problems: list[Problem] = []
    checked = 0
    for n, call in enumerate(calls):
        checked += 1
        problems.extend(raw_problems(call.params, needles, f"call {n} {call.method}"))
    for n, body in enumerate(acks):
        checked += 1
        payload = json.loads(body) if isinstance(body, str) and body.strip() else body
        problems.extend(raw_problems(payload, needles, f"ack {n}"))
    assert not problems, "raw user markup reached Slack:\n" + "\n".join(map(str, problems))
    return checked
