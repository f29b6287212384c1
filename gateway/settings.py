"""Settings from the environment, under the names of the external contract (DESIGN.md)."""
from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

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


def load_settings(environ: Mapping[str, str] | None = None, instance: Path | None = None) -> dict[str, Any]:
    """All settings, from the environment with the documented defaults."""
    env = os.environ if environ is None else environ
    instance = instance or ROOT / "instance"
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
        "ANDROID_GATEWAY_URL": (env.get("ANDROID_GATEWAY_URL") or "").rstrip("/") or None,
        "ANDROID_GATEWAY_LOGIN": env.get("ANDROID_GATEWAY_LOGIN") or None,
        "ANDROID_GATEWAY_PASSWORD": env.get("ANDROID_GATEWAY_PASSWORD") or None,
        "ANDROID_WEBHOOK_SIGNING_KEY": env.get("ANDROID_WEBHOOK_SIGNING_KEY") or None,
        "SMS_ROUTES_FILE": env.get("SMS_ROUTES_FILE") or str(instance / "sms_routes.yaml"),
        "INSTANCE_PATH": str(instance),
        "SPOOL_DIR": env.get("SPOOL_DIR") or None,  # inbound kept while the database is away
        # Mobile numbers (E.164, comma-separated) any organizer may send a broadcast's test to,
        # besides their own confirmed phone; set by whoever runs the server.
        "TEST_SEND_NUMBERS": env.get("TEST_SEND_NUMBERS") or "",
        "PRIVACY_RETENTION": env.get("PRIVACY_RETENTION") or "90d",  # the daily purge's age
    }
    return settings


