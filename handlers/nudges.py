"""The overdue-action reminder's buttons: Snooze (a day / until Monday) pauses the clicker's
own reminders; Done marks one of their listed actions done (services.actions, audited).
The reminder is then rewritten in place to say what happened."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt import Ack, App, BoltContext, Respond

from crobot.digests.nudges import DONE, SNOOZE_DAY, SNOOZE_MONDAY
from crobot.handlers import blockkit as bk
from crobot.handlers import middleware
from crobot.services import actions, snoozes
from crobot.services.actor import resolve_actor
from crobot.services.errors import UserError
from crobot.services.user_tz import known_timezone


def snooze(ack: Ack, body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    ack()
    choice = str((body.get("actions") or [{}])[0].get("value") or "")
    who = middleware.identity(context)
    runtime = middleware.runtime(context)
    with runtime.db.write() as s:
        actor = resolve_actor(s, who.team_id, who.user_id)
        zone = known_timezone(s, actor, now=runtime.now()) or runtime.default_tz
        today = runtime.now().astimezone(ZoneInfo(zone)).date()
        until = snoozes.until_for(choice, today)
        snoozes.snooze(s, actor, until)
    text = bk.Mrkdwn(
        f"Snoozed: no overdue reminder until {until:%a %d %b} has passed. "
        "`/cro action list mine --overdue` still shows them."
    )
    respond(replace_original=True, **bk.message(text, [bk.section(text)]))


def done(ack: Ack, body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    ack()
    selected = ((body.get("actions") or [{}])[0].get("selected_option") or {}).get("value")
    who = middleware.identity(context)
    runtime = middleware.runtime(context)
    try:
        action_id = int(str(selected))
        with runtime.db.write() as s:
            item = actions.complete(s, resolve_actor(s, who.team_id, who.user_id), action_id)
            text = bk.fmt("Marked #{} {} done.", item.id, item.title)
    except (UserError, ValueError) as exc:
        text = bk.fmt("{}", exc.message if isinstance(exc, UserError) else "Pick an action.")
    respond(
        replace_original=False, response_type="ephemeral", **bk.message(text, [bk.section(text)])
    )


def register(app: App) -> None:
    app.action(re.compile(f"^({SNOOZE_DAY}|{SNOOZE_MONDAY})$"))(snooze)
    app.action(DONE)(done)
