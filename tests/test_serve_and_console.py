"""`crobot serve` (real process, HTTP), Socket Mode wiring, token errors, `crobot console`."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from benchmarks.common import workers_of
from crobot.bot.cli import main
from crobot.bot.runners import build, socket_handler, tcp_listener
from crobot.bot.settings import Settings
from tests.bot_server import free_port
from tests.conftest import APEX_PM, C_APEX, TEST_AUDIT_KEY, World
from tests.dbstate import snapshot
from tests.fake_slack import FakeSlack
from tests.slack_requests import SIGNING_SECRET, command_body, post_signed

SLACK_ENV = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in SLACK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CROBOT_DATABASE_URL", f"sqlite:///{tmp_path}/unused.db")
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["serve"], "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "abc"}, ["serve"], "SLACK_BOT_TOKEN is malformed"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["serve"], "SLACK_SIGNING_SECRET is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["serve", "--socket"], "SLACK_APP_TOKEN is not set"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"},
            ["serve", "--socket"],
            "SLACK_APP_TOKEN is malformed",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"},
            ["serve", "--port", "0"],
            "--port",
        ),
        ({"CROBOT_DEFAULT_TZ": "Mars/Base"}, ["serve"], "CROBOT_DEFAULT_TZ"),
        # PostgreSQL has no default audit key: refuse to start rather than fail each write.
        (
            {
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_SIGNING_SECRET": "s",
                "CROBOT_DATABASE_URL": "postgresql://crobot@127.0.0.1:1/crobot",
                "CROBOT_AUDIT_KEY": "",
            },
            ["serve"],
            "audit trail: no audit key configured",
        ),
    ],
)
def test_serve_config_errors_are_one_line(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    for k, v in env.items():
        clean_env.setenv(k, v)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("crobot serve did not become healthy")


CLI = [sys.executable, "-c", "import sys; from crobot.bot.cli import main; sys.exit(main())"]


def _bare_env() -> dict[str, str]:
    """This process's environment without any Slack or crobot setting."""
    return {
        k: v for k, v in os.environ.items() if k not in SLACK_ENV and not k.startswith("CROBOT_")
    }


def _serve_env(world: World, fake_slack: FakeSlack) -> dict[str, str]:
    return {
        **_bare_env(),
        "CROBOT_DATABASE_URL": world.db.url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "CROBOT_SLACK_API_URL": fake_slack.base_url,
        "CROBOT_SCHEDULER": "false",
        "CROBOT_LOG_LEVEL": "WARNING",
        "CROBOT_AUDIT_KEY": TEST_AUDIT_KEY,
    }


