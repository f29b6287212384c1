"""Broken configuration stops create_app at start with a ConfigError naming the variable."""
from __future__ import annotations

import dataclasses
import ipaddress
from datetime import time, timedelta
from pathlib import Path

import pytest

from gateway import create_app
from gateway.settings import (
    ConfigError,
    Settings,
    database_url,
)
from tests.conftest import NUMBERS_KEY, SECRET_KEY


def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    """create_app with these environment variables over a working embedded setup."""
    for name in ("SENDER_RATE", "SENDER_RATES", "SMS_PRICES", "QUIET_HOURS", "TWILIO_TIMEOUT", "PROXY_FIX_HOPS",
                 "SENDING_STALE_SECONDS", "NUMBERS_KEY", "DEFAULT_COUNTRY", "SMS_PROVIDER", "DATABASE_URL",
                 "REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "FLOWS_DIR", "LOG_LEVEL", "AT_TIMEOUT",
                 "ANDROID_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}", "INSTANCE_PATH": str(tmp_path),
                      "TESTING": True, "SECRET_KEY": env.get("SECRET_KEY", SECRET_KEY), "NUMBERS_KEY": env.get("NUMBERS_KEY", NUMBERS_KEY)})
    app.extensions["gateway"].engine.dispose()
    return app


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("SENDER_RATE", "abc", "expected a number"),
    ("SENDER_RATE", "0", "expected a positive number"),
    ("SENDER_RATE", "nan", "expected a positive number"),
    ("TWILIO_TIMEOUT", "-1", "expected a positive number"),
    ("TWILIO_TIMEOUT", "10s", "expected a number"),
    ("PROXY_FIX_HOPS", "x", "expected a whole number"),
    ("PROXY_FIX_HOPS", "1.5", "expected a whole number"),
    ("PROXY_FIX_HOPS", "-1", "expected a non-negative number"),
    ("SENDING_STALE_SECONDS", "two minutes", "expected a whole number"),
    ("SENDER_RATES", "+15005550006", "expected sender=segments per second"),
    ("SENDER_RATES", "+15005550006=fast", "expected sender=segments per second"),
    ("SENDER_RATES", "=5", "expected sender=segments per second"),
    ("SENDER_RATES", "+15005550006=-2", "expected sender=segments per second"),
    ("SMS_PRICES", "MW:0.08", "expected COUNTRY=price per segment"),
    ("SMS_PRICES", "MW=cheap", "expected COUNTRY=price per segment"),
    ("SMS_PRICES", "Malawi=0.08", "expected COUNTRY=price per segment"),
    ("SMS_PRICES", "MW=-1", "expected COUNTRY=price per segment"),
    ("QUIET_HOURS", "21:00", "expected HH:MM-HH:MM"),
    ("QUIET_HOURS", "9pm-7am", "expected HH:MM-HH:MM"),
    ("QUIET_HOURS", "25:00-07:00", "expected HH:MM-HH:MM"),
    ("NUMBERS_KEY", "too-short", "NUMBERS_KEY: key 1 has 9 characters"),
    ("DEFAULT_COUNTRY", "Malawi", "expected an ISO 3166 code"),
    ("SMS_PROVIDER", "nexmo", "expected one of twilio, console, africastalking, android"),
    ("PRIVACY_RETENTION", "three months", "expected an age like 90d"),
    ("LOG_LEVEL", "loud", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("AT_TIMEOUT", "soon", "expected a number"),
    ("AT_TIMEOUT", "0", "expected a positive number"),
    ("ANDROID_TIMEOUT", "-5", "expected a positive number"),
])
def test_broken_setting_is_named_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str,
                                          expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        start(monkeypatch, tmp_path, **{name: value})
    message = str(caught.value)
    assert message.startswith(name) and expected in message, message


@pytest.mark.parametrize(("name", "value"), [
    ("SENDER_RATE", "2.5"), ("TWILIO_TIMEOUT", "4"), ("PROXY_FIX_HOPS", "1"), ("SENDING_STALE_SECONDS", "0"),
    ("SENDER_RATES", "+15005550006=1, MG0123=30"), ("SMS_PRICES", "mw=0.08,HN=0.07,*=0.05"),
    ("QUIET_HOURS", "21:30-06:45"), ("QUIET_HOURS", "off"), ("SENDER_RATE", " "), ("PRIVACY_RETENTION", "30d"),
    ("LOG_LEVEL", "debug"), ("AT_TIMEOUT", "2.5"), ("ANDROID_TIMEOUT", "30"),
])
def test_good_settings_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str) -> None:
    start(monkeypatch, tmp_path, **{name: value})


