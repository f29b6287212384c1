"""Broken configuration stops create_app at start with a ConfigError naming the variable."""
from __future__ import annotations

from pathlib import Path

import pytest

from gateway import create_app
from gateway.settings import ConfigError
from tests.conftest import NUMBERS_KEY, SECRET_KEY


def start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    """create_app with these environment variables over a working embedded setup."""
    for name in ("SENDER_RATE", "SENDER_RATES", "SMS_PRICES", "QUIET_HOURS", "TWILIO_TIMEOUT", "PROXY_FIX_HOPS",
                 "SENDING_STALE_SECONDS", "NUMBERS_KEY", "DEFAULT_COUNTRY", "SMS_PROVIDER", "DATABASE_URL",
                 "REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "FLOWS_DIR"):
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
])
def test_good_settings_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str) -> None:
    start(monkeypatch, tmp_path, **{name: value})


def test_twilio_without_a_token_does_not_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SMS_PROVIDER=twilio needs TWILIO_AUTH_TOKEN"):
        start(monkeypatch, tmp_path, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32)


def test_a_web_server_does_not_start_on_a_broken_flow_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outside the flask command line (gunicorn), a broken flow stops create_app, naming file and key."""
    import shutil

    from gateway.settings import ROOT
    from gateway.core.flowfile import FlowError

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
