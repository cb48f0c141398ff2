"""Block Kit building blocks for `/cro` replies, within Slack's limits, and a terminal view.

Slack limits: 50 blocks per message, 3,000 characters per section text, 150 per header.
User-typed text (milestone names, notes) is escaped so it can never become a mention
or `<!channel>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from crobot.handlers.commands.base import Reply
from crobot.services.errors import UserError

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150

Block = dict[str, Any]


def esc(text: object) -> str:
    """Escape user-provided text for mrkdwn (Slack's three control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(text, MAX_HEADER)}}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}]}


def divider() -> Block:
    return {"type": "divider"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lines_block(lines: Sequence[str], *, budget: int, total: int | None = None) -> list[Block]:
    """Pack lines into as few sections as fit, using at most `budget` blocks.

    `total` is how many items there are when `lines` holds only the first of them.
    """
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    shown = 0
    for line in lines:
        line = _cut(line, MAX_SECTION)
        if chunk and size + len(line) + 1 > MAX_SECTION:
            if len(blocks) + 2 > budget:
                break
            blocks.append(section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
        shown += 1
    if chunk:
        blocks.append(section("\n".join(chunk)))
    total = max(total or 0, len(lines))
    if shown < total:
        blocks.append(context(f"…and {total - shown} more not shown."))
    return blocks


def reply(
    text: str, blocks: list[Block], *, in_channel: bool = False, is_error: bool = False
) -> Reply:
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[: MAX_BLOCKS - 1] + [context("…cut to fit one Slack message.")]
    return Reply(text=text, blocks=blocks, in_channel=in_channel, is_error=is_error)


def error_reply(err: UserError) -> Reply:
    text = f":warning: {err.message}"
    blocks = [section(text)]
    if err.hint:
        blocks.append(context(err.hint))
    return reply(str(err), blocks, is_error=True)


def notice(text: str, *, is_error: bool = True) -> Reply:
    return reply(text, [section(text)], is_error=is_error)


# --- terminal rendering (crobot console) -------------------------------------------

_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")
_BARE = re.compile(r"<[@#!]?([^>]+)>")


_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_EMOJI = {
    ":warning:": "⚠",
    ":white_check_mark:": "✔",
    ":round_pushpin:": "◆",
    ":pencil2:": "✎",
    ":memo:": "•",
    ":bar_chart:": "▤",
    ":hourglass:": "⌛",
    ":red_circle:": "●",
}


def _plain(text: str) -> str:
    for code, char in _EMOJI.items():
        text = text.replace(code, char)
    text = _BOLD.sub(r"\1", text)
    text = _LINK.sub(r"\2", text)
    text = _BARE.sub(r"@\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_terminal(r: Reply) -> str:
    """Block Kit as readable text: headers underlined, context indented, dividers ruled."""
    if not r.blocks:
        return _plain(r.text)
    out: list[str] = []
    for b in r.blocks:
        kind = b.get("type")
        if kind == "header":
            title = _plain(b["text"]["text"])
            out += [title, "=" * min(len(title), 72)]
        elif kind == "section":
            if "text" in b:
                out.append(_plain(b["text"]["text"]))
            for f in b.get("fields", []):
                out.append("  " + _plain(f["text"]))
        elif kind == "context":
            out += ["  " + _plain(e.get("text", "")) for e in b.get("elements", [])]
        elif kind == "divider":
            out.append("-" * 40)
    where = "(visible to the channel)" if r.in_channel else "(only you can see this)"
    return "\n".join(out) + "\n" + where