def test_twilio_without_a_token_does_not_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SMS_PROVIDER=twilio needs TWILIO_AUTH_TOKEN"):
        start(monkeypatch, tmp_path, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32)


def test_a_web_server_does_not_start_on_a_broken_flow_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outside the flask command line (gunicorn), a broken flow stops create_app, naming file and key."""
    import shutil

    from gateway.core.flowfile import FlowError
    from gateway.settings import ROOT

    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    join = flows / "join.yaml"
    join.write_text(join.read_text(encoding="utf-8").replace("expires_after: ", "expires_after: soon #", 1),
                    encoding="utf-8")
    places = flows / "places" / "malawi.yaml"
    places.write_text("country: [not, a, code]\n", encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        start(monkeypatch, tmp_path, FLOWS_DIR=str(flows))
    text = str(caught.value)
    assert f"{join}: expires_after: expected a duration like 30m, 24h or 2d" in text, text
    assert str(places) in text, text


def test_a_web_server_does_not_start_on_broken_case_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """flows/cases.yaml is loaded with the flows: a broken rule stops create_app too, naming file and key."""
    import shutil

    from gateway.core.flowfile import FlowError
    from gateway.settings import ROOT

    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    rules = flows / "cases.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("window: 14d", "window: soon", 1), encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        start(monkeypatch, tmp_path, FLOWS_DIR=str(flows))
    assert f"{rules}: defaults.window: expected a duration like 14d or 48h" in str(caught.value)


def test_a_csv_that_is_not_a_spreadsheet_export_is_named(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Binary junk, a wrong header and a bad line each get a message naming the file and what to do."""
    junk = tmp_path / "photo.csv"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    result = runner.invoke(args=["contacts", "import", str(junk)])
    assert result.exit_code == 1 and "not UTF-8 text; save the sheet as 'CSV UTF-8'" in result.output
    header = tmp_path / "header.csv"
    header.write_text("telefono,nombre\n0991234567,Ana\n", encoding="utf-8")
    result = runner.invoke(args=["contacts", "import", str(header)])
    assert result.exit_code == 1
    assert f"{header}: line 1: expected the columns number, name, language, place, tags" in result.output


# -- L4, M9: what the embedded default writes into instance/ is the gateway user's alone ----------

def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_instance_secrets_and_database_are_owner_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A first run with the usual umask: instance/ 0700, the keys and the SQLite files 0600, from the
    start (even if nothing ever ran chmod, nobody else could have read them)."""
    import os

    from sqlalchemy import text

    for name in ("SECRET_KEY", "NUMBERS_KEY", "DATABASE_URL", "SMS_PROVIDER", "REDIS_URL", "TWILIO_ACCOUNT_SID",
                 "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
    old = os.umask(0o022)
    try:
        instance = tmp_path / "instance"
        app = create_app({"INSTANCE_PATH": str(instance), "TESTING": True,
                          "DATABASE_URL": f"sqlite:///{instance / 'gateway.db'}"})
        with app.extensions["gateway"].engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
        app.extensions["gateway"].engine.dispose()
    finally:
        os.umask(old)
    assert _mode(instance) == 0o700
    assert {p.name: _mode(p) for p in instance.iterdir() if p.is_file()} == {
        "secret_key": 0o600, "numbers_key": 0o600, "gateway.db": 0o600}


def test_a_private_directory_made_first_leaves_every_parent_it_creates_owner_only(tmp_path: Path) -> None:
    """The spool (instance/spool) may be the first thing made: instance/ must not be left world-readable."""
    import os

    from gateway.private import private_dir

    old = os.umask(0o022)
    try:
        spool = private_dir(tmp_path / "instance" / "spool")
    finally:
        os.umask(old)
    assert (_mode(tmp_path / "instance"), _mode(spool)) == (0o700, 0o700)
    assert private_dir(spool) == spool  # made already: left as it is


@pytest.mark.parametrize(("module", "make", "read"), [
    ("gateway.settings", "secrets.token_hex", "_secret_key"), ("gateway.settings", "secrets.token_urlsafe", "_numbers_key")])
def test_two_processes_starting_at_once_share_one_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      module: str, make: str, read: str) -> None:
    """Two gunicorn workers on a fresh instance/: the one that loses the race reads the winner's key."""
    import importlib

    mod = importlib.import_module(module)
    target = mod
    for part in make.split(".")[:-1]:
        target = getattr(target, part)
    name = {"_secret_key": "secret_key", "_numbers_key": "numbers_key"}[read]

    def other_worker_wins(*_args: object) -> str:
        (tmp_path / name).write_text("the winner's key, written while this worker made its own")
        return "this worker's key"

    monkeypatch.setattr(target, make.split(".")[-1], other_worker_wins)
    assert getattr(mod, read)(tmp_path) == "the winner's key, written while this worker made its own"


