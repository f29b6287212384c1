"""core/caserules.py (flows/cases.yaml) and the engine's reading of case words: pure."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.core import engine
from gateway.core.caserules import load_rules, parse_rules
from gateway.core.flowfile import FlowError, load_flows

FLOWS = Path(__file__).resolve().parent.parent / "flows"


def test_the_shipped_rules_and_defaults() -> None:
    rules = load_rules(FLOWS / "cases.yaml")
    assert rules.for_service("water").window == timedelta(days=7)
    assert rules.for_service("clinic").days_at(1) == 5 and rules.for_service("clinic").days_at(2) == 3
    assert rules.for_service("clinic").days_at(9) == 7  # the last rung's days repeat
    assert rules.for_service("borehole") == rules.default and rules.default.counts == {"no", "partly"}


def test_errors_name_the_file_and_the_key() -> None:
    with pytest.raises(FlowError) as caught:
        parse_rules({"defaults": {"window": "soon", "threshold": 0},
                     "services": {"clinic": {"counts": ["maybe"], "deadline": 3}}}, "flows/cases.yaml")
    errors = caught.value.errors
    assert "flows/cases.yaml: defaults.window: expected a duration like 14d or 48h" in errors
    assert any(e.startswith("flows/cases.yaml: defaults.threshold:") for e in errors)
    assert any(e.startswith("flows/cases.yaml: services.clinic.counts:") for e in errors)
    assert any(e.startswith("flows/cases.yaml: services.clinic.deadline: unknown key") for e in errors)


@pytest.mark.parametrize("text, verb, ref, rest, lang", [
    ("ACK c7k2p", "ack", "C7K2P", "", "en"),
    ("promesa C7K2P 12 de marzo", "promise", "C7K2P", "12 de marzo", "es"),
    ("Zatha C7K2P.", "done", "C7K2P", "", "ny"),
    ("ESTADO R7K2PQ", "status", "R7K2PQ", "", "es"),
    ("NO R7K2PQ", "dispute", "R7K2PQ", "", None),
])
def test_case_words(text: str, verb: str, ref: str, rest: str, lang: str | None) -> None:
    fs = load_flows(FLOWS)
    result = engine.handle(fs, engine.ContactView(status="active"), None, text, datetime(2026, 11, 29))
    assert result.handled_by == engine.HandledBy.CASE and not result.replies
    (command,) = result.actions
    assert isinstance(command, engine.CaseCommand)
    assert (command.verb, command.ref, command.rest) == (verb, ref, rest)
    if lang:
        assert command.language == lang


def test_no_inside_a_conversation_is_an_answer_not_a_dispute() -> None:
    fs = load_flows(FLOWS)
    now = datetime(2026, 11, 29)
    state = engine.ConversationState("report", 4, "en", now + timedelta(hours=1),
                                     {"service": "clinic", "place": "Zomba"})
    result = engine.handle(fs, engine.ContactView(status="active"), state, "NO R7K2PQ", now)
    assert result.handled_by == engine.HandledBy.CONVERSATION
