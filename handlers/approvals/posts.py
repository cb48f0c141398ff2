"""The message an approval outbox row sends, rendered when it is delivered.

digests/delivery.py calls `payload` for rows with an `approval:<id>` target; rendering at
delivery time means a retried or resumed row always shows the approval's current state,
and that who may be told is checked again when it is sent.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from crobot.handlers.approvals import messages
from crobot.handlers.user_tz import user_timezone
from crobot.services import approval_log
from crobot.services.approval_log import DM, REQUEST, UPDATE, VENDOR, Work
from crobot.services.lookup import channel_link, vendor_channel
from crobot.services.runtime import Runtime

DM_USER = "dm"  # in a payload instead of "channel": open a DM with this user id first


def payload(runtime: Runtime, client: WebClient, target: str, key: str) -> dict[str, Any] | None:
    """chat.postMessage arguments (with `ts`: chat.update), or None when nothing is due.

    Nothing is due for a request decided before it could be posted, for a submitter no
    longer registered (or deciding their own submission), for a channel that is no longer
    the vendor's own channel of the study, and for the retired sponsor-thread notice.
    """
    work = Work.parse(key)
    with runtime.db.read() as s:
        rec = approval_log.record(s, approval_log.approval_of(target))
        if rec is None:
            return None
        decider = approval_log.decider(s, rec)
        submitter = approval_log.submitter(s, rec) if work.kind == DM else None
        link = vendor_channel(s, rec.study_id, rec.org_id) if work.kind == VENDOR else None
        # A decider Slack will not give a zone for: the time in the request channel's.
        here = channel_link(s, "", work.channel) if work.kind == UPDATE else None
        decided_by = messages.printed_name(decider, rec.decided_by)
        channel_tz = link.timezone if link is not None else runtime.default_tz
    if work.kind == REQUEST:
        return {"channel": work.channel, **messages.request_message(rec)} if rec.pending else None
    if rec.pending:
        return None  # decisions are final: a decision's rows never meet a pending request
    if work.kind == UPDATE:
        here_tz = here.timezone if here is not None else None
        tz = (
            user_timezone(runtime, client, decider, channel_tz=here_tz)
            if decider
            else runtime.default_tz
        )
        return {"channel": work.channel, "ts": work.ts, **messages.request_message(rec, tz)}
    if work.kind == DM and submitter is not None:
        tz = user_timezone(runtime, client, submitter)
        notice = messages.submitter_notice(rec, decided_by, tz, direct=True)
        return {DM_USER: submitter.user_id, **notice}
    if work.kind == VENDOR and link is not None and link.channel_id == work.channel:
        notice = messages.submitter_notice(rec, decided_by, channel_tz, direct=False)
        return {"channel": work.channel, **notice}
    return None