def resolve_defaults(settings: dict[str, Any]) -> None:
    """Defaults that depend on other settings, applied after any overrides."""
    if not settings.get("SPOOL_DIR"):
        settings["SPOOL_DIR"] = str(Path(settings["INSTANCE_PATH"]) / "spool")
    if settings.get("QUIET_HOURS") is None:
        settings["QUIET_HOURS"] = "21:00-07:00" if settings["SMS_PROVIDER"] == "twilio" else "off"


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse to start on a configuration that would fail at 2 a.m. instead of now."""
    from gateway.channels import PROVIDERS  # local: the channels import ConfigError from here

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
    _check_africastalking_webhooks(settings)
    if provider == "twilio":
        missing = [k for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not settings.get(k)]
        if missing:
            raise ConfigError(f"SMS_PROVIDER=twilio needs {' and '.join(missing)}")
        if not (settings.get("TWILIO_FROM_NUMBER") or settings.get("TWILIO_MESSAGING_SERVICE_SID")):
            raise ConfigError("SMS_PROVIDER=twilio needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    import phonenumbers  # local: only this check needs the region list

    if settings["DEFAULT_COUNTRY"] not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"DEFAULT_COUNTRY={settings['DEFAULT_COUNTRY']!r}: expected an ISO 3166 code such as MW or HN")
    _check_numbers(settings)
    _check_lists(settings)
    _check_numbers_key(settings)
    _check_secret_key(settings)
    _check_test_send_numbers(settings)
    _check_retention(settings)


AT_MIN_TOKEN_CHARS = 32


def _check_africastalking_webhooks(settings: Mapping[str, Any]) -> None:
    """The callback token is long enough to be a secret; no allow-list is warned about."""
    networks = allowed_ips(settings.get("AT_ALLOWED_IPS") or "")
    token = settings.get("AT_WEBHOOK_TOKEN")
    if not token:
        return  # every Africa's Talking callback is refused
    if len(token) < AT_MIN_TOKEN_CHARS:
        raise ConfigError(f"AT_WEBHOOK_TOKEN has {len(token)} characters; it needs at least {AT_MIN_TOKEN_CHARS} "
                          "(generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not networks:
        # The token sits in the callback URL, so proxy and router logs hold it; whoever reads
        # one can post texts as any number (forged STOPs, reports, replies to premium numbers).
        logger.warning("SECURITY: AT_ALLOWED_IPS is not set: anyone who learns AT_WEBHOOK_TOKEN (it is in the "
                       "callback URL, so in proxy logs) can post texts as any number. Set AT_ALLOWED_IPS to the "
                       "addresses Africa's Talking calls from.")


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


def _check_retention(settings: Mapping[str, Any]) -> None:
    """PRIVACY_RETENTION is an age the daily purge understands (90d, 12h, 30m)."""
    from gateway.core.flowfile import parse_duration  # local: loaded on demand like the other checks

    value = settings.get("PRIVACY_RETENTION") or "90d"
    if parse_duration(value) is None:
        raise ConfigError(f"PRIVACY_RETENTION={value!r}: expected an age like 90d, 12h or 30m")


def _check_test_send_numbers(settings: Mapping[str, Any]) -> None:
    """TEST_SEND_NUMBERS lists mobile numbers only: no short code, premium range or fixed line."""
    from gateway.outbound.oneoff import parse_numbers  # local: loaded on demand like the other checks

    try:
        parse_numbers(settings.get("TEST_SEND_NUMBERS"), settings["DEFAULT_COUNTRY"])
    except ValueError as exc:
        raise ConfigError(f"TEST_SEND_NUMBERS: {exc}; expected mobile numbers, comma-separated, "
                          "e.g. +265991234567,+50499123456") from None


def _check_numbers(settings: Mapping[str, Any]) -> None:
    """Numeric settings in range: a zero rate or a negative timeout fails at start, not at send."""
    for name, positive in (("TWILIO_TIMEOUT", True), ("SENDER_RATE", True), ("SENDING_STALE_SECONDS", False),
                           ("PROXY_FIX_HOPS", False), ("SEND_CONCURRENCY", True)):
        value = settings.get(name)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise ConfigError(f"{name}={value!r}: expected a {'positive' if positive else 'non-negative'} number")


def _check_lists(settings: Mapping[str, Any]) -> None:
    """SENDER_RATES, SMS_PRICES and QUIET_HOURS parse, with sensible values."""
    from gateway.core.compose import parse_prices, parse_quiet_hours  # local: pure modules, loaded on demand
    from gateway.outbound.pacing import parse_rates

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
        parse_quiet_hours(settings.get("QUIET_HOURS"))
    except ValueError:
        raise ConfigError(f"QUIET_HOURS={settings.get('QUIET_HOURS')!r}: expected HH:MM-HH:MM "
                          "(e.g. 21:00-07:00) or off") from None


def _check_numbers_key(settings: Mapping[str, Any]) -> None:
    """NUMBERS_KEY is usable, and given wherever several processes or hosts must share it."""
    from gateway.core.vault import NumberKeyError, parse_keys

    if settings.get("NUMBERS_KEY"):
        try:
            parse_keys(settings["NUMBERS_KEY"])
        except NumberKeyError as exc:
            raise ConfigError(f"NUMBERS_KEY: {exc}") from None
        return
    if _shared(settings):
        # A key generated on one host would leave every other web process and worker unable to
        # read the numbers it stored.
        raise ConfigError("NUMBERS_KEY is required with SMS_PROVIDER=twilio (or another real provider) or a PostgreSQL database: "
                          "phone numbers are encrypted with it, and every process must share it. Generate one "
                          "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")


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


def numbers_keys_for(settings: Mapping[str, Any]) -> list[str]:
    """NUMBERS_KEY's secrets, newest first; on the embedded default, the one generated into instance/."""
    from gateway.core.vault import instance_key, parse_keys

    if settings.get("NUMBERS_KEY"):
        return parse_keys(settings["NUMBERS_KEY"])
    return [instance_key(Path(settings["INSTANCE_PATH"]))]


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


def secret_key_for(settings: Mapping[str, Any]) -> str:
    """SECRET_KEY from the environment, else the one generated into instance/."""
    return settings.get("SECRET_KEY") or _secret_key(Path(settings["INSTANCE_PATH"]))
