"""Pure: loads gazetteers (flows/places/*.yaml) and matches texted place names to them."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from gateway.core.text import words

# Fuzzy matching is deliberately conservative: a wrong district is worse than asking again.
FUZZY_THRESHOLD = 0.8  # difflib ratio; one typo in a 5-letter name scores exactly 0.8
FIRST_LETTER_EXEMPT = 0.92  # above this a differing first letter is tolerated ("holancho")
TIE_MARGIN = 0.05  # two different places scoring this close is ambiguous, not a guess
MIN_FUZZY_QUERY = 4  # shorter texted words ("no", "si", "ine", "ayi", "1") only match exactly
MIN_FUZZY_NAME = 5  # shorter names (Dowa, Neno, Yoro) only match exactly
# A 4-letter word may be one letter off ("zomb", 0.89) but not two ("sala" ~ Salima, 0.8).
SHORT_QUERY_THRESHOLD = 0.85
MAX_PREFIX_TOKENS = 4
# Everyday words that sit one typo away from a place name; they only ever match exactly.
# Found by running SMS vocabulary (English, Chichewa, Spanish) through the matcher; add more here.
NEVER_FUZZY = frozenset({
    "mwana", "mimba", "chikwama", "nyengo",  # Chichewa: child, pregnancy, bag, season
    "colonia", "colonias", "colono", "colonos", "valles", "copa", "copas", "corte",
    "lempiras", "atlantico", "esperanza",  # Spanish (lempiras: the currency)
    "vale", "util",  # Spanish: OK, useful
    "machine", "colony", "valley", "atlantic",  # English
})

_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_TOP_KEYS = {"gazetteer", "country", "timezone", "places"}
_PLACE_KEYS = {"name", "region", "aliases"}


class GazetteerError(ValueError):
    """A gazetteer file is broken; the message names the file and the key."""


@dataclass(frozen=True)
class Place:
    """One matchable place (a district, department, ...) from a gazetteer."""

    name: str
    country: str
    gazetteer: str
    timezone: str
    region: str | None
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Gazetteer:
    """One gazetteer file: a country's places and their shared timezone."""

    name: str
    country: str
    timezone: str
    places: tuple[Place, ...]


# --------------------------------------------------------------------------- loading


def _fail(path: str | Path, key: str, problem: str) -> GazetteerError:
    """Build an error naming the file and the key."""
    return GazetteerError(f"{path}: {key}: {problem}")


def _required_str(path: str | Path, raw: dict[str, Any], key: str, where: str) -> str:
    """A required non-empty string value."""
    if key not in raw or raw[key] is None:
        raise _fail(path, where, "missing")
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _load_place(path: str | Path, raw: Any, index: int, gazetteer: str, country: str,
                timezone: str, seen: dict[str, str]) -> Place:
    """Validate one entry of `places` and record its folded names in `seen`."""
    where = f"places[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, "expected a mapping with at least 'name'")
    for key in raw:
        if key not in _PLACE_KEYS:
            allowed = ", ".join(sorted(_PLACE_KEYS))
            raise _fail(path, f"{where}.{key}", f"unknown key (allowed: {allowed})")
    name = _required_str(path, raw, "name", f"{where}.name")
    region = raw.get("region")
    if region is not None and (not isinstance(region, str) or not region.strip()):
        raise _fail(path, f"{where}.region", f"expected a non-empty string, got {region!r}")
    aliases_raw = raw.get("aliases") or []
    if not isinstance(aliases_raw, list):
        raise _fail(path, f"{where}.aliases", "expected a list of strings")
    aliases: list[str] = []
    for j, alias in enumerate(aliases_raw):
        if not isinstance(alias, str) or not alias.strip():
            raise _fail(path, f"{where}.aliases[{j}]", f"expected a non-empty string, got {alias!r}")
        aliases.append(alias.strip())
    labelled = [(f"{where}.name", name)] + [(f"{where}.aliases[{j}]", a) for j, a in enumerate(aliases)]
    for key, text in labelled:
        compact = "".join(words(text))
        if not compact:
            raise _fail(path, key, f"{text!r} has no letters or digits to match on")
        if compact in seen:
            raise _fail(path, key, f"duplicate: {text!r} folds to the same as {seen[compact]}")
        seen[compact] = key
    return Place(name=name, country=country, gazetteer=gazetteer, timezone=timezone,
                 region=region.strip() if isinstance(region, str) else None, aliases=tuple(aliases))


