"""Forms for `/cro milestone add`, `/cro action add` and `/cro kpi report` given no
arguments: `views` opens them, `submit` stores what was entered."""

from __future__ import annotations

from slack_bolt import App

from crobot.handlers.forms.submit import after_submit, on_submit
from crobot.handlers.forms.views import (
    ACTION_ADD,
    CALLBACKS,
    KPI_REPORT,
    MILESTONE_ADD,
    VALUE,
    open_form,
)

__all__ = ["ACTION_ADD", "CALLBACKS", "KPI_REPORT", "MILESTONE_ADD", "VALUE", "open_form"]


def register(app: App) -> None:
    for callback_id in CALLBACKS.values():
        app.view(callback_id)(ack=on_submit, lazy=[after_submit])