@pytest.mark.parametrize(("settings", "expected"), [
    ({"SECRET_KEY": "short"}, "SECRET_KEY: 5 characters; it needs at least 32"),
    ({"SECRET_KEY": None, "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
      "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006"}, "SECRET_KEY is required"),
    ({"SECRET_KEY": None, "DATABASE_URL": "postgresql://db.example/gateway"}, "SECRET_KEY is required"),
])
def test_secret_key_is_long_and_given_where_processes_share_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               settings: dict, expected: str) -> None:  # type: ignore[type-arg]
    """Sessions signed on one host must verify on the others, and a short key is guessable."""
    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}", "INSTANCE_PATH": str(tmp_path), "TESTING": True,
              "NUMBERS_KEY": NUMBERS_KEY, "SMS_PROVIDER": "console", **settings}
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert str(caught.value).startswith("SECRET_KEY") and expected in str(caught.value), str(caught.value)


# -- Settings: read, checked and parsed once -----------------------------------------------------

def test_settings_hold_each_list_and_number_parsed(tmp_path: Path) -> None:
    """Every list and number arrives typed: no caller re-parses a string."""
    settings = Settings.from_env({
        "SENDER_RATE": "2.5", "SENDER_RATES": "+15005550006=1, MG0123=30", "SEND_CONCURRENCY": "8",
        "SMS_PRICES": "mw=0.08,*=0.05", "QUIET_HOURS": "21:30-06:45", "SENDING_STALE_SECONDS": "60",
        "PROXY_FIX_HOPS": "1", "TWILIO_TIMEOUT": "4", "AT_ALLOWED_IPS": "196.201.214.0/24, 52.48.80.10",
        "TEST_SEND_NUMBERS": "+265991234567, 0991234567", "PRIVACY_RETENTION": "30d",
        "NUMBERS_KEY": "a" * 32 + ", " + "b" * 32, "LOG_LEVEL": "debug", "AT_TIMEOUT": "4.5", "ANDROID_TIMEOUT": "25",
        "FLOWS_DIR": str(tmp_path / "flows"), "DEFAULT_COUNTRY": "mw"}, tmp_path)
    assert (settings.sender_rate, settings.sender_rates) == (2.5, {"+15005550006": 1.0, "MG0123": 30.0})
    assert (settings.send_concurrency, settings.sending_stale_seconds, settings.proxy_fix_hops) == (8, 60, 1)
    assert settings.sms_prices == {"MW": 0.08, "*": 0.05}
    assert settings.quiet_hours == (time(21, 30), time(6, 45))
    assert settings.at_allowed_ips == (ipaddress.ip_network("196.201.214.0/24"), ipaddress.ip_network("52.48.80.10/32"))
    assert settings.test_send_numbers == ("+265991234567",)  # one phone, written two ways
    assert settings.privacy_retention == timedelta(days=30)
    assert settings.numbers_keys == ("a" * 32, "b" * 32)
    assert (settings.log_level, settings.twilio_timeout, settings.at_timeout, settings.android_timeout) == (
        "DEBUG", 4.0, 4.5, 25.0)
    assert isinstance(settings.send_concurrency, int) and isinstance(settings.at_timeout, float)
    assert (settings.flows_dir, settings.default_country, settings.instance_path) == (tmp_path / "flows", "MW", tmp_path)


def test_settings_defaults(tmp_path: Path) -> None:
    """An empty environment: the embedded console install, with the documented defaults."""
    settings = Settings.from_env({}, tmp_path)
    assert (settings.sms_provider, settings.database_url) == ("console", f"sqlite:///{tmp_path / 'gateway.db'}")
    assert (settings.sender_rate, settings.sender_rates, settings.send_concurrency) == (1.0, {}, 32)
    assert (settings.sms_prices, settings.quiet_hours) == ({"*": 0.05}, None)  # the console reaches no phone
    assert (settings.numbers_keys, settings.test_send_numbers, settings.at_allowed_ips) == ((), (), ())
    assert settings.privacy_retention == timedelta(days=90)
    assert (settings.log_level, settings.at_timeout, settings.android_timeout) == ("INFO", 10.0, 10.0)
    assert (settings.spool_dir, settings.sms_routes_file) == (tmp_path / "spool", tmp_path / "sms_routes.yaml")
    assert (settings.secret_key, settings.redis_url, settings.public_base_url) == (None, None, None)
    assert (settings.reconcile_seconds, settings.worker_heartbeat_seconds) == (60, 10)
    assert (settings.db_statement_timeout_ms, settings.db_lock_timeout_ms) == (5000, 3000)