def load_gazetteer(path: str | Path) -> Gazetteer:
    """Load and validate one gazetteer YAML file."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise GazetteerError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise GazetteerError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise GazetteerError(f"{path}: expected a mapping with gazetteer, country, timezone, places")
    for key in raw:
        if key not in _TOP_KEYS:
            raise _fail(path, str(key), f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    name = _required_str(path, raw, "gazetteer", "gazetteer")
    country = _required_str(path, raw, "country", "country")
    if not _COUNTRY.match(country):
        raise _fail(path, "country", f"expected a 2-letter country code like 'MW', got {country!r}")
    country = country.upper()
    timezone = _required_str(path, raw, "timezone", "timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(path, "timezone",
                    f"unknown timezone {timezone!r} (expected e.g. 'Africa/Blantyre')") from None
    places_raw = raw.get("places")
    if places_raw is None:
        raise _fail(path, "places", "missing")
    if not isinstance(places_raw, list) or not places_raw:
        raise _fail(path, "places", "expected a non-empty list of places")
    seen: dict[str, str] = {}
    places = tuple(_load_place(path, p, i, name, country, timezone, seen)
                   for i, p in enumerate(places_raw))
    return Gazetteer(name=name, country=country, timezone=timezone, places=places)


def load_gazetteers(directory: str | Path) -> dict[str, Gazetteer]:
    """Load every *.yaml gazetteer in a directory, keyed by gazetteer name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise GazetteerError(f"{directory}: not a directory")
    loaded: dict[str, Gazetteer] = {}
    origin: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        gazetteer = load_gazetteer(path)
        if gazetteer.name in loaded:
            raise _fail(path, "gazetteer",
                        f"duplicate name {gazetteer.name!r}, also used by {origin[gazetteer.name]}")
        loaded[gazetteer.name] = gazetteer
        origin[gazetteer.name] = path
    return loaded


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Query:
    """A text as matched: its folded words and their space-free join."""

    words: tuple[str, ...]
    compact: str


def _query(text: str) -> _Query:
    """Fold a text for matching."""
    folded = tuple(words(text))
    return _Query(folded, "".join(folded))


@lru_cache(maxsize=4096)
def _place_keys(place: Place) -> tuple[_Query, ...]:
    """Folded forms of a place's name and aliases."""
    keys = {_query(t).compact: _query(t) for t in (place.name, *place.aliases)}
    return tuple(keys.values())


def _identity(place: Place) -> tuple[str, str]:
    """Places with the same country and folded name are the same place."""
    return place.country, _query(place.name).compact


def _word_score(query: str, key: str) -> float:
    """difflib ratio of two folded words, or 0 when they are too short, too common or too far apart."""
    if query == key:
        return 1.0
    if (len(query) < MIN_FUZZY_QUERY or len(key) < MIN_FUZZY_NAME or query in NEVER_FUZZY
            or not any(c.isalpha() for c in query)):
        return 0.0
    matcher = SequenceMatcher(None, query, key, autojunk=False)
    if matcher.real_quick_ratio() < FUZZY_THRESHOLD or matcher.quick_ratio() < FUZZY_THRESHOLD:
        return 0.0
    score = matcher.ratio()
    threshold = SHORT_QUERY_THRESHOLD if len(query) < MIN_FUZZY_NAME else FUZZY_THRESHOLD
    if score < threshold or (query[0] != key[0] and score < FIRST_LETTER_EXEMPT):
        return 0.0
    return score


