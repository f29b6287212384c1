"""Settings from the environment, under the names of the external contract (DESIGN.md).

`Settings.from_env()` reads every setting once, checks it (a broken one stops the start with a
message naming the variable and showing an example) and holds it parsed and typed, so no caller
re-parses a string. The class is the one place every setting is documented.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from gateway.core.compose import parse_prices, parse_quiet_hours, parse_rates
from gateway.core.flowfile import parse_duration
from gateway.core.phones import parse_numbers
from gateway.core.vault import NumberKeyError, new_key, parse_keys
from gateway.private import secret_file

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
# Sends in flight per batch. A provider answers in ~100-300 ms; with 32 in flight a worker keeps
# ~100-300 messages/s moving while each sender is still held to its own rate by the pacer.
DEFAULT_SEND_CONCURRENCY = 32


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to do."""


MIN_SECRET_KEY = 32  # characters: Flask signs sessions and CSRF tokens with it


def _secret_key(instance: Path) -> str:
    """Read instance/secret_key, creating it (owner-only) on first run so sessions survive restarts."""
    return secret_file(instance / "secret_key", lambda: secrets.token_hex(32))


def database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// and postgresql:// URLs (as hosts hand them out)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url



def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> Any:
    """A numeric setting; a value that is not a number stops the start, naming the variable."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return kind(default)
    try:
        return kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name}={raw!r}: expected {expected}, e.g. {kind(default)}") from None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _empty() -> Mapping[str, Any]:
    """A read-only empty mapping (a Settings built by hand has no environment behind it)."""
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, read once from the environment, checked, and held parsed.

    A field is the environment variable of the same name in upper case (the external contract,
    DESIGN.md), except instance_path. Build one with `Settings.from_env()`; it cannot be changed
    afterwards. The dict and tuple values are parsed copies: read them, never change them.
    Secrets are left out of repr() so a logged Settings gives none away.
    """

    # -- Where things live --
    instance_path: Path  # instance/ (not an environment variable): generated keys, the default database
    database_url: str  # DATABASE_URL: SQLAlchemy URL, psycopg 3 for postgres://; default sqlite:///instance/gateway.db
    redis_url: str | None  # REDIS_URL: RQ, pacing and locks; None runs the embedded in-process queue
    flows_dir: Path  # FLOWS_DIR: the YAML flows; default flows/ beside the package
    sms_routes_file: Path  # SMS_ROUTES_FILE: which channel sends to which number; default instance/sms_routes.yaml
    spool_dir: Path  # SPOOL_DIR: inbound texts kept while the database is away; default instance/spool

    # -- Secrets (each also has an instance/ fallback on the embedded default; see *_for below) --
    secret_key: str | None = field(repr=False)  # SECRET_KEY: signs sessions and CSRF; >= 32 characters
    # NUMBERS_KEY: the secrets that encrypt phone numbers at rest, newest first (comma-separated
    # while rotating); () when unset, and then the key generated into instance/ is used.
    numbers_keys: tuple[str, ...] = field(repr=False)

    # -- The web server --
    public_base_url: str | None  # PUBLIC_BASE_URL: the address providers call, no trailing /; None: the request's
    proxy_fix_hops: int  # PROXY_FIX_HOPS: proxies in front whose X-Forwarded-* headers are trusted; default 0
    log_level: str  # LOG_LEVEL: DEBUG, INFO, WARNING, ERROR or CRITICAL; default INFO

    # -- The organisation and its supporters --
    org_name: str  # ORG_NAME: the name texts and the console use; default "Our Network"
    default_country: str  # DEFAULT_COUNTRY: ISO 3166 code for numbers written without +country; default MW
    default_language: str  # DEFAULT_LANGUAGE: the flows' fallback language; default en
    # TEST_SEND_NUMBERS: E.164 mobile numbers any organizer may send a broadcast's test to,
    # besides their own confirmed phone; set by whoever runs the server.
    test_send_numbers: tuple[str, ...]
    privacy_retention: timedelta  # PRIVACY_RETENTION: age past which the daily purge forgets bodies; default 90d

    # -- Sending --
    sms_provider: str  # SMS_PROVIDER: one of PROVIDERS; default twilio with Twilio credentials, else console
    sender_rate: float  # SENDER_RATE: segments per second per sender; default 1 (Twilio's long-code rate)
    sender_rates: dict[str, float]  # SENDER_RATES: per sender, "+15005550006=1,MG0123=30"; default none
    send_concurrency: int  # SEND_CONCURRENCY: sends in flight per batch a worker runs; default 32
    sms_prices: dict[str, float]  # SMS_PRICES: price per segment by country, "MW=0.08,*=0.05"; default *=0.05
    # QUIET_HOURS: (start, end) in the recipient's local time, bulk sends wait past it; None when
    # "off". Default 21:00-07:00 with Twilio, off otherwise (the console reaches no phone).
    quiet_hours: tuple[time, time] | None
    sending_stale_seconds: int  # SENDING_STALE_SECONDS: a send claimed this long ago is reconciled; default 120

    # -- Twilio --
    twilio_account_sid: str | None  # TWILIO_ACCOUNT_SID
    twilio_auth_token: str | None = field(repr=False)  # TWILIO_AUTH_TOKEN: also checks webhook signatures
    twilio_from_number: str | None  # TWILIO_FROM_NUMBER: the sender, or
    twilio_messaging_service_sid: str | None  # TWILIO_MESSAGING_SERVICE_SID
    twilio_api_base_url: str | None  # TWILIO_API_BASE_URL: a Twilio-compatible service or a fake; None: Twilio's
    twilio_timeout: float  # TWILIO_TIMEOUT: seconds; a send past it is ambiguous; default 10

    # -- Africa's Talking (README "Local channels") --
    at_username: str | None  # AT_USERNAME
    at_api_key: str | None = field(repr=False)  # AT_API_KEY
    at_sender_id: str | None  # AT_SENDER_ID: a short code or alphanumeric sender id
    at_api_base_url: str | None  # AT_API_BASE_URL: http(s)://..., no trailing /; None: Africa's Talking's
    at_webhook_token: str | None = field(repr=False)  # AT_WEBHOOK_TOKEN: the secret in its callback URLs
    at_allowed_ips: tuple[Network, ...]  # AT_ALLOWED_IPS: addresses or networks it calls from; () allows any
    at_timeout: float  # AT_TIMEOUT: seconds per API call; default 10

    # -- An Android phone running SMS Gateway for Android (README "Local channels") --
    android_gateway_url: str | None  # ANDROID_GATEWAY_URL: the phone or the cloud relay, no trailing /
    android_gateway_login: str | None  # ANDROID_GATEWAY_LOGIN
    android_gateway_password: str | None = field(repr=False)  # ANDROID_GATEWAY_PASSWORD
    android_webhook_signing_key: str | None = field(repr=False)  # ANDROID_WEBHOOK_SIGNING_KEY
    android_timeout: float  # ANDROID_TIMEOUT: seconds per API call; default 10

    # METRICS_TOKEN: the bearer token GET /metrics asks for; None (unset) turns /metrics off (404).
    metrics_token: str | None = field(default=None, repr=False)

    # What as_flask_config() returns: the UPPER_CASE values as read, with any overrides (test and
    # Flask keys such as TESTING included), so create_app can move to Settings a caller at a time.
    _config: Mapping[str, Any] = field(default_factory=_empty, repr=False, compare=False)
    # The environment it was read from, for secret(): the routing file names its own variables.
    _environ: Mapping[str, str] = field(default_factory=_empty, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, instance: Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Settings:
        """Read (os.environ by default), apply overrides (UPPER_CASE names; strings or typed values), check, parse.

        A missing or wrong setting raises ConfigError naming the variable and what to do.
        """
        env = dict(os.environ if environ is None else environ)
        config = _read(env, instance)
        config.update(overrides or {})
        config["DATABASE_URL"] = database_url(config["DATABASE_URL"])
        _resolve_defaults(config)
        return _parse(config, env)

    def as_flask_config(self) -> dict[str, Any]:
        """The UPPER_CASE settings create_app puts into app.config (as read, with the overrides and the defaults)."""
        return dict(self._config)

    def secret(self, name: str | None) -> str | None:
        """A secret the routing file names by variable (password_env, signing_key_env), or None.

        Read from the overrides, then the environment this Settings was built from (a snapshot
        kept privately); these names are chosen per install, so no field can hold them.
        """
        if not name:
            return None
        return self._config.get(name) or self._environ.get(name) or None


def _read(env: Mapping[str, str], instance: Path | None) -> dict[str, Any]:
    """All settings, from the environment with the documented defaults, as UPPER_CASE strings and numbers."""
    # INSTANCE_PATH: where generated keys, the default database and the server lock live.
    instance = instance or Path(env.get("INSTANCE_PATH") or ROOT / "instance")
    has_twilio = bool(env.get("TWILIO_ACCOUNT_SID") and env.get("TWILIO_AUTH_TOKEN"))
    settings: dict[str, Any] = {
        "DATABASE_URL": database_url(env.get("DATABASE_URL") or f"sqlite:///{instance / 'gateway.db'}"),
        "REDIS_URL": env.get("REDIS_URL") or None,
        "SECRET_KEY": env.get("SECRET_KEY") or None,
        "SMS_PROVIDER": (env.get("SMS_PROVIDER") or ("twilio" if has_twilio else "console")).lower(),
        "TWILIO_ACCOUNT_SID": env.get("TWILIO_ACCOUNT_SID") or None,
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN") or None,
        "TWILIO_FROM_NUMBER": env.get("TWILIO_FROM_NUMBER") or None,
        "TWILIO_MESSAGING_SERVICE_SID": env.get("TWILIO_MESSAGING_SERVICE_SID") or None,
        "TWILIO_API_BASE_URL": env.get("TWILIO_API_BASE_URL") or None,
        "TWILIO_TIMEOUT": _number(env, "TWILIO_TIMEOUT", 10),  # seconds; a send past it is ambiguous
        "PUBLIC_BASE_URL": (env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "DEFAULT_COUNTRY": (env.get("DEFAULT_COUNTRY") or "MW").upper(),
        "DEFAULT_LANGUAGE": env.get("DEFAULT_LANGUAGE") or "en",
        "ORG_NAME": env.get("ORG_NAME") or "Our Network",
        "FLOWS_DIR": env.get("FLOWS_DIR") or str(ROOT / "flows"),
        "PROXY_FIX_HOPS": _number(env, "PROXY_FIX_HOPS", 0, int),
        "LOG_LEVEL": env.get("LOG_LEVEL") or "INFO",  # a logging level name
        "SENDER_RATE": _number(env, "SENDER_RATE", 1),  # segments/s: Twilio's long-code default
        "SENDER_RATES": env.get("SENDER_RATES") or "",  # per sender: "+15005550006=1,MG...=30"
        # Sends in flight at once in each batch a worker runs; pacing still holds every sender.
        "SEND_CONCURRENCY": _number(env, "SEND_CONCURRENCY", DEFAULT_SEND_CONCURRENCY, int),
        "SMS_PRICES": env.get("SMS_PRICES") or "*=0.05",  # price per segment by country
        # Local time of the recipient's place. The console provider reaches no phone, so a trial
        # install sends at any hour unless QUIET_HOURS is set.
        "QUIET_HOURS": env.get("QUIET_HOURS") or None,
        "SENDING_STALE_SECONDS": _number(env, "SENDING_STALE_SECONDS", 120, int),
        # One secret (or several, newest first, while rotating) for phone numbers at rest.
        "NUMBERS_KEY": env.get("NUMBERS_KEY") or None,
        # Local channels (README "Local channels"): Africa's Talking and Android phones.
        "AT_USERNAME": env.get("AT_USERNAME") or None,
        "AT_API_KEY": env.get("AT_API_KEY") or None,
        "AT_SENDER_ID": env.get("AT_SENDER_ID") or None,  # a short code or alphanumeric sender id
        "AT_API_BASE_URL": (env.get("AT_API_BASE_URL") or "").rstrip("/") or None,
        "AT_WEBHOOK_TOKEN": env.get("AT_WEBHOOK_TOKEN") or None,  # the secret in its callback URLs
        "AT_ALLOWED_IPS": env.get("AT_ALLOWED_IPS") or "",  # optional: addresses or networks it calls from
        "AT_TIMEOUT": _number(env, "AT_TIMEOUT", 10),  # seconds
        "ANDROID_GATEWAY_URL": (env.get("ANDROID_GATEWAY_URL") or "").rstrip("/") or None,
        "ANDROID_GATEWAY_LOGIN": env.get("ANDROID_GATEWAY_LOGIN") or None,
        "ANDROID_GATEWAY_PASSWORD": env.get("ANDROID_GATEWAY_PASSWORD") or None,
        "ANDROID_WEBHOOK_SIGNING_KEY": env.get("ANDROID_WEBHOOK_SIGNING_KEY") or None,
        "ANDROID_TIMEOUT": _number(env, "ANDROID_TIMEOUT", 10),  # seconds
        "SMS_ROUTES_FILE": env.get("SMS_ROUTES_FILE") or str(instance / "sms_routes.yaml"),
        "INSTANCE_PATH": str(instance),
        "SPOOL_DIR": env.get("SPOOL_DIR") or None,  # inbound kept while the database is away
        # Mobile numbers (E.164, comma-separated) any organizer may send a broadcast's test to,
        # besides their own confirmed phone; set by whoever runs the server.
        "TEST_SEND_NUMBERS": env.get("TEST_SEND_NUMBERS") or "",
        "PRIVACY_RETENTION": env.get("PRIVACY_RETENTION") or "90d",  # the daily purge's age
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,  # GET /metrics; unset: no /metrics (404)
    }
    return settings


def _resolve_defaults(settings: dict[str, Any]) -> None:
    """Defaults that depend on other settings, applied after any overrides."""
    if not settings.get("SPOOL_DIR"):
        settings["SPOOL_DIR"] = str(Path(settings["INSTANCE_PATH"]) / "spool")
    if settings.get("QUIET_HOURS") is None:
        settings["QUIET_HOURS"] = "21:00-07:00" if settings["SMS_PROVIDER"] == "twilio" else "off"


def _parse(settings: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Check every setting, in the order the messages have always come, and hold it parsed."""
    # local: the channels import ConfigError from here
    from gateway.channels import PROVIDERS

    provider = settings["SMS_PROVIDER"]
    if provider not in PROVIDERS:
        raise ConfigError(f"SMS_PROVIDER={provider!r}: expected one of {', '.join(PROVIDERS)}")
    if provider == "africastalking":
        missing = [k for k in ("AT_USERNAME", "AT_API_KEY") if not settings.get(k)]
        if missing:
            raise ConfigError(f"SMS_PROVIDER=africastalking needs {' and '.join(missing)}")
    if provider == "android" and not settings.get("ANDROID_GATEWAY_PASSWORD"):
        raise ConfigError("SMS_PROVIDER=android needs ANDROID_GATEWAY_PASSWORD (and ANDROID_GATEWAY_URL)")
    for name in ("AT_API_BASE_URL", "ANDROID_GATEWAY_URL"):
        value = settings.get(name)
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{name}={value!r}: expected http(s)://host[:port][/path]")
    if settings.get("ANDROID_GATEWAY_URL"):
        check_plain_http("ANDROID_GATEWAY_URL", settings["ANDROID_GATEWAY_URL"])
    networks = _check_africastalking_webhooks(settings)
    if provider == "twilio":
        missing = [k for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not settings.get(k)]
        if missing:
            raise ConfigError(f"SMS_PROVIDER=twilio needs {' and '.join(missing)}")
        if not (settings.get("TWILIO_FROM_NUMBER") or settings.get("TWILIO_MESSAGING_SERVICE_SID")):
            raise ConfigError("SMS_PROVIDER=twilio needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    if settings["DEFAULT_COUNTRY"] not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"DEFAULT_COUNTRY={settings['DEFAULT_COUNTRY']!r}: "
                          "expected an ISO 3166 code such as MW or HN")
    numbers = _check_numbers(settings)
    rates, prices, quiet = _check_lists(settings)
    numbers_keys = _check_numbers_key(settings)
    _check_secret_key(settings)
    test_numbers = _check_test_send_numbers(settings)
    retention = _check_retention(settings)
    log_level = _check_log_level(settings)
    return Settings(
        instance_path=Path(settings["INSTANCE_PATH"]), database_url=str(settings["DATABASE_URL"]),
        redis_url=settings.get("REDIS_URL") or None, flows_dir=Path(settings["FLOWS_DIR"]),
        sms_routes_file=Path(settings["SMS_ROUTES_FILE"]), spool_dir=Path(settings["SPOOL_DIR"]),
        secret_key=settings.get("SECRET_KEY") or None, numbers_keys=numbers_keys,
        public_base_url=settings.get("PUBLIC_BASE_URL") or None, proxy_fix_hops=numbers["PROXY_FIX_HOPS"],
        log_level=log_level, org_name=settings["ORG_NAME"], default_country=settings["DEFAULT_COUNTRY"],
        default_language=settings["DEFAULT_LANGUAGE"], test_send_numbers=test_numbers,
        privacy_retention=retention, sms_provider=provider, sender_rate=numbers["SENDER_RATE"],
        sender_rates=rates, send_concurrency=numbers["SEND_CONCURRENCY"], sms_prices=prices,
        quiet_hours=quiet, sending_stale_seconds=numbers["SENDING_STALE_SECONDS"],
        twilio_account_sid=settings.get("TWILIO_ACCOUNT_SID") or None,
        twilio_auth_token=settings.get("TWILIO_AUTH_TOKEN") or None,
        twilio_from_number=settings.get("TWILIO_FROM_NUMBER") or None,
        twilio_messaging_service_sid=settings.get("TWILIO_MESSAGING_SERVICE_SID") or None,
        twilio_api_base_url=settings.get("TWILIO_API_BASE_URL") or None, twilio_timeout=numbers["TWILIO_TIMEOUT"],
        at_username=settings.get("AT_USERNAME") or None, at_api_key=settings.get("AT_API_KEY") or None,
        at_sender_id=settings.get("AT_SENDER_ID") or None, at_api_base_url=settings.get("AT_API_BASE_URL") or None,
        at_webhook_token=settings.get("AT_WEBHOOK_TOKEN") or None, at_allowed_ips=networks,
        at_timeout=numbers["AT_TIMEOUT"],
        android_gateway_url=settings.get("ANDROID_GATEWAY_URL") or None,
        android_gateway_login=settings.get("ANDROID_GATEWAY_LOGIN") or None,
        android_gateway_password=settings.get("ANDROID_GATEWAY_PASSWORD") or None,
        android_webhook_signing_key=settings.get("ANDROID_WEBHOOK_SIGNING_KEY") or None,
        android_timeout=numbers["ANDROID_TIMEOUT"], metrics_token=_check_metrics_token(settings),
        _config=MappingProxyType(dict(settings)), _environ=MappingProxyType(dict(environ)))


AT_MIN_TOKEN_CHARS = 32
MIN_METRICS_TOKEN = 16  # characters: a guessable token would open the queue's figures to anyone


def _check_metrics_token(settings: Mapping[str, Any]) -> str | None:
    """METRICS_TOKEN, long enough to be a secret; None when unset."""
    token = (settings.get("METRICS_TOKEN") or "").strip() or None
    if token and len(token) < MIN_METRICS_TOKEN:
        raise ConfigError(f"METRICS_TOKEN has {len(token)} characters; it needs at least {MIN_METRICS_TOKEN} "
                          "(generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def _check_africastalking_webhooks(settings: Mapping[str, Any]) -> tuple[Network, ...]:
    """AT_ALLOWED_IPS parses; the callback token is long enough to be a secret; no allow-list is warned about."""
    networks = tuple(allowed_ips(settings.get("AT_ALLOWED_IPS") or ""))
    token = settings.get("AT_WEBHOOK_TOKEN")
    if not token:
        return networks  # every Africa's Talking callback is refused
    if len(token) < AT_MIN_TOKEN_CHARS:
        raise ConfigError(f"AT_WEBHOOK_TOKEN has {len(token)} characters; it needs at least {AT_MIN_TOKEN_CHARS} "
                          "(generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not networks:
        # The token sits in the callback URL, so proxy and router logs hold it; whoever reads
        # one can post texts as any number (forged STOPs, reports, replies to premium numbers).
        logger.warning("SECURITY: AT_ALLOWED_IPS is not set: anyone who learns AT_WEBHOOK_TOKEN (it is in the "
                       "callback URL, so in proxy logs) can post texts as any number. Set AT_ALLOWED_IPS to the "
                       "addresses Africa's Talking calls from.")
    return networks


def check_plain_http(name: str, url: str) -> None:
    """Plain http to a phone only on the local network: its password and every text cross in clear."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return
    host = (parts.hostname or "").lower()
    try:
        address = ipaddress.ip_address(host)
        local = address.is_private or address.is_loopback or address.is_link_local
    except ValueError:
        local = host == "localhost" or host.endswith((".local", ".localhost"))
    if not local:
        raise ConfigError(f"{name}={url!r}: plain http to a phone off the local network sends its password and "
                          "every text in clear; use https:// (or the phone's address on the local network)")


def _check_retention(settings: Mapping[str, Any]) -> timedelta:
    """PRIVACY_RETENTION is an age the daily purge understands (90d, 12h, 30m)."""
    value = settings.get("PRIVACY_RETENTION") or "90d"
    age = parse_duration(value)
    if age is None:
        raise ConfigError(f"PRIVACY_RETENTION={value!r}: expected an age like 90d, 12h or 30m")
    return age


def _check_test_send_numbers(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """TEST_SEND_NUMBERS lists mobile numbers only: no short code, premium range or fixed line."""
    try:
        return tuple(parse_numbers(settings.get("TEST_SEND_NUMBERS"), settings["DEFAULT_COUNTRY"]))
    except ValueError as exc:
        raise ConfigError(f"TEST_SEND_NUMBERS: {exc}; expected mobile numbers, comma-separated, "
                          "e.g. +265991234567,+50499123456") from None


# Numeric settings: (name, must be above zero, whole number, default when the key is absent).
_NUMBERS: tuple[tuple[str, bool, bool, float], ...] = (
    ("TWILIO_TIMEOUT", True, False, 10), ("SENDER_RATE", True, False, 1), ("SENDING_STALE_SECONDS", False, True, 120),
    ("PROXY_FIX_HOPS", False, True, 0), ("SEND_CONCURRENCY", True, True, DEFAULT_SEND_CONCURRENCY),
    ("AT_TIMEOUT", True, False, 10), ("ANDROID_TIMEOUT", True, False, 10))


def _check_numbers(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Numeric settings in range: a zero rate or a negative timeout fails at start, not at send."""
    parsed: dict[str, Any] = {}
    for name, positive, whole, default in _NUMBERS:
        value = settings.get(name, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise ConfigError(f"{name}={value!r}: expected a {'positive' if positive else 'non-negative'} number")
        if whole and not number.is_integer():
            raise ConfigError(f"{name}={value!r}: expected a whole number, e.g. {int(default)}")
        parsed[name] = int(number) if whole else number
    return parsed


def _check_lists(settings: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float], tuple[time, time] | None]:
    """SENDER_RATES, SMS_PRICES and QUIET_HOURS parse, with sensible values."""
    try:
        rates = parse_rates(settings.get("SENDER_RATES"))
        if any(not sender or not (math.isfinite(r) and r > 0) for sender, r in rates.items()):
            raise ValueError
    except ValueError:
        raise ConfigError(f"SENDER_RATES={settings.get('SENDER_RATES')!r}: expected sender=segments per second, "
                          "comma-separated, e.g. +15005550006=1,MG0123=30") from None
    try:
        prices = parse_prices(settings.get("SMS_PRICES"))
        if any(not (c == "*" or (len(c) == 2 and c.isalpha())) or not (math.isfinite(p) and p >= 0)
               for c, p in prices.items()):
            raise ValueError
    except ValueError:
        raise ConfigError(f"SMS_PRICES={settings.get('SMS_PRICES')!r}: expected COUNTRY=price per segment, "
                          "comma-separated, e.g. MW=0.08,HN=0.07,*=0.05") from None
    try:
        quiet = parse_quiet_hours(settings.get("QUIET_HOURS"))
    except ValueError:
        raise ConfigError(f"QUIET_HOURS={settings.get('QUIET_HOURS')!r}: expected HH:MM-HH:MM "
                          "(e.g. 21:00-07:00) or off") from None
    return rates, prices, quiet


def _check_log_level(settings: Mapping[str, Any]) -> str:
    """LOG_LEVEL is a level the logging module knows by name."""
    value = settings.get("LOG_LEVEL", "INFO")
    level = str(value or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={value!r}: expected one of {', '.join(LOG_LEVELS)}")
    return level


def _check_numbers_key(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """NUMBERS_KEY is usable, and given wherever several processes or hosts must share it."""
    if settings.get("NUMBERS_KEY"):
        try:
            return tuple(parse_keys(settings["NUMBERS_KEY"]))
        except NumberKeyError as exc:
            raise ConfigError(f"NUMBERS_KEY: {exc}") from None
    if _shared(settings):
        # A key generated on one host would leave every other web process and worker unable to
        # read the numbers it stored.
        raise ConfigError("NUMBERS_KEY is required with SMS_PROVIDER=twilio (or another real provider) "
                          "or a PostgreSQL database: "
                          "phone numbers are encrypted with it, and every process must share it. Generate one "
                          "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return ()


def _shared(settings: Mapping[str, Any]) -> bool:
    """Several processes or hosts may serve this gateway: a real provider, or a PostgreSQL database."""
    return settings["SMS_PROVIDER"] != "console" or not str(settings["DATABASE_URL"]).startswith("sqlite")


def _check_secret_key(settings: Mapping[str, Any]) -> None:
    """SECRET_KEY is long enough, and given wherever several processes or hosts must share it."""
    key = settings.get("SECRET_KEY")
    if key:
        if len(key) < MIN_SECRET_KEY:
            raise ConfigError(f"SECRET_KEY: {len(key)} characters; it needs at least {MIN_SECRET_KEY}. Generate one "
                              "with: python3 -c 'import secrets; print(secrets.token_hex(32))'")
        return
    if _shared(settings):
        # A key generated into one host's instance/ would log users out whenever a request reaches
        # another host, and on an ephemeral disk at every restart.
        raise ConfigError("SECRET_KEY is required with SMS_PROVIDER=twilio (or another real provider) or a PostgreSQL "
                          "database: every web process must sign sessions with the same key. Generate one with: "
                          "python3 -c 'import secrets; print(secrets.token_hex(32))'")


def numbers_keys_for(settings: Settings) -> list[str]:
    """NUMBERS_KEY's secrets, newest first; on the embedded default, the one generated into instance/."""
    return list(settings.numbers_keys) or [_numbers_key(settings.instance_path)]


def _numbers_key(instance: Path) -> str:
    """instance/numbers_key, created owner-only on first run (the embedded default on one machine only)."""
    return secret_file(instance / "numbers_key", new_key)


def allowed_ips(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """AT_ALLOWED_IPS: '196.201.214.0/24,52.48.80.10' -> networks; a bad entry is a ConfigError."""
    networks = []
    for part in value.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(f"AT_ALLOWED_IPS: {part.strip()!r}: expected an IP address or network") from exc
    return networks


def secret_key_for(settings: Settings) -> str:
    """SECRET_KEY from the environment, else the one generated into instance/."""
    return settings.secret_key or _secret_key(settings.instance_path)