def test_recovery_and_database_timeouts_are_read_and_checked(tmp_path: Path) -> None:
    """The reconciler's period, the workers' heartbeat and PostgreSQL's timeouts (0: no limit)."""
    settings = Settings.from_env({"RECONCILE_SECONDS": "15", "WORKER_HEARTBEAT_SECONDS": "2",
                                  "DB_STATEMENT_TIMEOUT_MS": "0", "DB_LOCK_TIMEOUT_MS": "750"}, tmp_path)
    assert (settings.reconcile_seconds, settings.worker_heartbeat_seconds) == (15, 2)
    assert (settings.db_statement_timeout_ms, settings.db_lock_timeout_ms) == (0, 750)
    with pytest.raises(ConfigError, match=r"^RECONCILE_SECONDS=0: expected a positive number$"):
        Settings.from_env({"RECONCILE_SECONDS": "0"}, tmp_path)
    with pytest.raises(ConfigError, match=r"^DB_LOCK_TIMEOUT_MS='1.5s': expected a whole number"):
        Settings.from_env({"DB_LOCK_TIMEOUT_MS": "1.5s"}, tmp_path)


def test_overrides_take_strings_or_numbers_before_the_dependent_defaults(tmp_path: Path) -> None:
    """Tests pass overrides under the environment's names, as strings or already-typed values."""
    twilio = {"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t",
              "TWILIO_FROM_NUMBER": "+15005550006", "NUMBERS_KEY": "k" * 40, "SECRET_KEY": "s" * 40}
    settings = Settings.from_env({"SENDER_RATE": "2", "SEND_CONCURRENCY": "4"}, tmp_path, overrides={
        **twilio, "SENDER_RATE": 50, "SEND_CONCURRENCY": "8", "PROXY_FIX_HOPS": 2, "TWILIO_TIMEOUT": "3.5",
        "SMS_PRICES": "HN=0.07", "TESTING": True})
    assert (settings.sender_rate, settings.send_concurrency, settings.proxy_fix_hops) == (50.0, 8, 2)
    assert (settings.twilio_timeout, settings.sms_prices, settings.numbers_keys) == (3.5, {"HN": 0.07}, ("k" * 40,))
    assert settings.quiet_hours == (time(21, 0), time(7, 0))  # Twilio's default, chosen after the override
    assert settings.as_flask_config()["TESTING"] is True  # Flask's own keys pass through to app.config
    with pytest.raises(ConfigError, match=r"^SENDER_RATE='abc': expected a positive number$"):
        Settings.from_env({}, tmp_path, overrides={"SENDER_RATE": "abc"})
    with pytest.raises(ConfigError, match=r"^PROXY_FIX_HOPS=1.5: expected a whole number, e.g. 0$"):
        Settings.from_env({}, tmp_path, overrides={"PROXY_FIX_HOPS": 1.5})


