"""A decision's signature manifest (21 CFR 11.50) as Slack shows it: for approvals
(handlers/approvals/messages.py) and QTL breach closures (handlers/qtl_news.py) alike."""

from __future__ import annotations

from crobot.handlers.blockkit import Mrkdwn, fmt
from crobot.services.signatures import Manifest


def manifest_text(m: Manifest) -> Mrkdwn:
    """A decision's manifest as approvals and QTL breach closures show it."""
    text = fmt("*Meaning:* {}\n{} by {}", m.meaning, m.word.capitalize(), m.name)
    if m.word != "signed":
        text += Mrkdwn(" (Slack identity; not a Part 11 signature)")
    text += fmt(" · {}", m.utc)
    if m.local:
        text += fmt(" · {}, signer's local time", m.local)
    return text