def _fuzzy_score(query: _Query, key: _Query) -> float:
    """How well a query matches one name or alias, 0 when it does not.

    One word is compared with the key's spaces removed ("nkatabay" ~ "Nkhata Bay").
    Several words must line up one to one with the key's words, each exact or a
    close typo, so that trailing or leading everyday words never join a match.
    """
    if len(query.words) == 1:
        return _word_score(query.compact, key.compact)
    if len(query.words) != len(key.words):
        return 0.0
    if not all(_word_score(q, k) for q, k in zip(query.words, key.words, strict=True)):
        return 0.0
    return SequenceMatcher(None, query.compact, key.compact, autojunk=False).ratio()


def _scores(query: _Query, places: Iterable[Place],
            fuzzy: bool) -> dict[tuple[str, str], tuple[float, Place]]:
    """Best score per distinct place (1.0 for an exact match), only those that pass."""
    best: dict[tuple[str, str], tuple[float, Place]] = {}
    for place in places:
        score = 0.0
        for key in _place_keys(place):
            if key.compact == query.compact:
                score = 1.0
                break
            if fuzzy:
                score = max(score, _fuzzy_score(query, key))
        if score:
            ident = _identity(place)
            if ident not in best or score > best[ident][0]:
                best[ident] = (score, place)
    return best


def _pick(scored: dict[tuple[str, str], tuple[float, Place]]) -> tuple[Place, float] | None:
    """The top place, or None when nothing scored or a different place is within the tie margin."""
    if not scored:
        return None
    ranked = sorted(scored.values(), key=lambda sp: sp[0], reverse=True)
    top_score, top = ranked[0]
    if len(ranked) > 1 and ranked[1][0] >= top_score - TIE_MARGIN:
        return None
    return top, top_score


def _match(query: _Query, gazetteers: Sequence[Gazetteer], prefer_country: str | None,
           allow_fuzzy: bool) -> tuple[Place, float] | None:
    """Exact then fuzzy; each stage tries the preferred country first, then every gazetteer."""
    if not query.compact:
        return None
    everything = [p for g in gazetteers for p in g.places]
    preferred: list[Place] = []
    if prefer_country:
        wanted = prefer_country.strip().upper()
        preferred = [p for g in gazetteers if g.country == wanted for p in g.places]
    for fuzzy in ((False, True) if allow_fuzzy else (False,)):
        for pool in (preferred, everything):
            if pool:
                picked = _pick(_scores(query, pool, fuzzy))
                if picked:
                    return picked
    return None


def match_place(text: str, gazetteers: Iterable[Gazetteer],
                prefer_country: str | None = None) -> Place | None:
    """The place a text names, tolerating typos and spacing; None if unknown or ambiguous."""
    result = _match(_query(text), list(gazetteers), prefer_country, allow_fuzzy=True)
    return result[0] if result else None


def match_place_prefix(tokens: Sequence[str], gazetteers: Iterable[Gazetteer],
                       prefer_country: str | None = None) -> tuple[Place, int] | None:
    """Longest run of leading tokens (up to 4) that names a place; returns the place and how many tokens it used."""
    gazetteers = list(gazetteers)
    runs = [(n, _query(" ".join(tokens[:n]))) for n in range(min(MAX_PREFIX_TOKENS, len(tokens)), 0, -1)]
    for n, query in runs:  # the longest exact run wins
        exact = _match(query, gazetteers, prefer_country, allow_fuzzy=False)
        if exact:
            return exact[0], n
    best: tuple[Place, int, float] | None = None
    for n, query in runs:  # then the closest fuzzy run; on equal scores the longer run
        found = _match(query, gazetteers, prefer_country, allow_fuzzy=True)
        if found and (best is None or found[1] > best[2]):
            best = (found[0], n, found[1])
    return (best[0], best[1]) if best else None


def find_place(name: str, gazetteers: Iterable[Gazetteer]) -> Place | None:
    """The place whose name or alias folds exactly to `name` (no typo tolerance), else None."""
    compact = _query(name).compact
    if not compact:
        return None
    for gazetteer in gazetteers:
        for place in gazetteer.places:
            if any(key.compact == compact for key in _place_keys(place)):
                return place
    return None
