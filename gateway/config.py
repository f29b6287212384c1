"""Settings from the environment, under the names of the external contract (DESIGN.md)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to do."""


def _secret_key(instance: Path) -> str:
    """Read instance/secret_key, creating it on first run so sessions survive restarts."""
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// and postgresql:// URLs (as hosts hand them out)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


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
        "TWILIO_TIMEOUT": float(env.get("TWILIO_TIMEOUT") or 10),  # seconds; a send past it is ambiguous
        "PUBLIC_BASE_URL": (env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "DEFAULT_COUNTRY": (env.get("DEFAULT_COUNTRY") or "MW").upper(),
        "DEFAULT_LANGUAGE": env.get("DEFAULT_LANGUAGE") or "en",
        "ORG_NAME": env.get("ORG_NAME") or "Our Network",
        "FLOWS_DIR": env.get("FLOWS_DIR") or str(ROOT / "flows"),
        "PROXY_FIX_HOPS": int(env.get("PROXY_FIX_HOPS") or 0),
        "SENDER_RATE": float(env.get("SENDER_RATE") or 1),  # segments/s: Twilio's long-code default
        "SENDER_RATES": env.get("SENDER_RATES") or "",  # per sender: "+15005550006=1,MG...=30"
        "SMS_PRICES": env.get("SMS_PRICES") or "*=0.05",  # price per segment by country
        # Local time of the recipient's place. The console provider reaches no phone, so a trial
        # install sends at any hour unless QUIET_HOURS is set.
        "QUIET_HOURS": env.get("QUIET_HOURS") or None,
        "SENDING_STALE_SECONDS": int(env.get("SENDING_STALE_SECONDS") or 120),
        "INSTANCE_PATH": str(instance),
        "SPOOL_DIR": env.get("SPOOL_DIR") or None,  # inbound kept while the database is away
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
    provider = settings["SMS_PROVIDER"]
    if provider not in ("twilio", "console"):
        raise ConfigError(f"SMS_PROVIDER={provider!r}: expected 'twilio' or 'console'")
    if provider == "twilio":
        missing = [k for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not settings.get(k)]
        if missing:
            raise ConfigError(f"SMS_PROVIDER=twilio needs {' and '.join(missing)}")
        if not (settings.get("TWILIO_FROM_NUMBER") or settings.get("TWILIO_MESSAGING_SERVICE_SID")):
            raise ConfigError("SMS_PROVIDER=twilio needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    import phonenumbers  # local: only this check needs the region list

    if settings["DEFAULT_COUNTRY"] not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"DEFAULT_COUNTRY={settings['DEFAULT_COUNTRY']!r}: expected an ISO 3166 code such as MW or HN")


def secret_key_for(settings: Mapping[str, Any]) -> str:
    """SECRET_KEY from the environment, else the one generated into instance/."""
    return settings.get("SECRET_KEY") or _secret_key(Path(settings["INSTANCE_PATH"]))
