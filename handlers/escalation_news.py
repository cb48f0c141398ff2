"""The messages of an overdue action's escalation (services/escalations.py writes the
outbox rows; digests/delivery.py sends them): a DM to each lead of the owner's
organisation and a post in the study's sponsor channels."""

from __future__ import annotations

from typing import Any

from crobot.handlers import blockkit as bk
from crobot.handlers.blockkit import Mrkdwn, fmt
from crobot.services import escalations
from crobot.services.runtime import Runtime

METADATA_EVENT = "crobot_escalation"
# The payload names the lead to write to; delivery opens the DM channel.
DM_USER = "dm_user"


def _summary(e: escalations.Escalated) -> Mrkdwn:
    return fmt(
        ":arrow_double_up: *Escalated — {}* · action #{} *{}* · owner {}{} · "
        "due {}, overdue {} working day(s) (threshold {})",
        e.study_code,
        e.action_id,
        e.title,
        bk.mention(e.owner_team_id, e.owner_user_id),
        f" ({e.org_name})" if e.org_name else "",
        e.due.isoformat(),
        e.working_days,
        e.threshold,
    )


def _leads(e: escalations.Escalated) -> Mrkdwn:
    if not e.leads:
        return fmt(
            "{} has no lead registered to tell: `crobot person update USER --team TEAM "
            "--role vendor_lead` (or `sponsor_lead`) names one.",
            e.org_name or "The owner's organisation",
        )
    told = ", ".join(str(bk.mention(team, user)) for team, user in e.leads)
    return Mrkdwn(f"Lead(s) told: {told}.")


def _state(e: escalations.Escalated) -> Mrkdwn:
    if not e.open:
        return Mrkdwn("_It has been closed since._")
    return fmt(
        "Close it with `/cro action done {}`, or move the date with `/cro action update {} "
        "due:YYYY-MM-DD`.",
        e.action_id,
        e.action_id,
    )


def payload(runtime: Runtime, target: str, key: str) -> dict[str, Any] | None:
    """chat.postMessage arguments (a lead's DM names `DM_USER`), or None when the action
    or its escalation event is gone."""
    with runtime.db.read() as s:
        e = escalations.escalated(s, target, key)
    if e is None:
        return None
    channel = escalations.channel_of(key)
    if channel is not None:
        blocks = [bk.section(_summary(e)), bk.context(_leads(e)), bk.context(_state(e))]
        return {"channel": channel, **bk.message(_summary(e), blocks)}
    lead = escalations.dm_of(key)
    if lead is None:
        return None
    intro = fmt(
        "One of {}'s actions is overdue and the sponsor's escalation rule has been met.",
        e.org_name or "your organisation",
    )
    blocks = [bk.section(_summary(e)), bk.context(intro), bk.context(_state(e))]
    return {DM_USER: lead[1], **bk.message(_summary(e), blocks)}
