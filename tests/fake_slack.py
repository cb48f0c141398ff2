"""A fake Slack Web API on 127.0.0.1: real HTTP, records every call, injects faults.

Point slack_sdk at it with `WebClient(base_url=server.base_url)` (or
CROBOT_SLACK_API_URL). Messages posted are kept per channel so `conversations.history`
can answer with them (metadata included), which exactly-once delivery relies on.

Several workspaces: `add_workspace` registers a workspace; `grant_code` hands out an
OAuth code that `oauth.v2.access` exchanges for a bot token of that workspace (rotating:
with a refresh token and `expires_in`), and `oauth.v2.access` with
`grant_type=refresh_token` (what slack_sdk's TokenRotator calls) issues the next one. A
known token answers `auth.test` with its own workspace; a revoked (`uninstall`) or
expired one is refused (`token_revoked`, `token_expired`) by every method. Any other
token (the single-workspace tests' `xoxb-test-token`) is workspace T1, as before.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlparse


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int | None = None  # HTTP status answered; 0 for a dropped connection


@dataclass
class Fault:
    method: str  # "*" for any
    status: int = 500
    retry_after: int | None = None
    error: str | None = None  # HTTP 200 with {"ok": false, "error": ...}
    delay: float = 0.0  # sleep before answering (client read timeouts)
    reset: bool = False  # close the connection without an answer
    after_effect: bool = False  # perform the call, then fail the answer (unknown outcome)
    count: int = 1
    skip: int = 0  # let this many matching calls through first


@dataclass
class Hold:
    """Calls to `method` (that `match`, if given) wait until released, as if Slack were
    stuck on them: a process can be caught mid-post. Before the effect (default) nothing
    is performed while held; with `after_effect` the call is performed (a message is in
    the history) and only the answer is held. `release(perform=False)` drops the held
    connections unanswered, and for a call held before its effect never performs it (a
    request whose sender died)."""

    method: str
    match: Callable[[Call], bool] | None = None
    after_effect: bool = False
    held: list[Call] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _perform: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def matches(self, call: Call) -> bool:
        if self._released.is_set() or call.method != self.method:
            return False
        return self.match is None or self.match(call)

    def wait(self, call: Call) -> bool:
        """Block the caller's request until released; True if it is then to be performed."""
        with self._lock:
            self.held.append(call)
        self._released.wait()
        return self._perform

    def release(self, *, perform: bool = True) -> None:
        self._perform = perform
        self._released.set()

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.held) >= count:
                    return list(self.held)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} held call(s) to {self.method}, got {self.held}")


@dataclass
class FakeSlackState:
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    views: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ts_counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Random faults: (method prefix, rate); each matching call fails with that probability
    # as a 429 (Retry-After 1), a 500, or a connection reset before Slack acted on it.
    chaos: list[tuple[str, float]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    injected: Counter[str] = field(default_factory=Counter)
    pace_seconds: float = 0.0  # per-call service time, to model a throttled Slack
    holds: list[Hold] = field(default_factory=list)
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)  # team id -> info
    tokens: dict[str, Token] = field(default_factory=dict)  # access token -> its grant
    refresh_tokens: dict[str, Token] = field(default_factory=dict)
    codes: dict[str, tuple[str, str, int | None]] = field(default_factory=dict)
    token_counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))


@dataclass
class Token:
    team_id: str
    expires_at: float | None = None  # epoch seconds; None: never (no rotation)
    revoked: bool = False


