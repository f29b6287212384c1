"""The routing file: which channel sends to a number; clear errors at start."""
from __future__ import annotations

from collections import Counter

import pytest
import yaml

from gateway.settings import ConfigError
from gateway.core.routing import RoutesError, load_routes, parse_routes
from tests.conftest import make_stack_app

FILE = """
channels:
  phone-tnm: {type: android, url: "http://192.168.1.20:8080", rate: 0.2, sim: 1}
  phone-hn-1: {type: android, country: HN}
  phone-hn-2: {type: android, country: HN}
  africastalking: {rate: 10}
routes:
  - {prefix: "+26588", via: phone-tnm}
  - {prefix: "+265881", via: africastalking}
  - {country: MW, via: africastalking}
  - {country: HN, via: [phone-hn-1, phone-hn-2]}
default: twilio
"""


def routes():  # type: ignore[no-untyped-def]
    return parse_routes(yaml.safe_load(FILE), "console", "sms_routes.yaml")


def test_longest_prefix_then_country_then_default() -> None:
    r = routes()
    assert r.channel_for("+265881234567") == "africastalking"  # +265881 beats +26588
    assert r.channel_for("+265889999999") == "phone-tnm"
    assert r.channel_for("+265991234567") == "africastalking"  # Malawi, no prefix rule
    assert r.channel_for("+15005550006") == "twilio"
    assert r.channel_for("12345") == "twilio"  # a short code has no country


def test_several_phones_share_a_country_and_each_number_sticks_to_one() -> None:
    r = routes()
    numbers = [f"+5049912{i:04d}" for i in range(200)]
    picks = [r.channel_for(n) for n in numbers]
    counts = Counter(picks)
    assert set(counts) == {"phone-hn-1", "phone-hn-2"} and min(counts.values()) > 60
    assert picks == [r.channel_for(n) for n in numbers]  # the same number, the same phone


def test_channel_settings_are_read() -> None:
    spec = routes().channels["phone-tnm"]
    assert (spec.type, spec.url, spec.rate, spec.sim) == ("android", "http://192.168.1.20:8080", 0.2, 1)
    assert routes().channels["phone-hn-1"].country == "HN"


def test_absent_file_sends_everything_by_the_default(tmp_path) -> None:
    r = load_routes(tmp_path / "none.yaml", "africastalking")
    assert r.channel_for("+265991234567") == "africastalking" and r.channel_for("+50499123456") == "africastalking"


@pytest.mark.parametrize("text, message", [
    ("routes: [{prefix: '+26588', via: nokia}]", "routes[0].via: no channel 'nokia'"),
    ("routes: [{prefix: 26588, via: twilio}]", "routes[0].prefix: 26588"),
    ("routes: [{country: XX, via: twilio}]", "routes[0].country: 'XX'"),
    ("routes: [{country: MW, prefix: '+265', via: twilio}]", "routes[0]: give exactly one of prefix or country"),
    ("routes: [{country: MW}]", "routes[0]: expected"),
    ("channels: {Phone One: {type: android}}", "channels.Phone One: a channel name"),
    ("channels: {p1: {type: pager}}", "channels.p1.type: 'pager'"),
    ("channels: {p1: {type: android, rate: 0}}", "channels.p1.rate: 0"),
    ("channels: {p1: {type: android, sim: 4}}", "channels.p1.sim: 4"),
    ("channels: {p1: {type: android, colour: red}}", "channels.p1: unknown key 'colour'"),
    ("channels: {africastalking: {url: 'http://x'}}", "channels.africastalking: url, login"),
    ("default: pigeon", "default: no channel 'pigeon'"),
    ("routing: []", "unknown key 'routing'"),
    ("[1, 2]", "expected a mapping"),
    ("routes: {a: b}", "routes: expected a list"),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, message) -> None:
    path = tmp_path / "sms_routes.yaml"
    path.write_text(text)
    with pytest.raises(RoutesError) as info:
        load_routes(path, "twilio")
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_broken_yaml_is_named(tmp_path) -> None:
    path = tmp_path / "sms_routes.yaml"
    path.write_text("routes: [{prefix: '+265'")
    with pytest.raises(RoutesError, match="not valid YAML"):
        load_routes(path, "twilio")


def test_the_app_refuses_to_start_with_a_route_to_an_unconfigured_channel(db_url, tmp_path) -> None:
    path = tmp_path / "sms_routes.yaml"
    path.write_text("routes: [{country: MW, via: africastalking}]")
    with pytest.raises(ConfigError, match=r"channel 'africastalking' is routed to but not configured \(set AT_USERNAME"):
        make_stack_app(db_url, None, tmp_path, SMS_ROUTES_FILE=str(path))
    path.write_text("routes: [{country: MW, via: twilio}]\nchannels: {p1: {type: android, password_env: P1_PASSWORD}}")
    with pytest.raises(ConfigError, match="channels.p1: no password: set P1_PASSWORD"):
        make_stack_app(db_url, None, tmp_path, SMS_ROUTES_FILE=str(path))


@pytest.mark.parametrize("settings, message", [
    ({"SMS_PROVIDER": "africastalking"}, "SMS_PROVIDER=africastalking needs AT_USERNAME and AT_API_KEY"),
    ({"SMS_PROVIDER": "android"}, "SMS_PROVIDER=android needs ANDROID_GATEWAY_PASSWORD"),
    ({"SMS_PROVIDER": "pigeon"}, "SMS_PROVIDER='pigeon': expected one of"),
    ({"AT_ALLOWED_IPS": "196.201.214.0/24,not-an-ip"}, "AT_ALLOWED_IPS: 'not-an-ip'"),
    ({"ANDROID_GATEWAY_URL": "192.168.1.20:8080"}, "ANDROID_GATEWAY_URL='192.168.1.20:8080'"),
])
def test_bad_channel_settings_stop_the_start(db_url, tmp_path, settings, message) -> None:
    with pytest.raises(ConfigError) as info:
        make_stack_app(db_url, None, tmp_path, **settings)
    assert message in str(info.value)
