"""The configured channels: one provider per channel name, the routes between them, each one's pace.

A channel is a way out and in: `twilio`, `africastalking`, `android` (the phone of the
ANDROID_GATEWAY_* settings), `console`, or a phone named in the routing file. Its name is what
Message.channel holds, so a reply goes back through the channel its supporter wrote to.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Mapping

from gateway.settings import ConfigError, check_plain_http
from gateway.channels.base import Provider
from gateway.core.routing import Routes, RoutesError, load_routes

logger = logging.getLogger(__name__)
SEEN_KEY = "gateway:channel-seen"  # Redis hash: channel name -> unix time of its last contact
CLOUD_URL = "https://api.sms-gate.app/3rdparty/v1"


@dataclass
class Channels:
    """Providers by channel name, and which one sends to a number."""

    default: str
    providers: dict[str, Provider]
    routes: Routes
    senders: dict[str, str] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # by sender, for the pacer
    countries: dict[str, str] = field(default_factory=dict)  # for local-format numbers a phone reports
    phones: list[str] = field(default_factory=list)

    def provider(self, name: str) -> Provider | None:
        """The provider of a channel, or None when the channel is not configured (any more)."""
        return self.providers.get(name)

    def route(self, number: str) -> str:
        """The channel that sends a new message (not a reply) to this number."""
        return self.routes.channel_for(number)

    def sender(self, name: str) -> str:
        """The key a channel is paced by: its number or sender id, or the phone's name."""
        return self.senders.get(name, name)


def _secret(settings: Mapping[str, Any], var: str | None) -> str | None:
    # Settings first (the test seam), then the process environment.
    return (settings.get(var) or os.environ.get(var) or None) if var else None


def build(settings: Mapping[str, Any], twilio: Any | None, redis: Any) -> Channels:
    """Every configured channel; a route to a channel that cannot work stops the start here."""
    from gateway.channels.africastalking import AfricasTalkingProvider
    from gateway.channels.android import AndroidProvider
    from gateway.channels.console import ConsoleProvider

    path = settings.get("SMS_ROUTES_FILE")
    default = settings["SMS_PROVIDER"]
    try:
        routes = load_routes(path, default)
    except RoutesError as exc:
        raise ConfigError(str(exc)) from exc
    providers: dict[str, Provider] = {"console": ConsoleProvider()}
    senders = {"twilio": settings.get("TWILIO_MESSAGING_SERVICE_SID") or settings.get("TWILIO_FROM_NUMBER") or "twilio",
               "africastalking": settings.get("AT_SENDER_ID") or "africastalking"}
    if twilio is not None:
        providers["twilio"] = twilio
    if settings.get("AT_USERNAME") and settings.get("AT_API_KEY"):
        providers["africastalking"] = AfricasTalkingProvider(
            settings["AT_USERNAME"], settings["AT_API_KEY"], sender_id=settings.get("AT_SENDER_ID"),
            api_base_url=settings.get("AT_API_BASE_URL"), timeout=float(settings.get("AT_TIMEOUT") or 10))

    def seen(name: str) -> Any:
        return lambda: mark_seen(redis, name)

    phones, countries = [], {}
    keys: dict[str, tuple[str, str]] = {}  # signing key -> (phone, the setting it came from)
    specs = dict(routes.channels)
    if settings.get("ANDROID_GATEWAY_PASSWORD") and "android" not in specs:
        from gateway.core.routing import ChannelSpec

        specs["android"] = ChannelSpec(name="android", type="android")
    for name, spec in specs.items():
        if spec.type != "android":
            continue
        password = _secret(settings, spec.password_env) or settings.get("ANDROID_GATEWAY_PASSWORD")
        if not password:
            where = f"{path}: channels.{name}"
            raise ConfigError(f"{where}: no password: set {spec.password_env or 'ANDROID_GATEWAY_PASSWORD'}")
        if spec.url:
            check_plain_http(f"{path}: channels.{name}.url", spec.url)
        key_var = spec.signing_key_env if _secret(settings, spec.signing_key_env) else "ANDROID_WEBHOOK_SIGNING_KEY"
        key = _secret(settings, spec.signing_key_env) or settings.get("ANDROID_WEBHOOK_SIGNING_KEY")
        if key:
            # The app signs the body and timestamp, not the phone it is: with one key for two
            # phones, an event signed by one could be replayed to the other's URL and be taken.
            if key in keys:
                raise ConfigError(f"{path}: channels.{name} and channels.{keys[key][0]} share one webhook signing key "
                                  f"({key_var} and {keys[key][1]}): give each phone its own key (signing_key_env)")
            keys[key] = (name, key_var)
        providers[name] = AndroidProvider(
            name, spec.url or settings.get("ANDROID_GATEWAY_URL") or CLOUD_URL,
            spec.login or settings.get("ANDROID_GATEWAY_LOGIN"), password,
            signing_key=key, sim=spec.sim, timeout=float(settings.get("ANDROID_TIMEOUT") or 10), on_contact=seen(name))
        phones.append(name)
        if spec.country:
            countries[name] = spec.country
    for name in sorted(routes.names() | {default}):
        if name not in providers:
            raise ConfigError(f"{path or 'SMS_PROVIDER'}: channel {name!r} is routed to but not configured "
                              f"({_needs(name, routes)})")
    rates = {senders.get(n, n): s.rate for n, s in routes.channels.items() if s.rate is not None}
    return Channels(default, providers, routes, senders, rates, countries, phones)


def _needs(name: str, routes: Routes) -> str:
    kind = routes.channels[name].type if name in routes.channels else name
    return {"twilio": "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            "africastalking": "set AT_USERNAME and AT_API_KEY",
            "android": "set ANDROID_GATEWAY_PASSWORD (and ANDROID_GATEWAY_URL)"}.get(kind, "see the README")


def mark_seen(redis: Any, name: str, when: float | None = None) -> None:
    """Record that a channel was heard from (a webhook, or an API call that worked)."""
    redis.hset(SEEN_KEY, name, f"{when if when is not None else time.time():.3f}")


def last_seen(redis: Any, names: list[str]) -> dict[str, datetime | None]:
    """When each channel was last heard from (UTC), None when never."""
    raw = redis.hgetall(SEEN_KEY) or {}
    found = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in raw.items()}
    return {n: datetime.fromtimestamp(found[n], UTC) if n in found else None for n in names}
