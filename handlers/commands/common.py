"""What several subcommands need: which study, which audience, dates in the user's zone.

The visibility rule itself is `services.visibility`; this only picks its inputs (the
person, and the channel when the channel is linked to that study).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from sqlalchemy.orm import Session

from crobot.handlers.blockkit import Mrkdwn, fmt
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.services.command_parser import suggest
from crobot.services.dates import parse_date
from crobot.services.errors import NotFound, UserError, msg
from crobot.services.lookup import study_by_id, study_named_by, vendor_org_ids
from crobot.services.visibility import (
    Audience,
    Scope,
    audience_for_channel,
    audience_for_person,
    narrowest,
)
from crobot.storage.models import Study

NOT_LINKED = "Which study? This channel is not linked to one."


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
            raise UserError(NOT_LINKED, hint)
        return None, positionals
    if len(positionals) > full:
        extra = " ".join(positionals[full:])
        raise UserError(
            msg("I don't know what to do with `{}`. Quote names with spaces.", extra), hint
        )
    raise UserError("Something is missing.", hint)


def study_for(session: Session, ctx: CommandContext, code: str | None, hint: str) -> Study:
    if code is not None:
        try:
            channel_study = ctx.link.study_id if ctx.link else None
            return study_named_by(session, ctx.actor, code, channel_study_id=channel_study)
        except NotFound as err:
            if ctx.link is None:
                raise
            # In a linked channel the first word was probably meant as a name.
            quote = msg('Names with spaces need quotes: `"{} …"`. {}', code, err.hint or "")
            raise NotFound(err.message, quote, field=err.field) from None
    if ctx.link is None:
        raise UserError(NOT_LINKED, hint)
    return study_by_id(session, ctx.link.study_id)


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


_SHOWING = {
    Scope.SPONSOR: "everything (sponsor view)",
    Scope.VENDOR: "one vendor's items and shared study items",
    Scope.JOINT: "approved data shared in this joint channel",
    Scope.PUBLIC: "shared study items only",
}


def audience_note(aud: Audience, study: Study) -> Mrkdwn:
    return fmt("{} · showing " + _SHOWING[aud.scope], study.code)


def by(ctx: CommandContext) -> Mrkdwn:
    """The person who ran the command, as a mention."""
    return fmt("by {}", ctx.mention)


def shown_in_channel(visible: bool) -> tuple[bool, Mrkdwn]:
    """Announce a change in the channel only if the channel's audience may see it."""
    if visible:
        return True, Mrkdwn("")
    return False, Mrkdwn(" _(Only you see this: this channel's audience may not see that item.)_")


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
        raise UserError(msg(f"Unknown {noun} command `{{}}`. {{}}", args[0], did), hint)
    return fn(ctx, args[1:])