def _start(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_crobot_serve_real_process(world: World, fake_slack: FakeSlack, tmp_path: Path) -> None:
    port = free_port()
    env = _serve_env(world, fake_slack)
    proc = _start([*CLI, "serve", "--port", str(port)], env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        body = command_body("milestone list ONC-301", user_id=APEX_PM, channel_id=C_APEX)
        status, raw = post_signed(url + "/slack/events", body)
        assert status == 200 and "milestone(s)" in json.loads(raw)["text"]
        forged = post_signed(url + "/slack/events", body, secret="nope")
        assert forged[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()  # a graceful stop, not killed by the signal
    assert b"Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_crobot_serve_runs_worker_processes(
    world: World, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    port = free_port()
    env = {**_bare_env(), "CROBOT_LOG_LEVEL": "WARNING"}
    # Settings given in code reach the workers: the database, tokens and key are not in
    # the environment here, only in the Settings the supervisor was started with.
    settings = {
        "CROBOT_DATABASE_URL": world.db.url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "CROBOT_SLACK_API_URL": fake_slack.base_url,
        "CROBOT_SCHEDULER": False,
        "CROBOT_AUDIT_KEY": TEST_AUDIT_KEY,
    }
    code = (
        "import json, sys; from crobot.bot.runners import run_http; "
        "from crobot.bot.settings import Settings; "
        f"run_http(Settings(**json.loads(sys.argv[1])), port={port}, workers=2)"
    )
    proc = _start([sys.executable, "-c", code, json.dumps(settings)], env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout=60)
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        # Each worker answers on its own: the other one is stopped meanwhile (briefly: the
        # supervisor replaces a worker that stops answering its health pings for 5 s).
        for paused in workers:
            body = command_body("milestone list ONC-301", user_id=APEX_PM, channel_id=C_APEX)
            os.kill(paused, signal.SIGSTOP)
            try:
                status, raw = post_signed(url + "/slack/events", body)
            finally:
                os.kill(paused, signal.SIGCONT)
            assert status == 200 and "milestone(s)" in json.loads(raw)["text"]
        assert post_signed(url + "/slack/events", body, secret="nope")[0] == 401
        assert workers_of(proc.pid) == workers  # none was replaced
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def test_the_workers_listening_socket_is_tcp_so_responses_are_not_held_by_nagle() -> None:
    """uvicorn binds the workers' socket with protocol 0, and asyncio then leaves Nagle's
    algorithm on for what they accept: ~40 ms on every kept-alive request (uvicorn #3149)."""
    config = uvicorn.Config("x:y", host="127.0.0.1", port=free_port())
    bound = config.bind_socket()
    assert bound.proto == 0  # uvicorn's; if this fails, uvicorn fixed it and this can go
    listener = tcp_listener(bound)
    try:
        assert listener.proto == socket.IPPROTO_TCP
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP  # what asyncio looks at
    finally:
        listener.close()


def test_workers_stop_when_their_supervisor_is_killed(
    world: World, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    port = free_port()
    env = _serve_env(world, fake_slack)
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=60)
        workers = workers_of(proc.pid)
        assert len(workers) == 2
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    for pid in alive:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert alive == []


class _RecordingSocketClient:
    def __init__(self) -> None:
        self.responses: list[SocketModeResponse] = []
        import logging

        self.logger = logging.getLogger("test.socket")

    def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.responses.append(response)


def test_socket_mode_handler_runs_the_same_router(world: World, fake_slack: FakeSlack) -> None:
    settings = Settings(
        CROBOT_DATABASE_URL=world.db.url,
        SLACK_BOT_TOKEN=SecretStr("xoxb-test-token"),
        SLACK_APP_TOKEN=SecretStr("xapp-1-test"),
        CROBOT_SLACK_API_URL=fake_slack.base_url,
    )
    runtime, app = build(settings)
    handler = socket_handler(settings, app)
    assert handler.app_token == "xapp-1-test"
    client = _RecordingSocketClient()
    root = fake_slack.base_url.removesuffix("api/")

    def command(text: str, envelope: str) -> dict[str, Any]:
        payload = {
            "token": "x",
            "team_id": "T1",
            "user_id": APEX_PM,
            "channel_id": C_APEX,
            "command": "/cro",
            "text": text,
            "trigger_id": "t" + envelope,
            "response_url": f"{root}socket/{envelope}",
        }
        req = SocketModeRequest(type="slash_commands", envelope_id=envelope, payload=payload)
        handler.handle(client, req)  # type: ignore[arg-type]
        return client.responses[-1].to_dict()

    try:
        read = command("milestone list", "e1")
        assert read["envelope_id"] == "e1" and "milestone(s)" in read["payload"]["text"]
        write = command('milestone add "Socket kick-off" planned:fri', "e2")
        assert "payload" not in write or not write["payload"]
        answer = fake_slack.wait_for("/socket/e2")[0].params
        assert answer["response_type"] == "in_channel" and "Socket kick-off" in answer["text"]
    finally:
        handler.close()
        runtime.db.dispose()


def test_console_one_shot_and_repl(
    world: World, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("CROBOT_DATABASE_URL", world.db.url)
    argv = ["console", "--user", APEX_PM, "--channel", C_APEX, "-c"]
    assert main([*argv, '/cro milestone add "Console kick-off" planned:+1w']) == 0
    out = capsys.readouterr().out
    assert "Console kick-off" in out and "(visible to the channel)" in out
    assert main([*argv, "/cro status"]) == 0
    out = capsys.readouterr().out
    assert "ONC-301" in out and "=====" in out and '"type"' not in out
    clean_env.setattr(
        sys,
        "stdin",
        io.StringIO(":user UAPEX\nkpi report enrollment 4\n:user ULAB\nmilestone list\nquit\n"),
    )
    assert main(["console", "--channel", C_APEX]) == 0
    out = capsys.readouterr().out
    assert "approval request #1" in out and "awaits the sponsor's approval" in out
    assert "Console kick-off" not in out.split("as ULAB")[1]  # Lab staff in Apex's channel


def test_console_answers_plain_language_as_a_dm_would_and_writes_nothing(
    world: World, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("CROBOT_DATABASE_URL", world.db.url)
    argv = ["console", "--user", APEX_PM, "--channel", C_APEX, "-c"]
    assert main([*argv, '/cro milestone add "Late kick-off" planned:+1w']) == 0
    capsys.readouterr()
    before = snapshot(world.db)
    assert main([*argv, "what milestones are coming up on ONC-301?"]) == 0
    out = capsys.readouterr().out
    assert "Late kick-off" in out and "I read this as `/cro milestone list ONC-301 --open`" in out
    assert main([*argv, "add an action for Priya due friday"]) == 0
    assert "/cro action add" not in capsys.readouterr().out  # read as a list at most
    assert snapshot(world.db) == before


def test_console_asks_which_workspace_when_a_user_id_is_in_two(
    world: World, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("CROBOT_DATABASE_URL", world.db.url)
    world.add_person("T0OTHER", APEX_PM, "CentraLab", "vendor_member")
    argv = ["console", "--user", APEX_PM, "--channel", C_APEX, "-c", "/cro status"]
    assert main(argv) == 2
    assert "several workspaces (T1, T0OTHER): give --team" in capsys.readouterr().err
    assert main([*argv[:3], "--team", "T1", *argv[3:]]) == 0
    assert "ONC-301" in capsys.readouterr().out


def test_console_without_schema_says_so(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["console", "-c", "help"]) == 2
    assert "crobot db upgrade" in capsys.readouterr().err


def test_console_shows_what_people_typed_as_typed(
    world: World, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Slack needs escapes and look-alikes; a terminal gets the text back as it was typed."""
    clean_env.setenv("CROBOT_DATABASE_URL", world.db.url)
    name = "Kits <!here> & *b* _i_ ~s~ `code`"
    argv = ["console", "--user", APEX_PM, "--channel", C_APEX, "-c"]
    assert main([*argv, f'/cro milestone add "{name}" planned:+1w']) == 0
    out = capsys.readouterr().out
    assert name in out and "&lt;" not in out and "\u2217" not in out
    assert main([*argv, "/cro milestone list"]) == 0
    out = capsys.readouterr().out
    assert f"#1 {name} · planned" in out  # crobot's own bold is gone, the typed one stays
