"""The message a forecast outbox row sends: an enrolment milestone marked at risk by the
forecast, or recovered (services/enrolment.py writes the rows; digests/delivery.py sends
them, target `forecast:<milestone id>`). Rendered from the audit event of the change, so
a retried row says what was decided then, not what the forecast says now."""

from __future__ import annotations

from typing import Any

from crobot.handlers import blockkit as bk
from crobot.services import enrolment
from crobot.services.runtime import Runtime

METADATA_EVENT = "crobot_forecast"


def payload(runtime: Runtime, target: str, key: str) -> dict[str, Any] | None:
    """chat.postMessage arguments, or None when the milestone or its event is gone."""
    with runtime.db.read() as s:
        news = enrolment.notice(s, target, key)
    if news is None:
        return None
    if news.at_risk:
        text = bk.fmt(
            ":warning: {} · enrolment milestone *{}* is now *at risk* (enrolment forecast): {}",
            news.study,
            news.milestone,
            news.reason,
        )
    else:
        text = bk.fmt(
            ":white_check_mark: {} · enrolment milestone *{}* is back on track "
            "(enrolment forecast): {}",
            news.study,
            news.milestone,
            news.reason,
        )
    hint = bk.Mrkdwn("`/cro forecast` shows the whole forecast.")
    return {"channel": news.channel, **bk.message(text, [bk.section(text), bk.context(hint)])}