class FakeSlack:
    def __init__(self) -> None:
        self.state = FakeSlackState()
        handler = _make_handler(self.state)
        self.methods: frozenset[str] = frozenset(_registry(handler))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    def start(self) -> FakeSlack:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- test helpers -------------------------------------------------------------
    def reset(self) -> None:
        with self.state.lock:
            self.state.calls.clear()
            self.state.faults.clear()
            self.state.messages.clear()
            self.state.uploads.clear()
            self.state.views.clear()
            self.state.pace_seconds = 0.0
            self.state.chaos.clear()
            self.state.injected.clear()
            self.state.workspaces.clear()
            self.state.tokens.clear()
            self.state.refresh_tokens.clear()
            self.state.codes.clear()
            holds, self.state.holds = self.state.holds, []
        for hold in holds:  # a test's stuck requests never leak into the next one
            hold.release(perform=False)

    def add_user(
        self,
        user_id: str,
        tz: str = "UTC",
        name: str | None = None,
        team_id: str = "T1",
        **flags: bool,
    ) -> None:
        """A user; `flags` such as is_restricted=True (a guest) go into users.info."""
        self.state.users[user_id] = {
            "id": user_id,
            "team_id": team_id,
            "name": name or user_id.lower(),
            "real_name": name or user_id,
            "tz": tz,
            "tz_offset": 0,
            **flags,
        }

    # --- several workspaces -----------------------------------------------------------
    def add_workspace(
        self, team_id: str, name: str | None = None, enterprise_id: str | None = None
    ) -> None:
        with self.state.lock:
            self.state.workspaces[team_id] = {
                "id": team_id,
                "name": name or team_id,
                "enterprise_id": enterprise_id,
            }

    def grant_code(self, team_id: str, installer: str, expires_in: int | None = None) -> str:
        """An OAuth code for installing crobot into `team_id` (by user `installer`);
        `expires_in` set: the bot token rotates (expires, with a refresh token)."""
        with self.state.lock:
            code = f"code-{team_id}-{next(self.state.token_counter)}"
            self.state.codes[code] = (team_id, installer, expires_in)
            return code

    def uninstall(self, team_id: str) -> None:
        """Slack revokes every token of the workspace (before sending app_uninstalled)."""
        with self.state.lock:
            for token in self.state.tokens.values():
                if token.team_id == team_id:
                    token.revoked = True

    def tokens_of(self, team_id: str) -> list[str]:
        with self.state.lock:
            return [t for t, g in self.state.tokens.items() if g.team_id == team_id]

    def team_of(self, call: Call) -> str | None:
        """The workspace whose token made `call` (None: no or an unknown token)."""
        token = _bearer(call.headers)
        with self.state.lock:
            grant = self.state.tokens.get(token or "")
            return grant.team_id if grant is not None else None

    def chaos(self, prefix: str, rate: float, seed: int = 0) -> None:
        with self.state.lock:
            self.state.chaos.append((prefix, rate))
            self.state.rng.seed(seed)

    def hold(
        self,
        method: str,
        match: Callable[[Call], bool] | None = None,
        *,
        after_effect: bool = False,
    ) -> Hold:
        """Hold matching calls until `Hold.release` (see `Hold`)."""
        hold = Hold(method, match, after_effect)
        with self.state.lock:
            self.state.holds.append(hold)
        return hold

    def fail(self, method: str, **kwargs: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(method=method, **kwargs))

    def calls_to(self, method: str) -> list[Call]:
        with self.state.lock:
            return [c for c in self.state.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls_to(method)
            if len(calls) >= count:
                return calls
            time.sleep(0.01)
        raise AssertionError(
            f"expected {count} call(s) to {method}, got {len(self.calls_to(method))}"
        )

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            if channel is not None:
                return list(self.state.messages.get(channel, []))
            return [m for msgs in self.state.messages.values() for m in msgs]


def _registry(handler: type[BaseHTTPRequestHandler]) -> dict[str, str]:
    """Web API method → the handler's `_m_` function: `_m_chat_postMessage` answers
    `chat.postMessage`, `_m_oauth_v2_access` answers `oauth.v2.access` (a method name has
    dots and no underscore). Anything else is answered `unknown_method`, as Slack does."""
    return {
        name.removeprefix("_m_").replace("_", "."): name
        for name in dir(handler)
        if name.startswith("_m_")
    }


def _make_handler(state: FakeSlackState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def do_GET(self) -> None:  # noqa: N802
            self._handle()

        def do_POST(self) -> None:  # noqa: N802
            self._handle()

        def _params(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            params: dict[str, Any] = {
                k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()
            }
            if "application/json" in ctype and raw:
                params.update(json.loads(raw))
            elif "multipart/form-data" in ctype or self.path.startswith("/upload/"):
                params["_bytes"] = len(raw)
            elif raw:
                params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            for key in ("blocks", "metadata", "view", "files", "attachments"):
                if isinstance(params.get(key), str):
                    try:
                        params[key] = json.loads(params[key])
                    except json.JSONDecodeError:
                        pass
            return params

        def _handle(self) -> None:
            path = urlparse(self.path).path
            method = path.rsplit("/", 1)[-1] if path.startswith("/api/") else path
            params = self._params()
            refused = self._token_refusal(method)
            if refused is not None:
                self._call = Call(method, params, dict(self.headers), time.time())
                with state.lock:
                    state.calls.append(self._call)
                self._send(200, {"ok": False, "error": refused})
                return
            fault = self._take_fault(method)
            if state.pace_seconds:
                time.sleep(state.pace_seconds)
            if fault and fault.delay:
                time.sleep(fault.delay)
            self._call = Call(method, params, dict(self.headers), time.time())
            hold = self._take_hold(self._call)
            if hold is not None and not hold.after_effect and not hold.wait(self._call):
                self._drop()
                return
            with state.lock:
                state.calls.append(self._call)
            if fault and fault.reset:
                if fault.after_effect:
                    self._dispatch(method, params)
                self._call.status = 0
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault and not fault.after_effect and (fault.status != 200 or fault.error):
                self._fail(fault)
                return
            body = self._dispatch(method, params)
            if fault and fault.after_effect:
                self._fail(fault)
                return
            if hold is not None and hold.after_effect and not hold.wait(self._call):
                self._drop()
                return
            self._send(200, body)

        def _token_refusal(self, method: str) -> str | None:
            token = _bearer(dict(self.headers))
            with state.lock:
                grant = state.tokens.get(token or "")
            if grant is None or method.startswith("/"):
                return None
            if grant.revoked:
                return "token_revoked"
            if grant.expires_at is not None and grant.expires_at < time.time():
                return "token_expired"
            return None

        def _grant(self) -> Token | None:
            with state.lock:
                return state.tokens.get(_bearer(dict(self.headers)) or "")

        def _issue(self, team_id: str, expires_in: int | None) -> dict[str, Any]:
            """A new bot token (and refresh token when rotating) for `team_id`."""
            n = next(state.token_counter)
            token = f"xoxb-{team_id}-{n}" if expires_in is None else f"xoxe.xoxb-{team_id}-{n}"
            expires_at = None if expires_in is None else time.time() + expires_in
            grant = Token(team_id, expires_at)
            state.tokens[token] = grant
            out: dict[str, Any] = {"access_token": token, "token_type": "bot"}
            if expires_in is not None:
                refresh = f"xoxe-1-{team_id}-{n}"
                state.refresh_tokens[refresh] = grant
                out.update(refresh_token=refresh, expires_in=expires_in)
            return out

        def _take_hold(self, call: Call) -> Hold | None:
            with state.lock:
                return next((h for h in state.holds if h.matches(call)), None)

        def _drop(self) -> None:
            """Close the connection without an answer (the caller is gone)."""
            self._call.status = 0
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass

        def _take_fault(self, method: str) -> Fault | None:
            with state.lock:
                for f in state.faults:
                    if f.method in (method, "*") and f.skip > 0:
                        f.skip -= 1
                        continue
                    if f.method in (method, "*") and f.count > 0:
                        f.count -= 1
                        if f.count == 0:
                            state.faults.remove(f)
                        return f
                for prefix, rate in state.chaos:
                    if method.startswith(prefix) and state.rng.random() < rate:
                        kind = state.rng.choice(("429", "500", "reset"))
                        state.injected[kind] += 1
                        if kind == "429":
                            return Fault(method, status=429, retry_after=1)
                        if kind == "500":
                            return Fault(method, status=500)
                        return Fault(method, reset=True)
            return None

        def _fail(self, fault: Fault) -> None:
            if fault.error:
                self._send(200, {"ok": False, "error": fault.error})
                return
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            err = "ratelimited" if fault.status == 429 else "internal_error"
            self._send(fault.status, {"ok": False, "error": err}, headers)

        def _send(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            if getattr(self, "_call", None) is not None:
                self._call.status = status
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the caller is gone (killed mid-call)

        def _dispatch(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
            if method.startswith("/upload/"):
                return {"ok": True}
            if method.startswith("/"):
                return {"ok": True}  # a response_url (or other webhook) took the message
            name = METHODS.get(method)
            if name is None:
                return {"ok": False, "error": "unknown_method"}  # as Slack answers
            result: dict[str, Any] = getattr(self, name)(p)
            return result

        def _new_ts(self) -> str:
            with state.lock:
                return f"{1700000000 + next(state.ts_counter)}.000100"

        def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
            grant = self._grant()
            team = grant.team_id if grant is not None else "T1"
            info = state.workspaces.get(team) or {}
            return {
                "ok": True,
                "url": "https://fake.slack.com/",
                "team": info.get("name", "Fake"),
                "user": "crobot",
                "team_id": team,
                "user_id": "UBOT" if grant is None else f"UBOT{team}",
                "bot_id": "BBOT" if grant is None else f"BBOT{team}",
                **({"enterprise_id": info["enterprise_id"]} if info.get("enterprise_id") else {}),
            }

        def _m_oauth_v2_access(self, p: dict[str, Any]) -> dict[str, Any]:
            if p.get("grant_type") == "refresh_token":
                with state.lock:
                    grant = state.refresh_tokens.pop(str(p.get("refresh_token")), None)
                    if grant is None or grant.revoked:
                        return {"ok": False, "error": "invalid_refresh_token"}
                    issued = self._issue(grant.team_id, 43_200)  # Slack's 12 hours
                info = state.workspaces.get(grant.team_id) or {}
                return {
                    "ok": True,
                    **issued,
                    "team": {"id": grant.team_id, "name": info.get("name")},
                }
            with state.lock:
                found = state.codes.pop(str(p.get("code")), None)  # a code works once
                if found is None:
                    return {"ok": False, "error": "invalid_code"}
                team_id, installer, expires_in = found
                issued = self._issue(team_id, expires_in)
            info = state.workspaces.get(team_id) or {"id": team_id, "name": team_id}
            enterprise = info.get("enterprise_id")
            return {
                "ok": True,
                "app_id": "A1",
                "authed_user": {"id": installer},
                "scope": "commands,chat:write",
                "bot_user_id": f"UBOT{team_id}",
                "team": {"id": team_id, "name": info.get("name")},
                "enterprise": {"id": enterprise, "name": enterprise} if enterprise else None,
                "is_enterprise_install": False,
                **issued,
            }

        def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            channel = str(p.get("channel", ""))
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            refused = _refusal(p)
            if refused:
                return {"ok": False, "error": refused}
            ts = self._new_ts()
            msg = {
                "ts": ts,
                "channel": channel,
                "text": p.get("text"),
                "blocks": p.get("blocks"),
                "metadata": p.get("metadata"),
                "thread_ts": p.get("thread_ts"),
                "bot_id": "BBOT",
                "type": "message",
                "posted_by_team": grant.team_id if (grant := self._grant()) else None,
            }
            with state.lock:
                state.messages.setdefault(channel, []).append(msg)
            return {"ok": True, "channel": channel, "ts": ts, "message": msg}

        def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            return {"ok": True, "message_ts": self._new_ts()}

        def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
            channel, ts = str(p.get("channel")), str(p.get("ts"))
            refused = _refusal(p)
            if refused:
                return {"ok": False, "error": refused}
            with state.lock:
                for msg in state.messages.get(channel, []):
                    if msg["ts"] == ts:
                        msg.update(text=p.get("text"), blocks=p.get("blocks"))
                        return {"ok": True, "channel": channel, "ts": ts}
            return {"ok": False, "error": "message_not_found"}

        def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
            """Newest first, as Slack answers: at most `limit` a page, the next page through
            `response_metadata.next_cursor`. `oldest` alone is not applied: the fake's ts
            values are a counter, while tests run crobot on simulated clocks; with `latest`
            (a ts the fake gave out) both bounds apply, `inclusive` as in Slack."""
            channel = str(p.get("channel"))
            limit = min(int(p.get("limit", 100)), 999)
            start = int(p.get("cursor") or 0)
            with state.lock:
                msgs = [
                    m for m in reversed(state.messages.get(channel, [])) if not m.get("thread_ts")
                ]
            if p.get("latest"):  # one message by its ts: latest=oldest=ts, inclusive
                inclusive = str(p.get("inclusive")).lower() in ("true", "1")
                latest, oldest = float(p["latest"]), float(p.get("oldest") or 0)
                msgs = [
                    m
                    for m in msgs
                    if (oldest <= float(m["ts"]) <= latest)
                    if inclusive or oldest < float(m["ts"]) < latest
                ]
            page, rest = msgs[start : start + limit], msgs[start + limit :]
            meta = {"next_cursor": str(start + limit) if rest else ""}
            return {"ok": True, "messages": page, "has_more": bool(rest), "response_metadata": meta}

        def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
            """A thread: its parent, then the replies, oldest first (as Slack answers)."""
            channel, ts = str(p.get("channel")), str(p.get("ts"))
            limit = int(p.get("limit", 100))
            with state.lock:
                msgs = [
                    m
                    for m in state.messages.get(channel, [])
                    if m["ts"] == ts or m.get("thread_ts") == ts
                ][:limit]
            if not msgs:
                return {"ok": False, "error": "thread_not_found"}
            return {"ok": True, "messages": msgs, "has_more": False}

        def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
            return {
                "ok": True,
                "channel": {"id": p.get("channel"), "name": "fake", "is_ext_shared": False},
            }

        def _m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
            users = str(p.get("users", ""))
            return {"ok": True, "channel": {"id": "D" + users.split(",")[0].lstrip("UW")}}

        def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
            user = state.users.get(str(p.get("user")))
            if user is None:
                return {"ok": False, "error": "user_not_found"}
            grant = self._grant()
            if grant is not None and user.get("team_id") != grant.team_id:
                # Another workspace's user (Slack Connect) is a stranger: no zone, no flags.
                seen = {k: user[k] for k in ("id", "team_id", "name") if k in user}
                return {"ok": True, "user": {**seen, "is_stranger": True}}
            return {"ok": True, "user": user}

        def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
            with state.lock:
                state.views.append(p)
            return {"ok": True, "view": {"id": f"V{len(state.views)}", **(p.get("view") or {})}}

        def _m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
            with state.lock:
                state.views.append(p)
            return {"ok": True, "view": {"id": f"V{len(state.views)}", **(p.get("view") or {})}}

        def _m_views_update(self, p: dict[str, Any]) -> dict[str, Any]:
            return self._m_views_publish(p)

        def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            host, port = cast(tuple[str, int], self.server.server_address)[:2]
            file_id = f"F{len(state.uploads) + 1:04d}"
            with state.lock:
                state.uploads[file_id] = {"filename": p.get("filename"), "length": p.get("length")}
            return {
                "ok": True,
                "upload_url": f"http://{host!s}:{port}/upload/{file_id}",
                "file_id": file_id,
            }

        def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
            files = p.get("files") or []
            with state.lock:
                for f in files:
                    if f.get("id") in state.uploads:
                        state.uploads[f["id"]].update(
                            channel=p.get("channel_id"), thread_ts=p.get("thread_ts")
                        )
            return {
                "ok": True,
                "files": [{"id": f.get("id"), "title": f.get("title")} for f in files],
            }

    METHODS = _registry(Handler)
    return Handler


@contextmanager
def running_fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


def _bearer(headers: dict[str, str]) -> str | None:
    for key, value in headers.items():
        if key.lower() == "authorization" and value.startswith("Bearer "):
            return value.removeprefix("Bearer ")
    return None


def _refusal(p: dict[str, Any]) -> str | None:
    """What Slack answers a message over its limits (it posts nothing): more than 50
    blocks, a section or context text over 3,000 characters or a header over 150 is
    `invalid_blocks`; a `text` over 40,000 characters is `msg_too_long`."""
    if len(str(p.get("text") or "")) > 40_000:
        return "msg_too_long"
    blocks = p.get("blocks") or []
    if not isinstance(blocks, list):
        return "invalid_blocks"
    if len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type")
        texts = [block.get("text") or {}]
        if kind == "context":
            texts = list(block.get("elements") or [])
        limit = 150 if kind == "header" else 3000
        if any(len(str(t.get("text", ""))) > limit for t in texts if isinstance(t, dict)):
            return "invalid_blocks"
    return None
