"""Plain-language questions in a DM to crobot or an @mention: read as a `/cro` command
(services/questions.py), run through the same router as `/cro` (same person, same
visibility), answered with one line saying how the question was read. Unsure: the two
closest readings as buttons. Nothing asked in plain language ever writes.

In a channel the answer is ephemeral, as `/cro` answers are: what the asker may see is not
necessarily what the channel may. The ack function reads the question (no Slack call);
only a question from a registered person is handed to the lazy listener, which runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from crobot.handlers import blockkit as bk
from crobot.handlers import middleware
from crobot.handlers.commands.base import Reply
from crobot.handlers.commands.router import CommandRequest, CommandRouter
from crobot.handlers.handoff import hand_over, take_over
from crobot.services import questions
from crobot.services.actor import resolve_actor

ACTION = "question_reading"
KEY = "crobot_question"
MENTION = re.compile(r"<@[A-Z0-9]+>")


@dataclass(frozen=True)
class Question:
    """What the ack function decided: where to answer, and the reading(s)."""

    team_id: str
    user_id: str
    channel: str
    in_dm: bool
    answer: questions.Answer


def read_event(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """On the ack path (fast, no Slack call): is it a question from someone crobot knows,
    and how does it read? Only then is anything left for `answer_event`."""
    ack()
    event = body.get("event") or {}
    if event.get("bot_id") or event.get("subtype"):
        return  # crobot's own posts, edits, joins: not questions
    in_dm = event.get("type") == "message"
    if in_dm and event.get("channel_type") != "im":
        return
    who = middleware.identity(context)
    channel = str(event.get("channel") or "")
    text = MENTION.sub(" ", str(event.get("text") or "")).strip()
    if not who.known or not channel or not text:
        return
    with middleware.runtime(context).db.read() as s:
        actor = resolve_actor(s, who.team_id, who.user_id)
        if actor.person is None:
            return  # strangers learn nothing, as with `/cro`
        answer = questions.read(text, questions.vocabulary(s, actor))
    hand_over(context, KEY, Question(who.team_id, who.user_id, channel, in_dm, answer))


def answer_event(context: BoltContext, client: WebClient) -> None:
    q = take_over(context, KEY, Question)
    if q is None:
        return
    if q.answer.sure and q.answer.best is not None:
        runtime = middleware.runtime(context)
        reply = _run(runtime, client, q.team_id, q.user_id, q.channel, q.answer.best.command)
    else:
        reply = _choices(q.answer)
    args = bk.message(reply.text, reply.blocks)
    if q.in_dm:
        client.chat_postMessage(channel=q.channel, **args)
    else:
        client.chat_postEphemeral(channel=q.channel, user=q.user_id, **args)


def _run(
    runtime: Any, client: WebClient, team: str, user: str, channel: str, command: str
) -> Reply:
    if not questions.is_read_only(command):  # the reader only reads; this holds it to that
        raise ValueError(f"not a read: {command}")
    req = CommandRequest(team_id=team, user_id=user, channel_id=channel, text=command)
    reply = CommandRouter(runtime).run(req, client)
    how = bk.fmt("I read this as {}", bk.code(f"/cro {command}"))
    return Reply(reply.text, [*reply.blocks, bk.context(how)], is_error=reply.is_error)


def _choices(answer: questions.Answer) -> Reply:
    top = answer.readings[:2]
    if not top:
        text = bk.Mrkdwn(
            "I could not read that as a question I can answer. Try `/cro help`, or ask "
            "e.g. _what's late at Apex?_ or _how is enrolment trending on ONC-301?_"
        )
        return Reply(text, [bk.section(text)])
    text = bk.Mrkdwn("I am not sure what you mean. Did you mean one of these?")
    buttons = [
        bk.button(f"/cro {r.command}", f"{ACTION}_{i}", r.command) for i, r in enumerate(top)
    ]
    return Reply(text, [bk.section(text), bk.actions(*buttons)])


def choose(ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    ack()
    action = (body.get("actions") or [{}])[0]
    command = str(action.get("value") or "")
    who = middleware.identity(context)
    channel = str((body.get("channel") or {}).get("id") or "")
    if not questions.is_read_only(command) or not who.known:
        return
    reply = _run(middleware.runtime(context), client, who.team_id, who.user_id, channel, command)
    respond = context.respond
    if respond is not None:
        respond(
            replace_original=True, response_type="ephemeral", **bk.message(reply.text, reply.blocks)
        )


def register(app: App) -> None:
    app.event("app_mention")(ack=read_event, lazy=[answer_event])
    app.event("message")(ack=read_event, lazy=[answer_event])
    app.action(re.compile(f"^{ACTION}_[01]$"))(choose)
