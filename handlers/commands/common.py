"""What several subcommands need: which study, which audience, dates in the user's zone.

The visibility rule itself is `services.visibility`; this only picks its inputs (the
person, and the channel when the channel is linked to that study).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date

from sqlalchemy.orm import Session

from crobot.handlers.commands.base import CommandContext, Reply
from crobot.services.command_parser import suggest
from crobot.services.dates import parse_date
from crobot.services.errors import NotFound, UserError
from crobot.services.lookup import study_by_code, vendor_org_ids
from crobot.services.visibility import (
    Audience,
    Scope,
    audience_for_channel,
    audience_for_person,
    narrowest,
)
from crobot.storage.models import Study

log = logging.getLogger(__name__)


def split_study(
    ctx: CommandContext, positionals: list[str], *, full: int, hint: str
) -> tuple[str | None, list[str]]:
    """`full` positional words include the study; one fewer means "this channel's study".

    Returns (study code or None for the channel's, the remaining words).
    """
    if len(positionals) == full:
        return positionals[0], positionals[1:]
    if len(positionals) == full - 1:
        if ctx.link is None:
            raise UserError("Which study? This channel is not linked to one.", hint)
        return None, positionals
    if len(positionals) > full:
        extra = " ".join(f"`{w}`" for w in positionals[full:])
        raise UserError(f"I don't know what to do with {extra}. Quote names with spaces.", hint)
    raise UserError("Something is missing.", hint)


def study_for(session: Session, ctx: CommandContext, code: str | None, hint: str) -> Study:
    if code is not None:
        try:
            return study_by_code(session, code)
        except NotFound as err:
            if ctx.link is None:
                raise
            # In a linked channel the first word was probably meant as a name.
            raise NotFound(
                err.message,
                f'Names with spaces need quotes: `"{code} …"`. {err.hint or ""}'.strip(),
            ) from None
    if ctx.link is None:
        raise UserError("Which study? This channel is not linked to one.", hint)
    study = session.get(Study, ctx.link.study_id)
    if study is None:  # the link's study vanished between reads: say so plainly
        raise UserError("This channel's study no longer exists.", hint)
    return study


def channel_audience(ctx: CommandContext, study: Study) -> Audience | None:
    if ctx.link is None or ctx.link.study_id != study.id:
        return None
    return audience_for_channel(ctx.link)


def reader_audience(session: Session, ctx: CommandContext, study: Study) -> Audience:
    """What this person may be shown in this channel: the narrower of the two."""
    person = audience_for_person(ctx.actor, study, vendor_org_ids(session, study.id))
    return narrowest(person, channel_audience(ctx, study))


def announce_audience(ctx: CommandContext, study: Study) -> Audience:
    """Who reads an in-channel message: the linked audience, else only what is public."""
    return channel_audience(ctx, study) or Audience(
        study.id, Scope.PUBLIC, None, study.sponsor_org_id
    )


def date_option(ctx: CommandContext, raw: str | None, what: str) -> date | None:
    return None if raw is None else parse_date(raw, ctx.today(), what=what)


def audience_note(aud: Audience, study: Study) -> str:
    names = {
        Scope.SPONSOR: "everything (sponsor view)",
        Scope.VENDOR: "one vendor's items and shared study items",
        Scope.JOINT: "approved data shared in this joint channel",
        Scope.PUBLIC: "shared study items only",
    }
    return f"{study.code} · showing {names[aud.scope]}"


def notify_approval(ctx: CommandContext, approval_id: int | None) -> None:
    """Tell the approvals surface, after commit, that a decision is awaited.

    The submission is stored either way; a failure to post the Approve/Reject message
    is logged (and the approvals surface may retry), never turned into an error reply.
    """
    if approval_id is None:
        return
    try:
        ctx.runtime.approval_requested(approval_id)
    except Exception:
        log.exception("approval #%s stored but its notification failed", approval_id)


def shown_in_channel(visible: bool) -> tuple[bool, str]:
    """Announce a change in the channel only if the channel's audience may see it."""
    if visible:
        return True, ""
    return False, " _(Only you see this: this channel's audience may not see that item.)_"


Verb = Callable[[CommandContext, list[str]], Reply]


def dispatch_verb(
    ctx: CommandContext, args: list[str], noun: str, verbs: Mapping[str, Verb], hint: str
) -> Reply:
    """`/cro <group> <verb> …`: run the verb, or say which verbs there are."""
    if not args:
        raise UserError(f"What should I do with {noun}s?", hint)
    verb = args[0].lower()
    fn = verbs.get(verb)
    if fn is None:
        did = suggest(verb, verbs)
        raise UserError(f"Unknown {noun} command `{args[0]}`. {did}".strip(), hint)
    return fn(ctx, args[1:])
