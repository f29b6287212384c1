"""TwilioProvider through the real twilio SDK against a fake Twilio API on loopback; ConsoleProvider."""
from __future__ import annotations

import io
import socket
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

import gateway.channels.twilio as twilio_module
from gateway.channels.base import ProviderError
from gateway.channels.console import ConsoleProvider
from gateway.channels.twilio import TwilioProvider
from gateway.core.phones import mask_number
from tests.fakes import FakeTwilio

FROM = "+15005550006"
TO = "+265991234567"
SERVICE = "MG" + "0" * 32
URL = "https://gateway.example.org/sms/twilio"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeTwilio) -> FakeTwilio:
    server.clear()
    return server


@pytest.fixture
def provider(fake: FakeTwilio) -> TwilioProvider:
    return TwilioProvider(fake.account_sid, fake.auth_token, from_number=FROM, api_base_url=fake.base_url,
                          timeout=2.0)


def send_error(provider: TwilioProvider, to: str = TO) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.send(to, "hello")
    return info.value


# -- sending ----------------------------------------------------------------------------------

def test_send_reaches_twilio_with_to_from_body_and_callback(fake: FakeTwilio, provider: TwilioProvider) -> None:
    result = provider.send(TO, "Muli bwanji? 😀", status_callback="https://gateway.example.org/sms/twilio/status")
    [message] = fake.messages
    assert result.provider_id == message["sid"] and result.provider_id.startswith("SM")
    assert result.status == "queued" and result.error_code is None
    assert (message["to"], message["from"], message["body"]) == (TO, FROM, "Muli bwanji? 😀")
    assert message["status_callback"] == "https://gateway.example.org/sms/twilio/status"
    assert message["messaging_service_sid"] is None


def test_send_without_callback_sends_none(fake: FakeTwilio, provider: TwilioProvider) -> None:
    provider.send(TO, "hi")
    assert fake.messages[0]["status_callback"] is None


def test_send_through_messaging_service(fake: FakeTwilio) -> None:
    provider = TwilioProvider(fake.account_sid, fake.auth_token, messaging_service_sid=SERVICE,
                              api_base_url=fake.base_url)
    result = provider.send(TO, "hi")
    [message] = fake.messages
    assert message["messaging_service_sid"] == SERVICE and message["from"] is None
    assert message["status"] == "accepted" and result.status == "queued"  # Twilio's word mapped to ours
    assert result.provider_id == message["sid"]


def test_send_without_sender_is_refused_before_any_request(fake: FakeTwilio) -> None:
    provider = TwilioProvider(fake.account_sid, fake.auth_token, api_base_url=fake.base_url)
    error = send_error(provider)
    assert error.code == "config" and not error.retryable and not error.ambiguous
    assert fake.requests == 0


