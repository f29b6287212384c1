"""Pure: the case rules in flows/cases.yaml (when reports become a case, how long an official has).

    defaults:
      window: 14d          # reports this far apart count together
      threshold: 2         # this many matching reports open a case
      counts: [no, partly] # which answers to "did it arrive?" count
      acknowledge_days: [5, 5, 7]   # days to acknowledge at rung 1, 2, 3 (the last repeats)
    services:
      clinic: {threshold: 2, acknowledge_days: [3, 5, 7]}

Errors name the file and the key, like the flow loader's.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.core.flowfile import FlowError, _read_yaml, parse_duration

DELIVERED = ("yes", "no", "partly")
_KEYS = {"window", "threshold", "counts", "acknowledge_days"}


@dataclass(frozen=True)
class Rule:
    """One service's rule."""

    window: timedelta = timedelta(days=14)
    threshold: int = 2
    counts: frozenset[str] = frozenset({"no", "partly"})
    acknowledge_days: tuple[int, ...] = (5,)

    def days_at(self, level: int) -> int:
        """Days the official at this rung has to acknowledge (the last number repeats)."""
        return self.acknowledge_days[min(max(level, 1), len(self.acknowledge_days)) - 1]


@dataclass(frozen=True)
class CaseRules:
    default: Rule = field(default_factory=Rule)
    services: dict[str, Rule] = field(default_factory=dict)

    def for_service(self, service: str) -> Rule:
        return self.services.get(service, self.default)


def _rule(path: str, key: str, raw: Any, base: Rule, errors: list[str]) -> Rule:
    if not isinstance(raw, dict):
        errors.append(f"{path}: {key}: expected a mapping of {', '.join(sorted(_KEYS))}")
        return base
    rule = base
    for k in raw:
        if k not in _KEYS:
            errors.append(f"{path}: {key}.{k}: unknown key (known: {', '.join(sorted(_KEYS))})")
    if "window" in raw:
        window = parse_duration(raw["window"])
        if window is None or window <= timedelta(0):
            errors.append(f"{path}: {key}.window: expected a duration like 14d or 48h")
        else:
            rule = replace(rule, window=window)
    if "threshold" in raw:
        t = raw["threshold"]
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            errors.append(f"{path}: {key}.threshold: expected a whole number of reports, 1 or more")
        else:
            rule = replace(rule, threshold=t)
    if "counts" in raw:
        c = raw["counts"]
        if not isinstance(c, list) or not c or any(str(v).lower() not in DELIVERED for v in c):
            errors.append(f"{path}: {key}.counts: expected a list of {', '.join(DELIVERED)}")
        else:
            rule = replace(rule, counts=frozenset(str(v).lower() for v in c))
    if "acknowledge_days" in raw:
        d = raw["acknowledge_days"]
        d = [d] if isinstance(d, int) and not isinstance(d, bool) else d
        if not isinstance(d, list) or not d or any(not isinstance(v, int) or isinstance(v, bool) or v < 1
                                                    for v in d):
            errors.append(f"{path}: {key}.acknowledge_days: expected days per rung, e.g. [5, 5, 7]")
        else:
            rule = replace(rule, acknowledge_days=tuple(d))
    return rule


def parse_rules(data: Any, path: str = "flows/cases.yaml") -> CaseRules:
    """Rules from parsed YAML; FlowError lists every problem."""
    errors: list[str] = []
    if data is None:
        return CaseRules()
    if not isinstance(data, dict):
        raise FlowError([f"{path}: expected a mapping with defaults and services"])
    for k in data:
        if k not in ("defaults", "services"):
            errors.append(f"{path}: {k}: unknown key (known: defaults, services)")
    default = _rule(path, "defaults", data["defaults"], Rule(), errors) if "defaults" in data else Rule()
    services: dict[str, Rule] = {}
    raw_services = data.get("services") or {}
    if not isinstance(raw_services, dict):
        errors.append(f"{path}: services: expected service names mapped to rules")
        raw_services = {}
    for name, raw in raw_services.items():
        services[str(name).lower()] = _rule(path, f"services.{name}", raw, default, errors)
    if errors:
        raise FlowError(errors)
    return CaseRules(default, services)


def load_rules(path: str | Path) -> CaseRules:
    """flows/cases.yaml, or the defaults when the file is absent."""
    p = Path(path)
    if not p.exists():
        return CaseRules()
    errors: list[str] = []
    data = _read_yaml(p, errors)  # the flows' YAML reading: `no` stays the word no
    if errors:
        raise FlowError(errors)
    return parse_rules(data, str(p))
