"""The wrk JOIN shape (bench/wrk.py, bench/wrk_signed.lua) sends each pre-signed form once.

The issue's measure is a JOIN from a new number per request. wrk runs the Lua script once per
thread; had each thread sent the same forms, half the "new" JOINs would be a provider's retry of
a text already stored (a duplicate, dropped) and the figure would not be the shape it names.
wrk is a Debian package (`apt-get install wrk`; .ci/run installs it): without it this is skipped,
and fails under GATEWAY_REQUIRE_SERVICES=1 (CI), as the browser tests do without Chromium.
"""
from __future__ import annotations

import shutil
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from bench import wrk
from bench.inbound import PATH, Numbers
from tests.conftest import unavailable

FORMS = 40_000  # more than this server answers in the one second wrk runs


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    seen: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = parse_qs(body)
        key = (self.path, (form.get("MessageSid") or [""])[0] + "|" + (form.get("From") or [""])[0])
        with self.lock:
            self.seen[key] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return None


def test_each_thread_sends_its_own_forms_so_every_join_is_from_a_new_number() -> None:
    if shutil.which("wrk") is None:
        unavailable("wrk", "not installed: apt-get install wrk")
    _Recorder.seen = Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = wrk.join_shape(server.server_address[1], Numbers(), 1.0, threads=2, connections=8, forms=FORMS)
    finally:
        server.shutdown()
        server.server_close()
    assert result.errors == 0 and 50 < result.ok < FORMS, result  # fewer than the forms: none wrapped round
    # every request wrk counted reached the server, and none carried a form another had carried
    assert sum(_Recorder.seen.values()) >= result.ok
    repeated = {key: n for key, n in _Recorder.seen.items() if n > 1}
    assert not repeated, f"{len(repeated)} forms sent more than once, e.g. {next(iter(repeated.items()))}"
    assert {path for path, _ in _Recorder.seen} == {PATH}