def test_one_client_and_one_pooled_connection_across_sends(fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    real_client = twilio_module.Client

    def counting_client(*args: Any, **kwargs: Any) -> Any:
        built.append(real_client(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(twilio_module, "Client", counting_client)
    provider = TwilioProvider(fake.account_sid, fake.auth_token, from_number=FROM, api_base_url=fake.base_url)
    for i in range(3):
        provider.send(TO, f"message {i}")
    assert len(built) == 1 and provider.client is built[0]
    assert len(fake.messages) == 3
    assert fake.connections == 1  # keep-alive through the SDK's requests Session


def test_429_is_retryable_with_code(fake: FakeTwilio, provider: TwilioProvider) -> None:
    fake.fail_next(1, status=429)
    error = send_error(provider)
    assert error.retryable and not error.ambiguous
    assert (error.http_status, error.code) == (429, "20429")
    assert fake.messages == []
    assert provider.send(TO, "again").provider_id  # the fault was used up


def test_code_20429_is_retryable_whatever_the_status(fake: FakeTwilio, provider: TwilioProvider) -> None:
    fake.fail_next(1, status=400, code=20429)
    error = send_error(provider)
    assert error.retryable and error.code == "20429"


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_ambiguous(fake: FakeTwilio, provider: TwilioProvider, status: int) -> None:
    fake.fail_next(1, status=status)
    error = send_error(provider)
    assert error.ambiguous and not error.retryable and error.http_status == status


def test_hang_past_timeout_is_ambiguous(fake: FakeTwilio) -> None:
    provider = TwilioProvider(fake.account_sid, fake.auth_token, from_number=FROM, api_base_url=fake.base_url,
                              timeout=0.5)
    fake.hang_next(1, 2.0)
    started = time.monotonic()
    error = send_error(provider)
    assert time.monotonic() - started < 1.5  # the provider's timeout, not the server's hang
    assert error.ambiguous and not error.retryable
    assert provider.send(TO, "after the hang").status == "queued"  # the pool recovers


@pytest.mark.parametrize("mode", ["drop", "500"])
def test_accept_then_fail_is_ambiguous_and_find_sent_settles_it(fake: FakeTwilio, provider: TwilioProvider,
                                                                mode: str) -> None:
    since = datetime.now(timezone.utc)
    provider.send("+265888000111", "someone else")
    fake.accept_then_fail_next(1, mode=mode)
    error = send_error(provider)
    assert error.ambiguous and not error.retryable
    accepted = [m for m in fake.messages if m["to"] == TO]
    assert len(accepted) == 1  # the message exists although the client saw an error
    found = provider.find_sent(TO, since)
    assert [r.provider_id for r in found] == [accepted[0]["sid"]]
    assert found[0].status == "queued"


def test_find_sent_reports_status_and_respects_since(fake: FakeTwilio, provider: TwilioProvider) -> None:
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    sid = provider.send(TO, "one").provider_id
    assert sid is not None
    fake.set_status(sid, "undelivered", error_code=30003)
    [result] = provider.find_sent(TO, since.replace(tzinfo=None))  # naive means UTC
    assert (result.provider_id, result.status, result.error_code) == (sid, "undelivered", "30003")
    assert provider.find_sent(TO, datetime.now(timezone.utc) + timedelta(hours=1)) == []
    # An aware time in another zone is the same instant, not its wall-clock digits read as UTC.
    later_elsewhere = (datetime.now(timezone.utc) + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=-2)))
    assert provider.find_sent(TO, later_elsewhere) == []


def test_find_sent_filters_to_the_second_when_twilio_filters_by_day(fake: FakeTwilio, provider: TwilioProvider) -> None:
    while datetime.now(timezone.utc).strftime("%H:%M:%S") >= "23:59:55":  # keep "since" on the same day
        time.sleep(0.5)
    fake.filter_dates_by_day = True  # the fake's clear() turns it off again
    provider.send(TO, "earlier today")
    since = datetime.now(timezone.utc) + timedelta(seconds=2)
    assert len(provider.client.messages.list(to=TO, date_sent_after=since)) == 1  # Twilio's coarse answer
    assert provider.find_sent(TO, since) == []


def test_find_sent_only_reports_this_sender(fake: FakeTwilio) -> None:
    def make(**sender: str) -> TwilioProvider:
        return TwilioProvider(fake.account_sid, fake.auth_token, api_base_url=fake.base_url, **sender)

    by_number, other_number = make(from_number=FROM), make(from_number="+15005550009")
    by_service, other_service = make(messaging_service_sid=SERVICE), make(messaging_service_sid="MG" + "9" * 32)
    since = datetime.now(timezone.utc)
    sids = {p: p.send(TO, "hi").provider_id for p in (by_number, other_number, by_service, other_service)}
    assert [r.provider_id for r in by_number.find_sent(TO, since)] == [sids[by_number]]
    assert [r.provider_id for r in by_service.find_sent(TO, since)] == [sids[by_service]]


def test_timeout_reaches_the_sdk_http_client() -> None:
    assert TwilioProvider("AC" + "3" * 32, "token", timeout=3.5).client.http_client.timeout == 3.5


def test_find_sent_error_is_a_provider_error(fake: FakeTwilio, provider: TwilioProvider) -> None:
    fake.fail_next(1, status=429)
    with pytest.raises(ProviderError) as info:
        provider.find_sent(TO, datetime.now(timezone.utc))
    assert info.value.retryable and info.value.code == "20429"


def test_fake_pages_like_twilio(fake: FakeTwilio, provider: TwilioProvider) -> None:
    sids = [provider.send(TO, f"m{i}").provider_id for i in range(5)]
    listed = provider.client.messages.list(to=TO, page_size=2)
    assert [m.sid for m in listed] == sids[::-1]  # newest first, across three pages
    assert provider.client.messages(sids[0]).fetch().body == "m0"


@pytest.mark.parametrize(("code", "status"), [(21211, 400), (21610, 400), (21408, 400)])
def test_refused_number_is_final_with_code(fake: FakeTwilio, provider: TwilioProvider, code: int, status: int) -> None:
    fake.error_for_number(TO, status=status, code=code)
    error = send_error(provider)
    assert error.code == str(code) and error.http_status == status
    assert not error.retryable and not error.ambiguous
    assert provider.send("+265888000111", "others still work").provider_id


def test_missing_body_is_refused_by_twilio(fake: FakeTwilio, provider: TwilioProvider) -> None:
    with pytest.raises(ProviderError) as info:
        provider.send(TO, "")
    assert info.value.code == "21602" and not info.value.retryable and not info.value.ambiguous


def test_wrong_credentials_are_final(fake: FakeTwilio) -> None:
    provider = TwilioProvider(fake.account_sid, "wrong-token", from_number=FROM, api_base_url=fake.base_url)
    error = send_error(provider)
    assert (error.http_status, error.code, error.retryable, error.ambiguous) == (401, "20003", False, False)
    assert fake.messages == []


def test_refused_connection_is_retryable_not_ambiguous() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = TwilioProvider("AC" + "1" * 32, "token", from_number=FROM, api_base_url=f"http://127.0.0.1:{port}")
    error = send_error(provider)
    assert error.retryable and not error.ambiguous


@pytest.mark.parametrize(("exc", "retryable", "ambiguous"), [
    (requests.ConnectTimeout("connect timed out"), True, False),
    (requests.ReadTimeout("read timed out"), False, True),
    (requests.ConnectionError("Connection aborted."), False, True),
    (requests.exceptions.ChunkedEncodingError("truncated"), False, True),
])
def test_transport_errors_from_the_session(fake: FakeTwilio, provider: TwilioProvider,
                                           monkeypatch: pytest.MonkeyPatch, exc: Exception,
                                           retryable: bool, ambiguous: bool) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(provider.client.http_client.session, "send", fail)  # type: ignore[attr-defined]
    error = send_error(provider)
    assert (error.retryable, error.ambiguous) == (retryable, ambiguous)
    assert error.__cause__ is exc


def test_bad_api_base_url_is_refused() -> None:
    with pytest.raises(ValueError):
        TwilioProvider("AC1", "token", api_base_url="127.0.0.1:8123")


# -- webhook signatures ---------------------------------------------------------------------------

TOKEN = "webhook-token"
FORM = {"MessageSid": "SM" + "a" * 32, "From": TO, "To": FROM, "Body": "JOIN"}


@pytest.fixture
def signer() -> TwilioProvider:
    return TwilioProvider("AC" + "2" * 32, TOKEN)


def sign(params: Any, url: str = URL, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def test_valid_signature(signer: TwilioProvider) -> None:
    assert signer.validate(URL, FORM, sign(FORM))
    assert signer.validate(URL, MultiDict(FORM), sign(FORM))  # Flask's request.form


def test_wrong_or_missing_signature(signer: TwilioProvider) -> None:
    assert not signer.validate(URL, FORM, sign(FORM, token="another-token"))
    assert not signer.validate(URL, FORM, "not-a-signature")
    assert not signer.validate(URL, FORM, None)
    assert not signer.validate(URL, FORM, "")


def test_signature_for_another_url(signer: TwilioProvider) -> None:
    signature = sign(FORM)
    assert not signer.validate("https://gateway.example.org/sms/twilio/status", FORM, signature)
    assert not signer.validate(URL + "?x=1", FORM, signature)


def test_tampered_params(signer: TwilioProvider) -> None:
    signature = sign(FORM)
    assert not signer.validate(URL, {**FORM, "Body": "STOP"}, signature)
    assert not signer.validate(URL, {**FORM, "Extra": "1"}, signature)
    assert not signer.validate(URL, {k: v for k, v in FORM.items() if k != "Body"}, signature)


def test_repeated_params_are_all_signed(signer: TwilioProvider) -> None:
    form = MultiDict([*FORM.items(), ("MediaUrl", "https://a.example/1"), ("MediaUrl", "https://a.example/2")])
    signature = sign(form)
    assert signer.validate(URL, form, signature)
    flattened = MultiDict([*FORM.items(), ("MediaUrl", "https://a.example/1")])
    assert not signer.validate(URL, flattened, signature)


# -- webhook parsing ----------------------------------------------------------------------------

def test_parse_inbound(signer: TwilioProvider) -> None:
    sms = signer.parse_inbound(MultiDict(FORM))
    assert (sms.provider, sms.provider_id, sms.sender, sms.recipient, sms.body) == (
        "twilio", FORM["MessageSid"], TO, FROM, "JOIN")


def test_parse_inbound_old_sid_no_body_nuls_and_raw_numbers(signer: TwilioProvider) -> None:
    sms = signer.parse_inbound({"SmsSid": "SM1", "From": "0991 234 567", "NumMedia": "1"})
    assert (sms.provider_id, sms.sender, sms.recipient, sms.body) == ("SM1", "0991 234 567", None, "")
    assert signer.parse_inbound({**FORM, "Body": "a\x00b\x00"}).body == "ab"


@pytest.mark.parametrize("form", [{"Body": "hi"}, {"From": "", "Body": "hi"}])
def test_parse_inbound_without_sender(signer: TwilioProvider, form: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="missing From"):
        signer.parse_inbound(form)


@pytest.mark.parametrize(("twilio_status", "ours"), [
    ("accepted", "queued"), ("queued", "queued"), ("scheduled", "queued"), ("sending", "sending"),
    ("sent", "sent"), ("delivered", "delivered"), ("read", "delivered"), ("undelivered", "undelivered"),
    ("failed", "failed"), ("canceled", "failed"),
])
def test_parse_status_mapping(signer: TwilioProvider, twilio_status: str, ours: str) -> None:
    update = signer.parse_status({"MessageSid": "SM9", "MessageStatus": twilio_status})
    assert (update.provider_id, update.status, update.error_code) == ("SM9", ours, None)


def test_parse_status_error_code(signer: TwilioProvider) -> None:
    update = signer.parse_status(MultiDict({"MessageSid": "SM9", "MessageStatus": "undelivered", "ErrorCode": "30005"}))
    assert (update.status, update.error_code) == ("undelivered", "30005")


@pytest.mark.parametrize("form", [
    {"MessageStatus": "delivered"},
    {"MessageSid": "SM9", "MessageStatus": "bounced"},
    {"MessageSid": "SM9"},
])
def test_parse_status_refuses_what_it_cannot_map(signer: TwilioProvider, form: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        signer.parse_status(form)


# -- TwiML ---------------------------------------------------------------------------------------

def test_twiml_one_message_per_reply(signer: TwilioProvider) -> None:
    xml = signer.twiml(["Welcome <Chikondi> & co", "Reply STOP to end"])
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml.encode("utf-8"))
    assert root.tag == "Response"
    assert [(m.tag, m.text) for m in root] == [("Message", "Welcome <Chikondi> & co"), ("Message", "Reply STOP to end")]


def test_twiml_empty(signer: TwilioProvider) -> None:
    root = ET.fromstring(signer.twiml([]).encode("utf-8"))
    assert root.tag == "Response" and len(root) == 0


def test_twiml_stays_well_formed(signer: TwilioProvider) -> None:
    root = ET.fromstring(signer.twiml(["a\x00b\x1bc", "", "\x07"]).encode("utf-8"))
    assert [m.text for m in root] == ["abc"]  # controls XML cannot carry are dropped, empties skipped


# -- console --------------------------------------------------------------------------------------

def test_console_provider_prints_and_records() -> None:
    stream = io.StringIO()
    console = ConsoleProvider(stream)
    first, second = console.send(TO, "hello"), console.send(TO, "again", status_callback="ignored")
    shown = mask_number(TO)  # process logs of a trial install hold no full number (L11)
    assert TO not in stream.getvalue() and stream.getvalue() == f"[sms to {shown}] hello\n[sms to {shown}] again\n"
    assert console.sent == [(TO, "hello"), (TO, "again")]
    assert first.status == "sent" and first.provider_id.startswith("console-")
    assert first.provider_id != second.provider_id
    assert (console.name, console.inline_replies) == ("console", True)


def test_console_provider_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleProvider().send(TO, "hi")
    assert capsys.readouterr().out == f"[sms to {mask_number(TO)}] hi\n"


_hosts = st.sampled_from(["gateway.example.org", "gateway.example.org:443", "gateway.example.org:80",
                          "gateway.example.org:8443", "127.0.0.1:5000"])
_urls = st.builds(lambda scheme, host, path, query: f"{scheme}://{host}{path}{query}",
                  st.sampled_from(["https", "http"]), _hosts,
                  st.sampled_from(["/sms/twilio", "/sms/twilio/status", "/"]),
                  st.sampled_from(["", "?x=1", "?bodySHA256=abc", "?a=1&a=2"]))
_forms = st.lists(st.tuples(st.sampled_from(["From", "Body", "MediaUrl", "To"]), st.text(max_size=8)),
                  max_size=6).map(MultiDict)


@given(url=_urls, form=_forms, signed_url=st.one_of(st.none(), _urls), token=st.sampled_from([TOKEN, "another"]))
def test_a_signature_is_accepted_exactly_when_the_sdks_own_validate_accepts_it(
        url: str, form: MultiDict[str, str], signed_url: str | None, token: str) -> None:
    """Checking the URL as requested first, then the SDK's validate (with and without the port),
    accepts and refuses exactly what validate alone does, whatever URL or token was signed."""
    signature = RequestValidator(token).compute_signature(signed_url or url, form)
    ours = TwilioProvider("AC" + "2" * 32, TOKEN).validate(url, form, signature)
    assert ours == RequestValidator(TOKEN).validate(url, form, signature)


def test_a_valid_signature_costs_one_hmac_not_two(signer: TwilioProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's validate computes the signature twice (the URL with and without its port): a
    webhook signed over the URL it requested needs only the first. About 40 of a stored text's
    ~1,000 microseconds of CPU."""
    signature = sign(FORM)
    computed: list[str] = []
    compute = RequestValidator.compute_signature

    def counted(self: RequestValidator, uri: str, params: Any, algorithm: Any = None) -> str:
        computed.append(uri)
        return compute(self, uri, params, algorithm)

    monkeypatch.setattr(RequestValidator, "compute_signature", counted)
    assert signer.validate(URL, MultiDict(FORM), signature)
    assert computed == [URL]
    computed.clear()
    assert not signer.validate(URL, MultiDict(FORM), "forged")  # refused only after validate's own two
    assert len(computed) == 3
