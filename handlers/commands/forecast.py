"""`/cro forecast [STUDY]`: when the study reaches its enrolment target, with odds.

P10 / P50 / P90, the model, each enrolment milestone's on-time odds and the sites it
needs, as text; then a native chart of reported enrolment and the three paths ahead, with
its table (handlers/forecast_chart.py). The fallback model is labelled whenever it is used.
"""

from __future__ import annotations

from crobot.handlers.blockkit import (
    Block,
    Mrkdwn,
    context,
    fmt,
    header,
    lines_block,
    section,
    wording,
)
from crobot.handlers.commands.base import CommandContext, Reply
from crobot.handlers.commands.common import audience_note, reader_audience, study_for
from crobot.handlers.forecast_chart import forecast_visuals
from crobot.services import forecast_text
from crobot.services.command_parser import classify
from crobot.services.enrolment import study_forecast
from crobot.services.errors import UserError

HINT = "Write it as `/cro forecast [STUDY]`."


def forecast_command(ctx: CommandContext, args: list[str]) -> Reply:
    p = classify(args, hint=HINT)
    if len(p.positionals) > 1 or p.mentions:
        raise UserError("`forecast` takes one study at most.", HINT)
    code = p.positionals[0] if p.positionals else None
    with ctx.runtime.db.read() as s:
        study = study_for(s, ctx, code, HINT)
        aud = reader_audience(s, ctx, study)
        sf = study_forecast(s, study, as_of=ctx.today(), audience=aud)
        note = audience_note(aud, study)
    head = forecast_text.headline(sf)
    blocks: list[Block] = [header(f"Enrolment forecast — {sf.study}")]
    warning = forecast_text.fallback_line(sf)
    if warning is not None:
        blocks.append(section(Mrkdwn(":warning: *") + wording(warning) + Mrkdwn("*")))
    blocks.append(section(Mrkdwn("*") + wording(head) + Mrkdwn("*")))
    blocks.append(context(wording(forecast_text.model_line(sf))))
    lines = [wording(forecast_text.milestone_line(m)) for m in sf.forecast.milestones]
    if lines:
        blocks.append(section(Mrkdwn("*Enrolment milestones*")))
        blocks += lines_block(lines, budget=30)
    extra = " ".join(forecast_text.notes(sf))
    blocks.append(context(note, fmt("{} {}", forecast_text.INTERVAL, extra)))
    blocks += forecast_visuals(sf)
    text = wording(head) + (Mrkdwn(" — ") + wording(warning) if warning is not None else Mrkdwn(""))
    return Reply(text, blocks)
