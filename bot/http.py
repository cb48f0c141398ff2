"""HTTP mode: a small ASGI app served by uvicorn.

Bolt's `App.dispatch` is synchronous; calling it on the event loop (as Bolt's own ASGI
adapter does for a sync App) would let one slow listener stall every request. So each
Slack request is dispatched on a worker thread; Bolt verifies the signature there, acks,
and hands lazy work to its listener executor.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

from crobot.handlers.payload import routable
from crobot.storage.db import Database

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BODY = 1 << 20  # Slack payloads are far smaller; refuse anything absurd


class SlackASGI:
    def __init__(
        self,
        app: App,
        db: Database,
        *,
        workers: int = 32,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.db = db
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crobot-http")
        # What to release when the server stops (a worker process's database pool).
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method == "GET":
            await self._health(send)
        elif path == "/slack/events" and method == "POST":
            await self._slack(scope, receive, send)
        elif (
            method == "GET"
            and (flow := self.app.oauth_flow) is not None
            and path
            in (
                flow.install_path,
                flow.redirect_uri_path,
            )
        ):
            await self._oauth(scope, send)
        else:
            await _respond(send, 404, b'{"error":"not_found"}', "application/json")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=False, cancel_futures=True)
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _health(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, self.db.ping)
        except Exception as exc:  # any DB failure means unhealthy, said plainly
            log.warning("health check failed: %s", type(exc).__name__)
            body = json.dumps({"status": "unhealthy", "database": "unreachable"}).encode()
            await _respond(send, 503, body, "application/json")
            return
        await _respond(send, 200, b'{"status":"ok","database":"ok"}', "application/json")

    async def _slack(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                await _respond(send, 413, b"payload too large", "text/plain")
                return
            if not message.get("more_body"):
                break
        req = BoltRequest(
            body=body.decode("utf-8", errors="replace"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=_headers(scope),
        )
        loop = asyncio.get_running_loop()
        resp = await loop.run_in_executor(self.pool, self._dispatch, req)
        raw = resp.body.encode() if isinstance(resp.body, str) else resp.body
        await _respond_headers(send, resp.status, raw, resp.headers)

    async def _oauth(self, scope: Scope, send: Send) -> None:
        """Bolt's OAuth flow (several workspaces): the "Add to Slack" page, which issues a
        state (stored, and set as a cookie), and the redirect back from Slack, which
        consumes that state once and exchanges the code (oauth.v2.access) for the
        installation it stores."""
        flow = self.app.oauth_flow
        assert flow is not None
        req = BoltRequest(
            body="",
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=_headers(scope),
        )
        handle = (
            flow.handle_installation if scope["path"] == flow.install_path else flow.handle_callback
        )
        loop = asyncio.get_running_loop()
        resp = await loop.run_in_executor(self.pool, handle, req)
        raw = resp.body.encode() if isinstance(resp.body, str) else resp.body
        await _respond_headers(send, resp.status, raw, resp.headers)

    def _dispatch(self, req: BoltRequest) -> BoltResponse:
        try:
            return self.app.dispatch(req)
        except Exception:
            # Bolt itself can fail on a malformed payload (e.g. block_actions with an empty
            # `actions` list breaks its error-handler argument building). The request was
            # signed, so answer like any handled failure instead of a 500 Slack would retry.
            if not routable(req.body):
                # It names no button or form: there is nobody to answer, nothing was done.
                log.info("ignored a %s payload that names no listener", req.body.get("type"))
                return BoltResponse(status=200, body="")
            log.exception("Bolt could not dispatch a request")
            return BoltResponse(
                status=200, body=SORRY_JSON, headers={"content-type": ["application/json"]}
            )


SORRY_JSON = json.dumps(
    {
        "response_type": "ephemeral",
        "text": "Sorry, something went wrong on our side. Nothing was changed; please try again.",
    }
)


def _headers(scope: Scope) -> dict[str, str | Sequence[str]]:
    headers: dict[str, str | Sequence[str]] = {}
    for k, v in scope.get("headers", []):
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        headers[name] = [*headers.get(name, []), value]
    return headers


async def _respond(send: Send, status: int, body: bytes, ctype: str) -> None:
    await _respond_headers(send, status, body, {"content-type": [ctype]})


async def _respond_headers(send: Send, status: int, body: bytes, headers: dict[str, Any]) -> None:
    raw_headers = []
    for k, vs in headers.items():
        if k.lower() == "content-length":
            continue
        for v in vs if isinstance(vs, list | tuple | set) else [vs]:
            raw_headers.append((k.encode("latin-1"), str(v).encode("latin-1")))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
