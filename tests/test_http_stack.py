"""The HTTP stack itself: health, signature verification, unknown paths."""

from __future__ import annotations

import time
import urllib.request

from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from tests.bot_server import bot_settings, running_bot
from tests.fake_slack import FakeSlack
from tests.slack_requests import command_body, post, signed_headers


def test_healthz_and_signature_checks(db: Database, fake_slack: FakeSlack) -> None:
    settings = bot_settings(db.url, fake_slack.base_url)
    with running_bot(settings, Runtime(db)) as bot:
        with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
            assert b'"database":"ok"' in resp.read()
        body = command_body("help", user_id="U1", channel_id="C1")
        forged = signed_headers(body, secret="not-the-secret")
        assert post(bot.events_url, body, forged)[0] == 401
        stale = signed_headers(body, timestamp=int(time.time()) - 600)
        assert post(bot.events_url, body, stale)[0] == 401
        # Nothing reached a listener: no Slack Web API call was made for the rejected ones.
        assert fake_slack.state.calls == []
