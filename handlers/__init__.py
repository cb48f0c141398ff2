"""Slack surface: one module (or folder) per listener kind, each with `register(app, runtime)`."""

from __future__ import annotations

from slack_bolt import App

from services.runtime import Runtime


def register_listeners(app: App, runtime: Runtime) -> None:
    from handlers import commands, errors

    errors.register(app, runtime)
    commands.register(app, runtime)

    from handlers import actions, approval_messages, home, modals

    approval_messages.register(app, runtime)
    actions.register(app, runtime)
    modals.register(app, runtime)
    home.register(app, runtime)
