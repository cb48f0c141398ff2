"""Approvals in Slack: the Approve / Reject buttons, the reason modal, and their messages.

- `listeners` — the buttons and the modals: the reason, and in a Part 11 study the PIN
  (ack phase: decide; lazy phase: follow up);
- `messages` — how a request, a decision and a notice look (the one Block Kit builder);
- `posts` — what an approval's outbox row sends, rendered when it is delivered;
- `outbox` — the kick that delivers an approval's rows right after commit.
"""

from __future__ import annotations

from slack_bolt import App

from crobot.handlers.approvals import listeners
from crobot.handlers.approvals.messages import APPROVE, REJECT, REJECT_MODAL, SIGN_MODAL


def register(app: App) -> None:
    app.action(APPROVE)(ack=listeners.on_approve, lazy=[listeners.follow_up])
    app.action(REJECT)(ack=listeners.on_reject, lazy=[listeners.follow_up])
    app.view(REJECT_MODAL)(ack=listeners.on_reject_submit, lazy=[listeners.follow_up])
    app.view(SIGN_MODAL)(ack=listeners.on_sign_submit, lazy=[listeners.follow_up])
