"""The message an approval outbox row sends, rendered when it is delivered.

digests/delivery.py calls `payload` for rows with an `approval:<id>` target; rendering at
delivery time means a retried or resumed row always shows the approval's current state.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from crobot.handlers.approvals import messages
from crobot.handlers.user_tz import user_timezone
from crobot.services import approval_log
from crobot.services.approval_log import NOTICE, REQUEST, Work
from crobot.services.runtime import Runtime


def payload(runtime: Runtime, client: WebClient, target: str, key: str) -> dict[str, Any] | None:
    """chat.postMessage arguments (with `ts`: chat.update), or None when nothing is due.

    Nothing is due for a request that was decided before it could be posted, and for a
    notice whose request was never posted (there is no thread to reply in).
    """
    work = Work.parse(key)
    with runtime.db.read() as s:
        rec = approval_log.record(s, approval_log.approval_of(target))
        decider = approval_log.decider(s, rec) if rec is not None else None
    if rec is None:
        return None
    if work.kind == REQUEST:
        if not rec.pending:
            return None
        return {"channel": work.channel, **messages.request_message(rec)}
    tz = user_timezone(runtime, client, decider) if decider else runtime.default_tz
    if work.kind == NOTICE:
        if not rec.message_ts:
            return None
        notice = messages.notice_message(rec, tz)
        return {"channel": work.channel, "thread_ts": rec.message_ts, **notice}
    return {"channel": work.channel, "ts": work.ts, **messages.request_message(rec, tz)}
