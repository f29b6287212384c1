"""Pure: which channel sends to a number, from one YAML routing file.

    channels:                    # phones and rates; built-in channels need no entry
      phone-tnm: {type: android, url: "http://192.168.1.20:8080", password_env: PHONE_TNM_PASSWORD, rate: 0.2}
      africastalking: {rate: 10}
    routes:                      # the longest matching prefix wins, then the country
      - {prefix: "+26588", via: phone-tnm}
      - {country: MW, via: africastalking}
      - {country: HN, via: [phone-hn-1, phone-hn-2]}     # several phones share the load
    default: twilio
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

BUILTIN = ("twilio", "africastalking", "android", "console")
TYPES = ("twilio", "africastalking", "android", "console")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,19}$")  # Message.channel holds 20 characters
_CHANNEL_KEYS = {"type", "url", "login", "password_env", "signing_key_env", "rate", "sim", "country"}


class RoutesError(ValueError):
    """The routing file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class ChannelSpec:
    """One channel as the routing file describes it (credentials are read from the environment)."""

    name: str
    type: str
    rate: float | None = None  # segments per second; None: SENDER_RATE
    url: str | None = None
    login: str | None = None
    password_env: str | None = None
    signing_key_env: str | None = None
    sim: int | None = None
    country: str | None = None  # for local-format numbers a phone reports


@dataclass(frozen=True)
class Rule:
    """Numbers starting with `prefix` (E.164), or in `country`, go through one of `via`."""

    via: tuple[str, ...]
    prefix: str | None = None
    country: str | None = None


@dataclass
class Routes:
    """The channels and the rules; `channel_for` answers for one number."""

    default: tuple[str, ...]
    channels: dict[str, ChannelSpec] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)

    def channel_for(self, number: str) -> str:
        """The channel that sends to this E.164 number (or short code)."""
        prefixed = [r for r in self.rules if r.prefix and number.startswith(r.prefix)]
        if prefixed:
            return _pick(max(prefixed, key=lambda r: len(r.prefix or "")).via, number)
        country = _country(number)
        for rule in self.rules:
            if rule.country and rule.country == country:
                return _pick(rule.via, number)
        return _pick(self.default, number)

    def names(self) -> set[str]:
        """Every channel a rule or the default can choose."""
        return set(self.default) | {v for r in self.rules for v in r.via}


def _pick(via: tuple[str, ...], number: str) -> str:
    # One number always lands on the same phone: its supporter sees one sender, and a reply
    # comes back to the SIM that wrote. Different numbers spread evenly over the phones.
    return via[zlib.crc32(number.encode()) % len(via)] if len(via) > 1 else via[0]


def _country(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None


def default_routes(default: str) -> Routes:
    """Everything through one channel: what an absent routing file means."""
    return Routes(default=(default,))


def load_routes(path: str | Path | None, default: str) -> Routes:
    """Read the routing file; an absent file sends everything through `default`."""
    if not path or not Path(path).exists():
        return default_routes(default)
    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RoutesError(f"{where}: not valid YAML: {exc}") from exc
    return parse_routes(data, default, where)


def parse_routes(data: Any, default: str, where: str = "routes") -> Routes:
    """Routes from the file's parsed YAML; every problem names the file and the key."""
    if not isinstance(data, dict):
        raise RoutesError(f"{where}: expected a mapping with channels, routes and default")
    unknown = set(data) - {"channels", "routes", "default"}
    if unknown:
        raise RoutesError(f"{where}: unknown key {min(unknown)!r} (expected channels, routes, default)")
    if not isinstance(data.get("channels") or {}, dict):
        raise RoutesError(f"{where}: channels: expected a mapping of channel name to settings")
    channels = {name: _channel(name, spec, f"{where}: channels.{name}")
                for name, spec in (data.get("channels") or {}).items()}
    known = set(BUILTIN) | set(channels)
    routes = Routes(default=_via(data.get("default", default), known, f"{where}: default"), channels=channels)
    rules = data.get("routes") or []
    if not isinstance(rules, list):
        raise RoutesError(f"{where}: routes: expected a list of {{prefix or country, via}}")
    for i, rule in enumerate(rules):
        key = f"{where}: routes[{i}]"
        if not isinstance(rule, dict) or set(rule) - {"prefix", "country", "via"} or "via" not in rule:
            raise RoutesError(f"{key}: expected {{prefix: \"+26588\", via: NAME}} or {{country: MW, via: NAME}}")
        prefix, country = rule.get("prefix"), rule.get("country")
        if (prefix is None) == (country is None):
            raise RoutesError(f"{key}: give exactly one of prefix or country")
        if prefix is not None and not re.fullmatch(r"\+\d{1,14}", str(prefix)):
            raise RoutesError(f"{key}.prefix: {prefix!r}: expected + and digits, e.g. \"+26588\" (quote it)")
        if country is not None and str(country).upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise RoutesError(f"{key}.country: {country!r}: expected an ISO 3166 code such as MW or HN")
        routes.rules.append(Rule(via=_via(rule["via"], known, f"{key}.via"),
                                 prefix=str(prefix) if prefix is not None else None,
                                 country=str(country).upper() if country is not None else None))
    return routes


def _via(value: Any, known: set[str], key: str) -> tuple[str, ...]:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise RoutesError(f"{key}: expected a channel name or a list of them")
    for name in names:
        if name not in known:
            raise RoutesError(f"{key}: no channel {name!r} (known: {', '.join(sorted(known))})")
    return tuple(names)


def _channel(name: Any, spec: Any, key: str) -> ChannelSpec:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RoutesError(f"{key}: a channel name is 1-20 lowercase letters, digits, - or _")
    spec = spec or {}
    if not isinstance(spec, dict):
        raise RoutesError(f"{key}: expected a mapping")
    unknown = set(spec) - _CHANNEL_KEYS
    if unknown:
        raise RoutesError(f"{key}: unknown key {min(unknown)!r} (expected {', '.join(sorted(_CHANNEL_KEYS))})")
    kind = spec.get("type", name if name in BUILTIN else None)
    if kind not in TYPES:
        raise RoutesError(f"{key}.type: {kind!r}: expected one of {', '.join(TYPES)}")
    if name in BUILTIN and kind != name:
        raise RoutesError(f"{key}.type: the built-in channel {name!r} cannot change type")
    rate = spec.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
        raise RoutesError(f"{key}.rate: {rate!r}: expected segments per second, a number above 0")
    sim = spec.get("sim")
    if sim is not None and sim not in (1, 2, 3):
        raise RoutesError(f"{key}.sim: {sim!r}: expected 1, 2 or 3")
    url = spec.get("url")
    if url is not None and not re.match(r"^https?://[^/\s]+", str(url)):
        raise RoutesError(f"{key}.url: {url!r}: expected http(s)://host[:port][/path]")
    country = spec.get("country")
    if country is not None and str(country).upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise RoutesError(f"{key}.country: {country!r}: expected an ISO 3166 code such as MW or HN")
    if kind != "android" and set(spec) & {"url", "login", "password_env", "signing_key_env", "sim"}:
        raise RoutesError(f"{key}: url, login, password_env, signing_key_env and sim are for android phones")
    return ChannelSpec(name=name, type=kind, rate=float(rate) if rate is not None else None,
                       url=str(url) if url else None, login=spec.get("login"),
                       password_env=spec.get("password_env"), signing_key_env=spec.get("signing_key_env"),
                       sim=sim, country=str(country).upper() if country else None)