def test_settings_cannot_be_changed(tmp_path: Path) -> None:
    settings = Settings.from_env({}, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.sender_rate = 100  # type: ignore[misc]
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        settings.sender_rat = 100  # type: ignore[attr-defined]


@pytest.mark.parametrize("overrides", [
    {}, {"SENDER_RATE": 3, "QUIET_HOURS": "22:00-06:00", "INSTANCE_PATH": "/elsewhere", "TESTING": True},
    {"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006",
     "NUMBERS_KEY": "k" * 40, "SECRET_KEY": "s" * 40, "DATABASE_URL": "postgres://db.example/gateway"},
])
def test_flask_config_is_what_create_app_puts_in_app_config(tmp_path: Path, overrides: dict) -> None:  # type: ignore[type-arg]
    """as_flask_config(): every setting under its variable's name as read, defaults filled in, then the overrides."""
    environ = {"SENDER_RATES": "+15005550006=2", "AT_TIMEOUT": "7", "LOG_LEVEL": "warning"}
    config = Settings.from_env(environ, tmp_path, overrides).as_flask_config()
    names = {f.name.upper() for f in dataclasses.fields(Settings) if not f.name.startswith("_")}
    assert set(config) == (names - {"NUMBERS_KEYS"}) | {"NUMBERS_KEY"} | set(overrides)
    given = {k: v for k, v in overrides.items() if k != "DATABASE_URL"}
    assert {k: config[k] for k in given} == given
    assert (config["SENDER_RATES"], config["AT_TIMEOUT"], config["LOG_LEVEL"]) == ("+15005550006=2", 7.0, "warning")
    assert config["DATABASE_URL"] == database_url(overrides.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'gateway.db'}")
    assert config["SPOOL_DIR"] == str(Path(config["INSTANCE_PATH"]) / "spool")
    twilio = overrides.get("SMS_PROVIDER") == "twilio"
    assert config["QUIET_HOURS"] == overrides.get("QUIET_HOURS", "21:00-07:00" if twilio else "off")


def test_secret_reads_the_variables_the_routing_file_names(tmp_path: Path) -> None:
    """Per-phone secrets are named in sms_routes.yaml, so they are read by name: overrides, then the environment."""
    environ = {"PHONE1_PASSWORD": "from the environment", "PHONE2_KEY": "from the environment"}
    settings = Settings.from_env(environ, tmp_path, overrides={"PHONE2_KEY": "from an override"})
    environ["PHONE3_KEY"] = "set after the start"
    assert settings.secret("PHONE1_PASSWORD") == "from the environment"
    assert settings.secret("PHONE2_KEY") == "from an override"
    assert (settings.secret("PHONE3_KEY"), settings.secret(None), settings.secret("")) == (None, None, None)


def test_repr_gives_no_secret_away(tmp_path: Path) -> None:
    settings = Settings.from_env({"SECRET_KEY": "s" * 40, "NUMBERS_KEY": "k" * 40, "AT_WEBHOOK_TOKEN": "t" * 40,
                                  "AT_ALLOWED_IPS": "10.0.0.1", "PHONE_KEY": "p" * 40}, tmp_path)
    text = repr(settings)
    assert "sender_rate=1.0" in text and not any(c * 40 in text for c in "sktp")


# Each message exactly as check_settings gave it before Settings (generated from that code).
BEFORE = [
    ({"SENDER_RATE": "abc"}, {}, "SENDER_RATE='abc': expected a number, e.g. 1.0"),
    ({"SENDER_RATE": "0"}, {}, "SENDER_RATE=0.0: expected a positive number"),
    ({"TWILIO_TIMEOUT": "-1"}, {}, "TWILIO_TIMEOUT=-1.0: expected a positive number"),
    ({"PROXY_FIX_HOPS": "1.5"}, {}, "PROXY_FIX_HOPS='1.5': expected a whole number, e.g. 0"),
    ({"SENDING_STALE_SECONDS": "two minutes"}, {},
     "SENDING_STALE_SECONDS='two minutes': expected a whole number, e.g. 120"),
    ({"SENDER_RATES": "+15005550006"}, {}, ("SENDER_RATES='+15005550006': expected sender=segments per second, "
     "comma-separated, e.g. +15005550006=1,MG0123=30")),
    ({"SMS_PRICES": "Malawi=0.08"}, {}, ("SMS_PRICES='Malawi=0.08': expected COUNTRY=price per segment, "
     "comma-separated, e.g. MW=0.08,HN=0.07,*=0.05")),
    ({"QUIET_HOURS": "9pm-7am"}, {}, "QUIET_HOURS='9pm-7am': expected HH:MM-HH:MM (e.g. 21:00-07:00) or off"),
    ({"NUMBERS_KEY": "too-short"}, {}, ("NUMBERS_KEY: key 1 has 9 characters; each needs at least 32 (generate one "
     "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")),
    ({"DEFAULT_COUNTRY": "Malawi"}, {}, "DEFAULT_COUNTRY='MALAWI': expected an ISO 3166 code such as MW or HN"),
    ({"SMS_PROVIDER": "nexmo"}, {}, "SMS_PROVIDER='nexmo': expected one of twilio, console, africastalking, android"),
    ({"PRIVACY_RETENTION": "three months"}, {},
     "PRIVACY_RETENTION='three months': expected an age like 90d, 12h or 30m"),
    ({"TEST_SEND_NUMBERS": "+265991234567,12345"}, {}, ("TEST_SEND_NUMBERS: entry 2: short codes can cost far more "
     "than a text, so test messages never go to one; expected mobile numbers, comma-separated, "
     "e.g. +265991234567,+50499123456")),
    ({"AT_ALLOWED_IPS": "10.0.0.0/33"}, {}, "AT_ALLOWED_IPS: '10.0.0.0/33': expected an IP address or network"),
    ({"AT_WEBHOOK_TOKEN": "short"}, {}, ("AT_WEBHOOK_TOKEN has 5 characters; it needs at least 32 (generate one "
     "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")),
    ({"SMS_PROVIDER": "africastalking"}, {}, "SMS_PROVIDER=africastalking needs AT_USERNAME and AT_API_KEY"),
    ({"SMS_PROVIDER": "android"}, {}, "SMS_PROVIDER=android needs ANDROID_GATEWAY_PASSWORD (and ANDROID_GATEWAY_URL)"),
    ({"ANDROID_GATEWAY_URL": "ftp://phone"}, {}, "ANDROID_GATEWAY_URL='ftp://phone': expected http(s)://host[:port][/path]"),
    ({"ANDROID_GATEWAY_URL": "http://phone.example.org", "ANDROID_GATEWAY_PASSWORD": "pw"}, {},
     ("ANDROID_GATEWAY_URL='http://phone.example.org': plain http to a phone off the local network sends its "
     "password and every text in clear; use https:// (or the phone's address on the local network)")),
    ({"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1"}, {}, "SMS_PROVIDER=twilio needs TWILIO_AUTH_TOKEN"),
    ({"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"}, {},
     "SMS_PROVIDER=twilio needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"),
    ({"SECRET_KEY": "short"}, {}, ("SECRET_KEY: 5 characters; it needs at least 32. Generate one with: "
     "python3 -c 'import secrets; print(secrets.token_hex(32))'")),
    ({"DATABASE_URL": "postgresql://db.example/gateway"}, {}, ("NUMBERS_KEY is required with SMS_PROVIDER=twilio "
     "(or another real provider) or a PostgreSQL database: phone numbers are encrypted with it, and every process "
     "must share it. Generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")),
    ({"DATABASE_URL": "postgresql://db.example/gateway", "NUMBERS_KEY": "k" * 40}, {}, ("SECRET_KEY is required "
     "with SMS_PROVIDER=twilio (or another real provider) or a PostgreSQL database: every web process must sign "
     "sessions with the same key. Generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'")),
    ({}, {"SENDER_RATE": "abc"}, "SENDER_RATE='abc': expected a positive number"),
    ({}, {"SENDER_RATE": -3}, "SENDER_RATE=-3: expected a positive number"),
]


@pytest.mark.parametrize(("environ", "overrides", "message"), BEFORE)
def test_every_message_is_the_one_it_was(tmp_path: Path, environ: dict, overrides: dict,  # type: ignore[type-arg]
                                         message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ, tmp_path, overrides)
    assert str(caught.value) == message


@pytest.mark.parametrize(("environ", "message"), [
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud': expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ({"AT_TIMEOUT": "soon"}, "AT_TIMEOUT='soon': expected a number, e.g. 10.0"),
    ({"ANDROID_TIMEOUT": "0"}, "ANDROID_TIMEOUT=0.0: expected a positive number"),
])
def test_log_level_and_channel_timeouts_are_checked(tmp_path: Path, environ: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ, tmp_path)
    assert str(caught.value) == message


@pytest.mark.postgres_only
def test_the_statement_timeout_holds_web_processes_not_commands_and_workers(db_url: str, tmp_path: Path) -> None:
    """A hung database fails a webhook fast; an export, a purge or a worker's job may take longer."""
    import click

    from tests.conftest import make_app
    assert db_url.startswith("postgresql"), "SQLite has no statement timeout (the test is postgres_only)"

    def timeouts(app: object) -> tuple[str, str]:
        with app.extensions["gateway"].engine.connect() as conn:  # type: ignore[attr-defined]
            return (conn.exec_driver_sql("SHOW statement_timeout").scalar(),
                    conn.exec_driver_sql("SHOW lock_timeout").scalar())

    assert timeouts(make_app(db_url, tmp_path, DB_STATEMENT_TIMEOUT_MS=2000)) == ("2s", "3s")  # imported to serve
    for command in ("worker", "export", "purge"):
        with click.Context(click.Command(command)):  # `flask --app app worker` builds the app inside its command
            assert timeouts(make_app(db_url, tmp_path, DB_STATEMENT_TIMEOUT_MS=2000)) == ("0", "3s")
