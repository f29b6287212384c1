"""Who the webhooks trust, and how much they read before they know: size limits on chunked bodies (L1),
a phone's signature bound to the phone it claims to be (M7), Africa's Talking's token and allow-list
(M7), and plain http to a phone only on the local network (L9)."""
from __future__ import annotations

import io
import logging
import time
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from gateway.settings import ConfigError
from gateway.models import Contact, Message
from gateway.channels.android import AndroidProvider
from tests.conftest import PUBLIC_BASE, make_stack_app
from tests.fakes.africastalking_api import FakeAfricasTalking
from tests.fakes.android_api import FakeAndroidPhone
from tests.test_webhooks import sign as twilio_sign, sms as twilio_sms
from tests.wires import AT_TOKEN, channel_settings

A = "+265991234567"
BIG = 70_000  # over the 64 KiB every webhook is held to


@pytest.fixture
def fakes() -> Iterator[tuple[FakeAfricasTalking, FakeAndroidPhone]]:
    with FakeAfricasTalking() as at, FakeAndroidPhone() as phone:
        yield at, phone


@pytest.fixture
def capp(db_url: str, redis_url: str | None, tmp_path, fakes) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    at, phone = fakes
    app = make_stack_app(db_url, redis_url, tmp_path, **channel_settings(at, phone))
    yield app
    app.extensions["gateway"].engine.dispose()


def count(app: Any) -> int:
    with app.extensions["gateway"].sessions() as s:
        return s.scalar(select(func.count()).select_from(Message)) + s.scalar(select(func.count()).select_from(Contact))


