"""`/cro scorecard [ORG] [period:2026-Q4] [study:CODE]`: vendor scorecards for a quarter.

The study is the channel's (or `study:`); in a direct message, every study of the
reader's. The sponsor's staff see any vendor's scorecard, a vendor only its own
(`services.scorecards.orgs_for`), and never more than the channel's audience may see.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import reader_audience, study_for
from crobot.handlers.scorecard_blocks import scorecard_message
from crobot.services import scorecards
from crobot.services.command_parser import classify
from crobot.services.errors import UserError
from crobot.services.lookup import org_studies
from crobot.services.quarters import Quarter
from crobot.services.scorecards import HINT, Scorecard
from crobot.storage.models import Study


def scorecard_command(ctx: CommandContext, args: list[str]) -> Reply:
    p = classify(args, options=("period", "study"), hint=HINT)
    if p.mentions:
        raise UserError("A scorecard is about an organisation, not a person.", HINT)
    org_name = " ".join(p.positionals) or None  # `Apex CRO`, quoted or not
    today = ctx.today()
    period = p.option("period")
    quarter = Quarter.parse(period) if period else Quarter.of(today)
    with ctx.runtime.db.read() as s:
        cards = _cards(s, ctx, _studies(s, ctx, p.option("study")), org_name, quarter)
    text, blocks = scorecard_message(cards, quarter)
    return Reply(text, blocks)


def _studies(s: Session, ctx: CommandContext, code: str | None) -> list[Study]:
    if code is not None or ctx.link is not None:
        return [study_for(s, ctx, code, HINT)]
    mine = org_studies(s, ctx.actor.org_id) if ctx.actor.org_id is not None else []
    if not mine:
        raise UserError("Which study? You are on none.", HINT)
    return mine


def _cards(
    s: Session, ctx: CommandContext, studies: list[Study], org_name: str | None, q: Quarter
) -> list[Scorecard]:
    """Every asked-for scorecard; with several studies, those where the reader may see
    the vendor asked for (the first refusal is the answer when there is none)."""
    cards: list[Scorecard] = []
    refused: UserError | None = None
    for study in studies:
        try:
            orgs = scorecards.orgs_for(s, study, reader_audience(s, ctx, study), org_name)
        except UserError as exc:
            if len(studies) == 1:
                raise
            refused = refused or exc
            continue
        tz = ctx.runtime.default_tz
        cards += scorecards.build(s, study, orgs, q, today=ctx.today(), default_tz=tz)
    if not cards and refused is not None:
        raise refused
    return cards
