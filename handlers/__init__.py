"""Slack surface, grouped by feature; each feature has `register(app)`."""

from __future__ import annotations

from slack_bolt import App

from crobot.services.runtime import Runtime


def register_listeners(app: App, runtime: Runtime) -> None:
    # Imported here so that importing `handlers` (e.g. for its helpers) registers nothing.
    from crobot.handlers import approvals, commands, errors, home, middleware, modals
    from crobot.handlers.approvals import outbox

    middleware.install(app, runtime)
    errors.register(app, runtime)
    commands.register(app, runtime)
    approvals.register(app)
    modals.register(app, runtime)
    home.register(app)
    outbox.attach(runtime, app.client)