def chunked(app: Any, url: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    """POST with Transfer-Encoding: chunked and no Content-Length, as gunicorn hands it to the app."""
    return app.test_client().post(url, input_stream=io.BytesIO(body),
                                  headers={"Transfer-Encoding": "chunked", **(headers or {})},
                                  environ_overrides={"wsgi.input_terminated": True})


# -- L1: the 64 KiB limit holds without a Content-Length ------------------------------------------


def test_a_chunked_twilio_webhook_over_64_kib_is_413_before_its_signature_is_computed(capp, monkeypatch) -> None:
    from urllib.parse import urlencode

    params = twilio_sms("x" * BIG)
    validated: list[int] = []
    twilio = capp.extensions["gateway"].twilio
    real = twilio.validate
    monkeypatch.setattr(twilio, "validate", lambda *a: validated.append(1) or real(*a))
    response = chunked(capp, "/sms/twilio", urlencode(params).encode(),
                       {"Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": twilio_sign(PUBLIC_BASE + "/sms/twilio", params)})
    assert response.status_code == 413
    assert validated == [] and count(capp) == 0


def test_a_chunked_africastalking_webhook_over_64_kib_is_413_and_stores_nothing(capp) -> None:
    from urllib.parse import urlencode

    form = {"from": A, "to": "12345", "text": "x" * BIG, "id": f"ATid-{time.time_ns()}", "date": "2026-11-23 10:00:00"}
    for url in (f"/sms/africastalking/{AT_TOKEN}", f"/sms/africastalking/{AT_TOKEN}/status"):
        response = chunked(capp, url, urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413, url
    assert count(capp) == 0


def test_a_chunked_android_webhook_over_64_kib_is_413_before_it_is_verified(capp, fakes, monkeypatch) -> None:
    _, phone = fakes
    body, headers = phone.received(A, "x" * BIG)  # signed with the right key: only its size is wrong
    verified: list[int] = []
    real = AndroidProvider.verify
    monkeypatch.setattr(AndroidProvider, "verify", lambda self, *a, **k: verified.append(1) or real(self, *a, **k))
    assert chunked(capp, "/sms/android", body, headers).status_code == 413
    assert verified == [] and count(capp) == 0


def test_a_small_chunked_webhook_is_still_taken(capp, fakes) -> None:
    """A phone or a proxy that streams its request in chunks is not refused for that alone."""
    _, phone = fakes
    assert chunked(capp, "/sms/android", *phone.received(A, "JOIN")).status_code == 200
    with capp.extensions["gateway"].sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1


# -- M7: a phone's signed event binds to that phone -------------------------------------------------

TWO_PHONES = """
channels:
  phone-a: {{type: android, url: "{a}", password_env: PHONE_A_PASSWORD, signing_key_env: PHONE_A_KEY}}
  phone-b: {{type: android, url: "{b}", password_env: PHONE_B_PASSWORD, signing_key_env: PHONE_B_KEY}}
routes:
  - {{country: MW, via: [phone-a, phone-b]}}
"""


@pytest.fixture
def two_phones(db_url: str, redis_url: str | None, tmp_path) -> Iterator[tuple[Any, FakeAndroidPhone, FakeAndroidPhone]]:
    with FakeAndroidPhone(login="a") as a, FakeAndroidPhone(login="b") as b:
        path = tmp_path / "sms_routes.yaml"
        path.write_text(TWO_PHONES.format(a=a.url, b=b.url))
        app = make_stack_app(db_url, redis_url, tmp_path, SMS_ROUTES_FILE=str(path),
                             PHONE_A_PASSWORD=a.password, PHONE_A_KEY=a.signing_key,
                             PHONE_B_PASSWORD=b.password, PHONE_B_KEY=b.signing_key)
        yield app, a, b
        app.extensions["gateway"].engine.dispose()


def inbound_rows(app: Any) -> list[tuple[str, str]]:
    with app.extensions["gateway"].sessions() as s:
        return [(m.channel, m.body) for m in s.scalars(select(Message).where(Message.direction == "in"))]


def test_an_event_signed_by_phone_a_replayed_to_phone_b_is_refused_and_handled_once(two_phones) -> None:
    app, a, b = two_phones
    client = app.test_client()
    captured = a.received(A, "STOP", event_id="evt-1")  # e.g. read off a plain-http LAN
    assert client.post("/sms/android?phone=phone-a", data=captured[0], headers=captured[1]).status_code == 200
    replay = client.post("/sms/android?phone=phone-b", data=captured[0], headers=captured[1])
    assert replay.status_code == 403
    assert inbound_rows(app) == [("phone-a", "STOP")]
    # Phone B's own events are still taken.
    own = b.received(A, "HELP")
    assert client.post("/sms/android?phone=phone-b", data=own[0], headers=own[1]).status_code == 200
    assert inbound_rows(app) == [("phone-a", "STOP"), ("phone-b", "HELP")]


def test_phones_sharing_one_signing_key_stop_the_start(db_url, tmp_path) -> None:
    """With one key for two phones, a signature cannot say which phone sent it: refused at start."""
    with FakeAndroidPhone(login="a") as a, FakeAndroidPhone(login="b") as b:
        path = tmp_path / "sms_routes.yaml"
        path.write_text(TWO_PHONES.format(a=a.url, b=b.url))
        with pytest.raises(ConfigError, match="PHONE_B_KEY.*PHONE_A_KEY|PHONE_A_KEY.*PHONE_B_KEY"):
            make_stack_app(db_url, None, tmp_path, SMS_ROUTES_FILE=str(path),
                           PHONE_A_PASSWORD=a.password, PHONE_A_KEY="one-key-for-both",
                           PHONE_B_PASSWORD=b.password, PHONE_B_KEY="one-key-for-both")
        path.write_text(TWO_PHONES.format(a=a.url, b=b.url).replace(", signing_key_env: PHONE_B_KEY", ""))
        with pytest.raises(ConfigError, match="ANDROID_WEBHOOK_SIGNING_KEY"):  # B falls back to the shared key
            make_stack_app(db_url, None, tmp_path, SMS_ROUTES_FILE=str(path),
                           PHONE_A_PASSWORD=a.password, PHONE_A_KEY="the-shared-key",
                           PHONE_B_PASSWORD=b.password, ANDROID_WEBHOOK_SIGNING_KEY="the-shared-key")


def test_an_unknown_phone_name_answers_like_a_bad_signature(two_phones) -> None:
    """No way to learn which phone names exist: same status, same body."""
    app, a, _ = two_phones
    client = app.test_client()
    body, headers = a.received(A, "JOIN")
    unknown = client.post("/sms/android?phone=nokia", data=body, headers=headers)
    bad = client.post("/sms/android?phone=phone-b", data=body, headers=headers)
    nameless = client.post("/sms/android", data=body, headers=headers)  # two phones: the name is needed
    assert unknown.status_code == bad.status_code == nameless.status_code == 403
    assert unknown.data == bad.data == nameless.data
    assert inbound_rows(app) == []


def test_africastalking_token_shorter_than_32_characters_stops_the_start(db_url, tmp_path, fakes) -> None:
    at, phone = fakes
    with pytest.raises(ConfigError, match="AT_WEBHOOK_TOKEN.*32"):
        make_stack_app(db_url, None, tmp_path, **{**channel_settings(at, phone), "AT_WEBHOOK_TOKEN": "short-secret"})


def test_africastalking_without_an_allow_list_is_warned_about_at_start(db_url, tmp_path, fakes, caplog) -> None:
    at, phone = fakes
    caplog.set_level(logging.WARNING)
    app = make_stack_app(db_url, None, tmp_path, **channel_settings(at, phone))
    app.extensions["gateway"].engine.dispose()
    assert any("AT_ALLOWED_IPS" in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)
    caplog.clear()
    app = make_stack_app(db_url, None, tmp_path, **channel_settings(at, phone), AT_ALLOWED_IPS="196.201.214.0/24")
    app.extensions["gateway"].engine.dispose()
    assert not any("AT_ALLOWED_IPS" in r.getMessage() for r in caplog.records)


# -- L9: plain http to a phone only on the local network -------------------------------------------


@pytest.mark.parametrize("url", ["http://sms.example.org:8080", "http://8.8.8.8:8080", "http://[2001:4860::8888]:8080"])
def test_plain_http_to_a_phone_off_the_local_network_stops_the_start(db_url, tmp_path, fakes, url) -> None:
    at, phone = fakes
    with pytest.raises(ConfigError, match="ANDROID_GATEWAY_URL.*https"):
        make_stack_app(db_url, None, tmp_path, **{**channel_settings(at, phone), "ANDROID_GATEWAY_URL": url})


def test_plain_http_in_the_routing_file_off_the_local_network_stops_the_start(db_url, tmp_path, fakes) -> None:
    at, phone = fakes
    path = tmp_path / "sms_routes.yaml"
    path.write_text('channels:\n  phone-x: {type: android, url: "http://1.2.3.4:8080", signing_key_env: PX_KEY}\n')
    with pytest.raises(ConfigError, match="channels.phone-x.*https"):
        make_stack_app(db_url, None, tmp_path, SMS_ROUTES_FILE=str(path), PX_KEY="x" * 24,
                       **channel_settings(at, phone))


@pytest.mark.parametrize("url", ["http://192.168.1.20:8080", "http://10.0.0.5:8080", "http://127.0.0.1:8080",
                                 "http://localhost:8080", "http://[fe80::1]:8080", "https://sms.example.org",
                                 "https://api.sms-gate.app/3rdparty/v1"])
def test_a_phone_on_the_local_network_or_over_https_is_accepted(db_url, tmp_path, fakes, url) -> None:
    at, phone = fakes
    app = make_stack_app(db_url, None, tmp_path, **{**channel_settings(at, phone), "ANDROID_GATEWAY_URL": url})
    app.extensions["gateway"].engine.dispose()
