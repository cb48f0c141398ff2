"""The database goes away: commands say "temporarily unavailable", /healthz says 503,
and both recover when it returns. Nothing is half-written."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from crobot.services.runtime import Runtime
from crobot.storage.db import Database
from crobot.storage.migrate import upgrade
from tests.bot_server import bot_settings, free_port, running_bot
from tests.conftest import APEX_PM, C_APEX, World, build_world, empty_database
from tests.fake_slack import FakeSlack
from tests.slash_helpers import NOW, SlashClient, snapshot
from tests.tcp_proxy import TcpProxy


def health(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _assert_unavailable(client: SlashClient) -> None:
    for text in ("status ONC-301", 'milestone add ONC-301 "X" planned:fri', "help"):
        a = client.send(text, APEX_PM, C_APEX)
        assert a.status == 200, text
        if text == "help":
            assert "/cro commands" in a.text  # help needs no database
            continue
        assert "temporarily unavailable, try again" in a.text, a.text
        assert not a.in_channel


def test_closed_port_database(fake_slack: FakeSlack) -> None:
    dead = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/crobot")
    with running_bot(bot_settings(dead.url, fake_slack.base_url), Runtime(dead)) as bot:
        assert health(bot.url) == 503
        _assert_unavailable(SlashClient(bot, fake_slack))
    dead.dispose()


def test_sqlite_database_appears_later(tmp_path: Path, fake_slack: FakeSlack) -> None:
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder}/crobot.db"
    db = Database(url)
    with running_bot(bot_settings(url, fake_slack.base_url), Runtime(db, now=lambda: NOW)) as bot:
        client = SlashClient(bot, fake_slack)
        assert health(bot.url) == 503
        _assert_unavailable(client)
        folder.mkdir()
        upgrade(url)
        empty_database(db)
        build_world(db)
        assert health(bot.url) == 200
        a = client.send('milestone add ONC-301 "Back" planned:fri', APEX_PM, C_APEX)
        assert a.in_channel and "Back" in a.text
    db.dispose()


def test_postgres_goes_down_and_returns(world: World, fake_slack: FakeSlack) -> None:
    if world.db.is_sqlite:
        pytest.skip("needs a database server to cut off")
    real = make_url(world.db.url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432)).start()
    proxied = Database(real.set(port=proxy.port).render_as_string(hide_password=False))
    runtime = Runtime(proxied, now=lambda: NOW)
    try:
        with running_bot(bot_settings(proxied.url, fake_slack.base_url), runtime) as bot:
            client = SlashClient(bot, fake_slack)
            assert health(bot.url) == 200
            assert "ONC-301" in client.send("status", APEX_PM, C_APEX).text
            before = snapshot(world.db)
            proxy.stop()
            assert health(bot.url) == 503
            _assert_unavailable(client)
            assert snapshot(world.db) == before
            proxy.start()
            assert health(bot.url) == 200
            a = client.send('milestone add "Recovered" planned:fri', APEX_PM, C_APEX)
            assert a.in_channel and "Recovered" in a.text, json.dumps(a.payload)
    finally:
        proxy.stop()
        proxied.dispose()
