"""A fake SMS Gateway for Android API (POST /messages, GET /messages/<id>) on loopback, for the real client.

It can go offline (the port refuses connections) and come back on the same port, and it makes
the signed webhooks a phone would send.
"""
from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gateway.channels.android import sign


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many sends open connections at once; the default backlog of 5 resets them
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True  # come back on the same port after going offline
    fake: FakeAndroidPhone

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that gave up."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")


class FakeAndroidPhone:
    """One phone's API: keeps one message per id (409 for a repeated id), records what it would send."""

    def __init__(self, login: str = "sms", password: str | None = None, signing_key: str | None = None) -> None:
        self.login, self.password = login, password or secrets.token_hex(8)
        self.signing_key = signing_key or secrets.token_hex(12)
        self.device_id = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._port = 0
        self._messages: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._fails: deque[int] = deque()
        self._drops = 0
        self._connections: set[socket.socket] = set()  # open keep-alive connections, cut when it goes offline
        self.posts = 0  # POST /messages received, accepted or not

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeAndroidPhone:
        return self.come_back()

    def __exit__(self, *exc: object) -> None:
        self.go_offline()

    def come_back(self) -> FakeAndroidPhone:
        """Listen (again, on the same port)."""
        if self._server is None:
            self._server = _Server(("127.0.0.1", self._port), _Handler)
            self._server.fake = self
            self._port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def go_offline(self) -> None:
        """Stop listening: the client gets "connection refused", as from a phone that left the network."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:  # a pooled client must not reach a phone that is gone
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def url(self) -> str:
        """For ANDROID_GATEWAY_URL (the local server's base)."""
        return f"http://127.0.0.1:{self._port}"

    # -- what it got -------------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Messages it accepted, in order: id, to, text, sim."""
        with self._lock:
            return [dict(self._messages[i]) for i in self._order]

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next n POSTs with an HTTP error."""
        with self._lock:
            self._fails.extend(status for _ in range(n))

    def accept_then_drop_next(self, n: int = 1) -> None:
        """Keep the next n messages, then drop the connection before answering."""
        with self._lock:
            self._drops += n

    # -- webhooks it would send ----------------------------------------------------------------------

    def webhook(self, event: str, payload: dict[str, Any], *, event_id: str | None = None,
                timestamp: int | None = None, key: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a signed webhook, as the app sends them."""
        body = json.dumps({"deviceId": self.device_id, "event": event, "id": event_id or secrets.token_hex(10),
                           "payload": payload, "webhookId": "wh-" + event}).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return body, {"Content-Type": "application/json", "X-Timestamp": ts,
                      "X-Signature": sign(key or self.signing_key, body, ts)}

    def received(self, sender: str, text: str, **kw: Any) -> tuple[bytes, dict[str, str]]:
        """An sms:received webhook."""
        now = datetime.now(timezone.utc).isoformat()
        return self.webhook("sms:received", {"messageId": secrets.token_hex(4), "message": text,
                                             "phoneNumber": sender, "simNumber": 1, "receivedAt": now}, **kw)

    # -- request handling ----------------------------------------------------------------------------

    def _authorised(self, h: _Handler) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.login}:{self.password}".encode()).decode()
        return secrets.compare_digest(h.headers.get("Authorization") or "", expected)

    def _handle(self, h: _Handler, method: str) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if not self._authorised(h):
            return self._send(h, 401, {"message": "Unauthorized"})
        if method == "GET" and h.path.startswith("/messages/"):
            with self._lock:
                found = self._messages.get(h.path.rsplit("/", 1)[1])
            return self._send(h, 200, self._state(found)) if found else self._send(h, 404, {"message": "not found"})
        if method != "POST" or h.path.split("?")[0] != "/messages":
            return self._send(h, 404, {"message": "not found"})
        with self._lock:
            self.posts += 1
            fail = self._fails.popleft() if self._fails else None
        if fail:
            return self._send(h, fail, {"message": "error"})
        try:
            data = json.loads(raw)
            text, numbers = data["textMessage"]["text"], data["phoneNumbers"]
        except (ValueError, KeyError, TypeError):
            return self._send(h, 400, {"message": "bad request"})
        message_id = data.get("id") or secrets.token_hex(8)
        with self._lock:
            if message_id in self._messages:
                return self._send(h, 409, {"message": f"message {message_id} already exists"})
            self._messages[message_id] = {"id": message_id, "to": numbers[0], "text": text,
                                          "sim": data.get("simNumber"), "state": "Pending"}
            self._order.append(message_id)
            drop = self._drops > 0
            self._drops -= 1 if drop else 0
            state = self._state(self._messages[message_id])
        if drop:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        return self._send(h, 202, state)

    def _state(self, m: dict[str, Any]) -> dict[str, Any]:
        return {"id": m["id"], "deviceId": self.device_id, "state": m["state"], "isHashed": False,
                "isEncrypted": False, "recipients": [{"phoneNumber": m["to"], "state": m["state"]}]}

    @staticmethod
    def _send(h: _Handler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            h.close_connection = True
