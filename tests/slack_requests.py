"""Build requests exactly as Slack sends them: form-encoded, signed, timestamped."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
_triggers = itertools.count(1)


def new_trigger_id() -> str:
    """Slack gives every command and interaction its own trigger_id, so no two genuine
    requests have the same body (and signature)."""
    return f"{int(time.time())}.{next(_triggers)}.abcd"


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig or "",
    }


def command_body(
    text: str,
    *,
    user_id: str,
    channel_id: str,
    team_id: str = "T1",
    response_url: str = "",
    trigger_id: str | None = None,
) -> str:
    return urlencode(
        {
            "token": "legacy-unused",
            "team_id": team_id,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": "study",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": "/cro",
            "text": text,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or new_trigger_id(),
        }
    )


def interaction_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def post(url: str, body: str, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def post_signed(url: str, body: str, **kw: Any) -> tuple[int, str]:
    return post(url, body, signed_headers(body, **kw))
