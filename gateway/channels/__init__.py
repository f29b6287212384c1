"""The configured channels: one provider per channel name, the routes between them, each one's pace.

A channel is a way out and in: `twilio`, `africastalking`, `android` (the phone of the
ANDROID_GATEWAY_* settings), `console`, or a phone named in the routing file. Its name is what
Message.channel holds, so a reply goes back through the channel its supporter wrote to.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from gateway.channels.africastalking import AfricasTalkingProvider
from gateway.channels.android import AndroidProvider
from gateway.channels.base import Provider
from gateway.channels.console import ConsoleProvider
from gateway.channels.twilio import TwilioProvider
from gateway.core.routing import ChannelSpec, Routes, RoutesError, load_routes
from gateway.settings import ConfigError, Settings, check_plain_http

logger = logging.getLogger(__name__)
# Every kind of channel, by the name SMS_PROVIDER and the routing file's `type` use. The webhooks
# of each are in gateway/channels/hooks/ (WEBHOOKS, keyed by these names).
# core/routing.py keeps its own copy of the names (BUILTIN, TYPES): it stays free of the SDKs.
PROVIDERS: dict[str, type] = {"twilio": TwilioProvider, "console": ConsoleProvider,
                              "africastalking": AfricasTalkingProvider, "android": AndroidProvider}
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


def _twilio(settings: Settings) -> TwilioProvider | None:
    """Twilio when its credentials are set (it also checks the Twilio webhooks' signatures)."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    return TwilioProvider(settings.twilio_account_sid, settings.twilio_auth_token,
                          from_number=settings.twilio_from_number,
                          messaging_service_sid=settings.twilio_messaging_service_sid,
                          api_base_url=settings.twilio_api_base_url, timeout=settings.twilio_timeout)


def build(settings: Settings, redis: Any) -> Channels:
    """Every configured channel; a route to a channel that cannot work stops the start here."""
    twilio = _twilio(settings)
    path = str(settings.sms_routes_file)
    default = settings.sms_provider
    try:
        routes = load_routes(path, default)
    except RoutesError as exc:
        raise ConfigError(str(exc)) from exc
    providers: dict[str, Provider] = {"console": ConsoleProvider()}
    senders = {"twilio": settings.twilio_messaging_service_sid or settings.twilio_from_number or "twilio",
               "africastalking": settings.at_sender_id or "africastalking"}
    if twilio is not None:
        providers["twilio"] = twilio
    if settings.at_username and settings.at_api_key:
        providers["africastalking"] = AfricasTalkingProvider(
            settings.at_username, settings.at_api_key, sender_id=settings.at_sender_id,
            api_base_url=settings.at_api_base_url, timeout=settings.at_timeout)

    def seen(name: str) -> Any:
        return lambda: mark_seen(redis, name)

    phones, countries = [], {}
    keys: dict[str, tuple[str, str | None]] = {}  # signing key -> (phone, the setting it came from)
    specs = dict(routes.channels)
    if settings.android_gateway_password and "android" not in specs:
        specs["android"] = ChannelSpec(name="android", type="android")
    for name, spec in specs.items():
        if spec.type != "android":
            continue
        password = settings.secret(spec.password_env) or settings.android_gateway_password
        if not password:
            where = f"{path}: channels.{name}"
            raise ConfigError(f"{where}: no password: set {spec.password_env or 'ANDROID_GATEWAY_PASSWORD'}")
        if spec.url:
            check_plain_http(f"{path}: channels.{name}.url", spec.url)
        key_var = spec.signing_key_env if settings.secret(spec.signing_key_env) else "ANDROID_WEBHOOK_SIGNING_KEY"
        key = settings.secret(spec.signing_key_env) or settings.android_webhook_signing_key
        if key:
            # The app signs the body and timestamp, not the phone it is: with one key for two
            # phones, an event signed by one could be replayed to the other's URL and be taken.
            if key in keys:
                raise ConfigError(f"{path}: channels.{name} and channels.{keys[key][0]} share one webhook signing key "
                                  f"({key_var} and {keys[key][1]}): give each phone its own key (signing_key_env)")
            keys[key] = (name, key_var)
        providers[name] = AndroidProvider(
            name, spec.url or settings.android_gateway_url or CLOUD_URL,
            spec.login or settings.android_gateway_login, password,
            signing_key=key, sim=spec.sim, timeout=settings.android_timeout, on_contact=seen(name))
        phones.append(name)
        if spec.country:
            countries[name] = spec.country
    for name in sorted(routes.names() | {default}):
        if name not in providers:
            raise ConfigError(f"{path or 'SMS_PROVIDER'}: channel {name!r} is routed to but not configured "
                              f"({_needs(name, routes)})")
    rates = {senders.get(n, n): s.rate for n, s in routes.channels.items() if s.rate is not None}
    return Channels(default, providers, routes, senders, rates, countries, phones)


def sender_name() -> str:
    """The sender a broadcast is paced by: the messaging service, the number, or the channel's name."""
    svc = current_app.extensions["gateway"]
    name: str = svc.provider.name
    settings: Settings = svc.settings
    if name == "twilio":  # Settings.from_env refuses Twilio with neither
        return settings.twilio_messaging_service_sid or settings.twilio_from_number or name
    return name


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
