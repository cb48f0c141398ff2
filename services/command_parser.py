"""Words of a `/cro` command, as Slack sends them: no Slack imports, pure and testable.

`tokenize` splits the text into `Token`s (a `str` that remembers whether any part was
quoted and its raw form), so subcommands keep the plain `list[str]` signature while
`classify` can still tell `key:value` options, `--flags`, user mentions and positional
words apart. Grammar (DESIGN.md):

- words are separated by white space; `"double quotes"` (also the curly quotes macOS and
  Slack insert) group words; a quote may start inside a word: `note:"two words"`;
- `key:value` with an unquoted alphabetic key is an option (`"Site: Boston"` is not);
- `--flag` (also `—flag`, the em dash autocorrect makes of `--`) is a flag;
- `<@U123|name>` / `<@U123>` is a user mention, exactly as Slack escapes it; `<...>`
  is never split;
- Slack HTML-escapes `&`, `<` and `>` in what the user typed; values are unescaped.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from crobot.services.dates import WEEKDAYS
from crobot.services.errors import Msg, UserError, msg

MAX_TEXT = 4000  # Slack caps slash command text well below this; refuse anything larger
OPEN_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201e": "\u201d", "\u201d": "\u201d"}
CLOSE_QUOTES = {'"', "\u201d", "\u201c"}
DASHES = ("--", "\u2014", "\u2013")
_OPTION = re.compile(r"^([A-Za-z_]+):(.*)$", re.DOTALL)
_MENTION = re.compile(r"^<@([UW][A-Z0-9]{1,31})(?:\|([^>]*))?>$")
_FLAG_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class Token(str):
    """A word of the command. `raw` is what was typed; `quoted` if any part was quoted."""

    raw: str
    quoted: bool

    def __new__(cls, value: str, raw: str | None = None, quoted: bool = False) -> Token:
        tok = super().__new__(cls, value)
        tok.raw = value if raw is None else raw
        tok.quoted = quoted
        return tok


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def tokenize(text: str, *, hint: str | None = None) -> list[Token]:
    if len(text) > MAX_TEXT:
        raise UserError(f"That command is too long ({len(text)} characters).", hint)
    tokens: list[Token] = []
    raw: list[str] = []
    value: list[str] = []
    quoted = False
    closing: str | None = None  # the quote that ends the current quoted part
    angle = False  # inside <...>: Slack's escaped mentions, channels and links
    started = False

    def flush() -> None:
        nonlocal raw, value, quoted, started
        if started:
            joined = "".join(value)
            tokens.append(
                Token(joined if angle_token(raw) else unescape(joined), "".join(raw), quoted)
            )
        raw, value, quoted, started = [], [], False, False

    for ch in text:
        if closing is not None:
            raw.append(ch)
            if ch == closing or (ch in CLOSE_QUOTES and closing in CLOSE_QUOTES):
                closing = None
            else:
                value.append(ch)
            continue
        if angle:
            raw.append(ch)
            value.append(ch)
            if ch == ">":
                angle = False
            continue
        if ch.isspace():
            flush()
            continue
        started = True
        raw.append(ch)
        if ch in OPEN_QUOTES:
            closing, quoted = OPEN_QUOTES[ch], True
        elif ch == "<":
            angle = True
            value.append(ch)
        else:
            value.append(ch)
    if closing is not None:
        raise UserError("A quote is not closed.", hint or 'Close it: `"Like this"`.')
    flush()
    return tokens


def angle_token(raw: list[str]) -> bool:
    return bool(raw) and raw[0] == "<"


@dataclass(frozen=True)
class Mention:
    user_id: str
    label: str | None = None


@dataclass
class Args:
    """A subcommand's words, sorted: positional words, options, flags, mentions."""

    positionals: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    mentions: list[Mention] = field(default_factory=list)

    def option(self, name: str) -> str | None:
        return self.options.get(name)


def _as_token(word: str) -> Token:
    return word if isinstance(word, Token) else Token(word)


def suggest(word: str, options: Iterable[str], *, prefix: str = "") -> Msg:
    """A "did you mean" sentence, or "" when nothing is close.

    `options` are crobot's own words (subcommands, flags, statuses), so they are wording.
    """
    close = difflib.get_close_matches(word, list(options), n=2, cutoff=0.5)
    return msg(
        ("Did you mean " + " or ".join(f"`{prefix}{c}`" for c in close) + "?") if close else ""
    )


def classify(
    words: Sequence[str],
    *,
    options: Iterable[str] = (),
    flags: Iterable[str] = (),
    hint: str | None = None,
) -> Args:
    """Sort words; an option or flag this subcommand does not know is a UserError."""
    allowed_opts, allowed_flags = set(options), set(flags)
    out = Args()
    queue = list(words)
    while queue:
        tok = _as_token(queue.pop(0))
        raw = tok.raw
        if raw.startswith("<"):
            m = _MENTION.match(raw)
            if m is None:
                raise UserError(
                    msg("I can't use `{}` here.", raw), hint or "Mention people with @name."
                )
            out.mentions.append(Mention(m.group(1), m.group(2) or None))
            continue
        dash = next((d for d in DASHES if raw.startswith(d)), None)
        if dash is not None and not tok.quoted:
            name = raw[len(dash) :].lower()
            if not _FLAG_NAME.match(name) or name not in allowed_flags:
                known = ", ".join(f"`--{f}`" for f in sorted(allowed_flags)) or "none"
                did = suggest(name, allowed_flags, prefix="--")
                raise UserError(
                    msg("Unknown flag `{}`. {}", raw, did), hint or f"Flags here: {known}."
                )
            out.flags.add(name)
            continue
        m = _OPTION.match(raw)
        if m is not None:
            key = m.group(1).lower()
            if key not in allowed_opts:
                known = ", ".join(f"`{o}:`" for o in sorted(allowed_opts)) or "none"
                did = suggest(key, allowed_opts)
                raise UserError(
                    msg("Unknown option `{}:`. {}", key, did), hint or f"Options here: {known}."
                )
            val = str(tok).split(":", 1)[1].strip()
            # `due:next fri` arrives as two words; keep the date phrase together.
            if val.lower() == "next" and queue and queue[0].strip().lower() in WEEKDAYS:
                val = f"next {queue.pop(0).strip()}"
            if not val:
                raise UserError(f"`{key}:` needs a value, like `{key}:VALUE`.", hint)
            if key in out.options:
                raise UserError(f"`{key}:` is given twice.", hint)
            out.options[key] = val
            continue
        if raw.startswith("@") and not tok.quoted:
            raise UserError(
                msg("I can't tell who `{}` is.", raw),
                "Pick the person from Slack's @ menu so the mention becomes a link.",
            )
        out.positionals.append(str(tok))
    return out


def parse_id(word: str, what: str, hint: str | None = None) -> int:
    """`12` or `#12`."""
    text = word.strip().removeprefix("#")
    if not text.isdigit() or len(text) > 9:
        raise UserError(msg("`{}` is not a {} ID (a number like `12`).", word, what), hint)
    value = int(text)
    if value <= 0:
        raise UserError(msg("`{}` is not a {} ID (a number like `12`).", word, what), hint)
    return value
