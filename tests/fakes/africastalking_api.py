"""A fake Africa's Talking SMS API (POST /version1/messaging) on loopback, for the real SDK."""
from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.twilio_api import num_segments

# Per-recipient status codes of the real API.
STATUS = {101: "Success", 403: "InvalidPhoneNumber", 405: "InsufficientBalance", 406: "UserInBlacklist",
          407: "CouldNotRoute", 500: "InternalServerError"}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many sends open connections at once; the default backlog of 5 resets them
    daemon_threads = True
    block_on_close = False
    fake: FakeAfricasTalking

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that gave up."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""

    def do_POST(self) -> None:
        self.server.fake._handle(self)


class FakeAfricasTalking:
    """The messaging endpoint: checks apiKey and username, records messages, injects faults."""

    def __init__(self, username: str = "sandbox", api_key: str | None = None) -> None:
        self.username = username
        self.api_key = api_key or secrets.token_hex(16)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._messages: list[dict[str, Any]] = []
        self._fails: deque[tuple[int, str]] = deque()
        self._number_codes: dict[str, int] = {}

    def __enter__(self) -> FakeAfricasTalking:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """For AT_API_BASE_URL (the SDK appends /version1)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages: to, message, from, messageId."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def fail_next(self, n: int = 1, status: int = 500, text: str = "Internal error") -> None:
        """Answer the next n requests with an HTTP error (the SDK raises AfricasTalkingException)."""
        with self._lock:
            self._fails.extend((status, text) for _ in range(n))

    def code_for_number(self, number: str, code: int) -> None:
        """Answer 201 but refuse this recipient with a status code (403, 406, 405 ...)."""
        with self._lock:
            self._number_codes[number] = code

    def _handle(self, h: _Handler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            fail = self._fails.popleft() if self._fails else None
        if h.path != "/version1/messaging":
            return self._send(h, 404, "text/plain", b"Not found")
        if fail:
            return self._send(h, fail[0], "text/plain", fail[1].encode())
        if not secrets.compare_digest(h.headers.get("apiKey") or "", self.api_key):
            return self._send(h, 401, "text/plain", b"The supplied authentication is invalid")
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        if form.get("username") != self.username or not form.get("to") or not form.get("message"):
            return self._send(h, 400, "text/plain", b"Request is missing required form field")
        recipients = []
        for to in form["to"].split(","):
            with self._lock:
                code = self._number_codes.get(to, 101)
            entry: dict[str, Any] = {"statusCode": code, "number": to, "status": STATUS.get(code, "Failed"),
                                     "cost": "0", "messageId": "None"}
            if code == 101:
                entry["messageId"] = "ATXid_" + secrets.token_hex(16)
                entry["cost"] = f"MWK {num_segments(form['message']) * 10}.0000"
                with self._lock:
                    self._messages.append({"to": to, "message": form["message"], "from": form.get("from"),
                                           "messageId": entry["messageId"]})
            recipients.append(entry)
        sent = sum(1 for r in recipients if r["statusCode"] == 101)
        payload = {"SMSMessageData": {"Message": f"Sent to {sent}/{len(recipients)}", "Recipients": recipients}}
        # The SDK only parses JSON when the content type is exactly application/json.
        self._send(h, 201, "application/json", json.dumps(payload).encode())

    @staticmethod
    def _send(h: _Handler, status: int, content_type: str, data: bytes) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            h.close_connection = True
