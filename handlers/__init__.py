"""Slack surface: one module (or folder) per listener kind, each with `register(app, runtime)`."""

from __future__ import annotations

from slack_bolt import App

from crobot.services.runtime import Runtime


def register_listeners(app: App, runtime: Runtime) -> None:
    # Imported here so that importing `handlers` (e.g. for its helpers) registers nothing.
    from crobot.handlers import actions, approval_messages, commands, errors, home, modals, replay

    replay.install(app, runtime)
    errors.register(app, runtime)
    commands.register(app, runtime)
    approval_messages.register(app, runtime)
    actions.register(app, runtime)
    modals.register(app, runtime)
    home.register(app, runtime)
