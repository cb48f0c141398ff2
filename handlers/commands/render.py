"""`/cro` replies that are not one subcommand's: errors and notices; and a terminal view
of any reply for `crobot console`.

Blocks are built with `handlers.blockkit`, which escapes what people typed; the terminal
view undoes that escaping, because a terminal is not Slack.
"""

from __future__ import annotations

import re

from crobot.handlers.blockkit import Mrkdwn, context, fmt, section, wording
from crobot.handlers.commands.base import Reply
from crobot.services.errors import UserError


def error_reply(err: UserError) -> Reply:
    message = wording(err.message)
    blocks = [section(fmt(":warning: {}", message))]
    if err.hint:
        blocks.append(context(wording(err.hint)))
        return Reply(fmt(":warning: {} {}", message, wording(err.hint)), blocks, is_error=True)
    return Reply(fmt(":warning: {}", message), blocks, is_error=True)


def notice(text: Mrkdwn, *, is_error: bool = True) -> Reply:
    return Reply(text, [section(text)], is_error=is_error)


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
# What blockkit put in place of the characters people typed (look-alikes and entities).
_UNESCAPE = str.maketrans(
    {"\u2217": "*", "\u02cd": "_", "\u223c": "~", "\u02cb": "`", "\u2039": "<", "\u203a": ">"}
)
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def _plain(text: str) -> str:
    """crobot's own markup becomes plain text first; then what people typed is restored."""
    for code, char in _EMOJI.items():
        text = text.replace(code, char)
    text = _BOLD.sub(r"\1", text)
    text = _LINK.sub(r"\2", text)
    text = _BARE.sub(r"@\1", text)
    text = text.translate(_UNESCAPE)
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def to_terminal(r: Reply) -> str:
    """Block Kit as readable text: headers underlined, context indented, dividers ruled,
    table rows as lines."""
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
        elif kind == "table":  # raw text cells, one row a line
            for row in b.get("rows", []):
                out.append("  " + " | ".join(_plain(c.get("text", "")) for c in row))
    where = "(visible to the channel)" if r.in_channel else "(only you can see this)"
    return "\n".join(out) + "\n" + where
