"""Slack surface, by feature (commands, forms, approvals, home), each with `register(app)`.

`register_listeners` installs the replay check (after Bolt's signature check), the
middleware that puts the runtime and the request's identity into every listener's
context, and the check that an interaction names a listener at all; then registers the
features.
"""

from __future__ import annotations

from slack_bolt import App

from crobot.services.runtime import Runtime


def register_listeners(app: App, runtime: Runtime) -> None:
    # Imported here so that importing `handlers` (e.g. for its helpers) registers nothing.
    from crobot.handlers import (
        approvals,
        commands,
        errors,
        forms,
        home,
        middleware,
        nudges,
        payload,
        qtl_listeners,
        questions,
        replay,
    )
    from crobot.handlers.approvals import outbox

    replay.install(app, runtime)
    middleware.install(app, runtime)
    payload.install(app)
    errors.register(app)
    commands.register(app)
    forms.register(app)
    approvals.register(app)
    home.register(app)
    nudges.register(app)
    qtl_listeners.register(app)
    questions.register(app)
    outbox.attach(runtime, app.client)
