"""A fake Twilio REST API (Messages only) on loopback, for the real SDK to talk to in tests and benchmarks."""
from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

API = "/2010-04-01"
_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json$")

# The GSM 03.38 basic set plus its extension table (extension characters cost two septets).
_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
           "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments Twilio would bill for this body (GSM-7 or UCS-2)."""
    if all(c in _GSM or c in _GSM_EXT for c in body):
        septets = sum(2 if c in _GSM_EXT else 1 for c in body)
        return 1 if septets <= 160 else -(-septets // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _rfc2822(when: datetime) -> str:
    return format_datetime(when)  # "Tue, 04 Mar 2025 10:00:00 +0000", Twilio's own format


def _parse_filter_date(value: str) -> datetime:
    """The SDK sends YYYY-MM-DDTHH:MM:SSZ; Twilio's docs also allow YYYY-MM-DD."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    raise ValueError(value)


@dataclass
class _Fail:
    status: int
    code: int
    message: str


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many sends open connections at once; the default backlog of 5 resets them
    daemon_threads = True  # a hung handler must not keep stop() or the interpreter waiting
    block_on_close = False
    fake: FakeTwilio

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that gave up (timeouts in tests do that on purpose)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the SDK's connection pooling is exercised
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms delayed-ACK stalls
    server: _Server
    timeout = 30  # drop idle keep-alive connections eventually

    def setup(self) -> None:
        super().setup()
        self.server.fake._count("connections")

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.server.fake._handle(self, "DELETE")


class _Reply(Exception):
    """Raised inside request handling to answer with an error document."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class FakeTwilio:
    """Twilio's Messages API on 127.0.0.1, with fault injection settable while it runs."""

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None, *, port: int = 0) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        # Twilio only documents day precision for DateSent filters; set True to filter that coarsely.
        self.filter_dates_by_day = False
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._messages: list[dict[str, Any]] = []
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._latency = 0.0
        self._fails: deque[_Fail] = deque()
        self._hangs: deque[float] = deque()
        self._accept_then_fail: deque[str] = deque()
        self._number_errors: dict[str, _Fail] = {}
        self._counts: dict[str, int] = {"connections": 0, "requests": 0, "creates": 0}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Listen on loopback and serve from a background thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are woken and dropped."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>, for TwilioProvider(api_base_url=...)."""
        if self._server is None:
            raise RuntimeError("FakeTwilio is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what it saw ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Copies of the accepted messages' resources, oldest first (plus `status_callback`)."""
        with self._lock:
            return [dict(m) for m in self._messages]

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (a pooled client opens one per concurrent request)."""
        with self._lock:
            return self._counts["connections"]

    @property
    def requests(self) -> int:
        """HTTP requests received so far."""
        with self._lock:
            return self._counts["requests"]

    @property
    def create_attempts(self) -> int:
        """POSTs to Messages.json received so far, accepted or not."""
        with self._lock:
            return self._counts["creates"]

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Move a message on (e.g. to "delivered") as Twilio would."""
        with self._lock:
            message = self._by_sid[sid]
            message["status"] = status
            message["error_code"] = error_code
            message["date_updated"] = _rfc2822(datetime.now(timezone.utc))

    def clear(self) -> None:
        """Forget messages and counters and cancel all faults."""
        with self._lock:
            self._messages.clear()
            self._by_sid.clear()
            self._counts = dict.fromkeys(self._counts, 0)
        self.clear_faults()

    # -- fault injection -----------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added to every request."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = float(seconds)

    def fail_next(self, n: int = 1, status: int = 500, code: int | None = None, message: str | None = None) -> None:
        """Answer the next n API requests with an error instead of handling them."""
        code = code if code is not None else {429: 20429, 503: 20503}.get(status, 20500 if status >= 500 else status)
        message = message or {429: "Too Many Requests", 503: "Service Unavailable"}.get(
            status, "Internal Server Error" if status >= 500 else "Bad Request")
        with self._lock:
            self._fails.extend(_Fail(status, code, message) for _ in range(n))

    def hang_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """Make the next n API requests wait `seconds` before answering (creates record first)."""
        with self._lock:
            self._hangs.extend(float(seconds) for _ in range(n))

    def accept_then_fail_next(self, n: int = 1, mode: str = "drop") -> None:
        """Record the next n created messages, then drop the connection ("drop") or answer 500 ("500")."""
        if mode not in ("drop", "500"):
            raise ValueError(f"mode {mode!r}: expected 'drop' or '500'")
        with self._lock:
            self._accept_then_fail.extend(mode for _ in range(n))

    def error_for_number(self, number: str, status: int = 400, code: int = 21211, message: str | None = None) -> None:
        """Refuse every message to `number` (21211 invalid number, 21610 recipient replied STOP...)."""
        message = message or {
            21211: f"Invalid 'To' Phone Number: {number}",
            21610: "Attempt to send to unsubscribed recipient",
            21408: f"Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {number}",
        }.get(code, f"Cannot send to {number}")
        with self._lock:
            self._number_errors[number] = _Fail(status, code, message)

    def clear_faults(self) -> None:
        """Cancel pending failures, hangs, per-number errors, latency and day-precision filtering."""
        with self._lock:
            self._fails.clear()
            self._hangs.clear()
            self._accept_then_fail.clear()
            self._number_errors.clear()
            self._latency = 0.0
        self.filter_dates_by_day = False

    # -- request handling (runs on the server's threads) ----------------------------------------

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _pop(self, queue: deque[Any]) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    def _handle(self, h: _Handler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        self._count("requests")
        latency = self.latency
        if latency:
            self._stopping.wait(latency)
        url = urlsplit(h.path)
        hang = None
        try:
            match = _MESSAGES.match(url.path)
            if not match:
                raise _Reply(404, 20404, f"The requested resource {url.path} was not found")
            self._authenticate(h, match["account"])
            hang = self._pop(self._hangs)
            fail = self._pop(self._fails)
            if fail is not None:
                raise _Reply(fail.status, fail.code, fail.message)
            if method == "POST" and match["sid"] is None:
                self._count("creates")
                form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
                status, payload = 201, self._create(match["account"], form)
                mode = self._pop(self._accept_then_fail)
                if mode == "drop":
                    self._wait(hang)
                    self._drop(h)
                    return
                if mode == "500":
                    raise _Reply(500, 20500, "Internal Server Error")
            elif method == "GET" and match["sid"] is None:
                status, payload = 200, self._list(match["account"], parse_qs(url.query))
            elif method == "GET":
                status, payload = 200, self._fetch(match["sid"])
            else:
                raise _Reply(405, 20004, "Method not allowed")
        except _Reply as reply:
            status = reply.status
            payload = {"code": reply.code, "message": reply.message,
                       "more_info": f"https://www.twilio.com/docs/errors/{reply.code}", "status": reply.status,
                       **reply.extra}
        self._wait(hang)
        self._send(h, status, payload)

    def _wait(self, hang: float | None) -> None:
        if hang:
            self._stopping.wait(hang)

    def _authenticate(self, h: _Handler, account: str) -> None:
        header = h.headers.get("Authorization") or ""
        user = password = None
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        if user != self.account_sid or not secrets.compare_digest(password or "", self.auth_token):
            raise _Reply(401, 20003, "Authenticate", detail="Your AccountSid or AuthToken was incorrect.")
        if account != self.account_sid:
            raise _Reply(404, 20404, f"The requested resource /2010-04-01/Accounts/{account}/Messages.json was not found")

    def _create(self, account: str, form: dict[str, str]) -> dict[str, Any]:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From") or None, form.get("MessagingServiceSid") or None
        if not to:
            raise _Reply(400, 21604, "A 'To' phone number is required.")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            raise _Reply(400, 21602, "Message body is required.")
        if not sender and not service:
            raise _Reply(400, 21603, "A 'From' phone number is required.")
        with self._lock:
            refusal = self._number_errors.get(to)
        if refusal is not None:
            raise _Reply(refusal.status, refusal.code, refusal.message)
        now = _rfc2822(datetime.now(timezone.utc))
        sid = "SM" + secrets.token_hex(16)
        uri = f"{API}/Accounts/{account}/Messages/{sid}.json"
        message = {
            "account_sid": account, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_updated": now, "date_sent": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            # Through a messaging service Twilio answers "accepted" and picks the sender later.
            "from": sender, "messaging_service_sid": service,
            "num_media": "0", "num_segments": str(num_segments(body)), "price": None, "price_unit": "USD",
            "sid": sid, "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to, "uri": uri, "status_callback": form.get("StatusCallback"),
        }
        with self._lock:
            self._messages.append(message)
            self._by_sid[sid] = message
            return dict(message)

    def _fetch(self, sid: str) -> dict[str, Any]:
        with self._lock:
            message = self._by_sid.get(sid)
            if message is None:
                raise _Reply(404, 20404, f"The requested resource {API}/Accounts/{self.account_sid}/Messages/{sid}.json was not found")
            return dict(message)

    def _list(self, account: str, query: dict[str, list[str]]) -> dict[str, Any]:
        q = {k: v[-1] for k, v in query.items()}
        try:
            after = _parse_filter_date(q["DateSent>"]) if "DateSent>" in q else None
            before = _parse_filter_date(q["DateSent<"]) if "DateSent<" in q else None
            on = _parse_filter_date(q["DateSent"]).date() if "DateSent" in q else None
            page, size = int(q.get("Page", 0)), min(int(q.get("PageSize", 50)), 1000)
        except ValueError as exc:
            raise _Reply(400, 20001, f"Invalid parameter: {exc}") from exc
        if self.filter_dates_by_day:
            after = after.replace(hour=0, minute=0, second=0) if after else None
            before = before.replace(hour=23, minute=59, second=59) if before else None
        with self._lock:
            rows = list(reversed(self._messages))  # Twilio lists newest first
        selected = []
        for m in rows:
            sent = datetime.strptime(m["date_sent"], "%a, %d %b %Y %H:%M:%S %z")
            # Twilio's "DateSent>" and "DateSent<" are inclusive (>= and <=).
            if (("To" in q and m["to"] != q["To"]) or ("From" in q and m["from"] != q["From"])
                    or (after and sent < after) or (before and sent > before) or (on and sent.date() != on)):
                continue
            selected.append({k: v for k, v in m.items() if k != "status_callback"})
        chunk = selected[page * size:(page + 1) * size]
        base = f"{API}/Accounts/{account}/Messages.json"
        filters = {k: v for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")}

        def page_uri(p: int) -> str:
            return base + "?" + urlencode({**filters, "PageSize": size, "Page": p})

        more = (page + 1) * size < len(selected)
        return {
            "messages": chunk, "end": page * size + len(chunk) - 1 if chunk else 0,
            "first_page_uri": page_uri(0), "next_page_uri": page_uri(page + 1) if more else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "page": page, "page_size": size, "start": page * size, "uri": page_uri(page),
        }

    @staticmethod
    def _send(h: _Handler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            h.close_connection = True  # the client gave up (timed out) before the answer

    @staticmethod
    def _drop(h: _Handler) -> None:
        """Close the connection without a status line: the client sees a connection error."""
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def wait_for(predicate: Any, timeout: float = 2.0) -> bool:
    """Poll `predicate()` until true or `timeout` seconds pass; for asserting on server-side effects."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
