"""Property-based: every flow, in every language, with any answers, ends with STOP confirmed.

For each flow and language, a new supporter texts the flow's keyword (in one of its languages, sometimes with words after it),
then answers: mostly what the open step asks for (a choice, a place, yes or no, a number, free
text), mixed with long (> 700 characters), empty, emoji, numbers and other keywords, and a STOP
(in any language) at a random point. After every text no inbound message is left unhandled;
the STOP is confirmed and the contact is stopped, and stays stopped whatever follows but START
or a flow that subscribes. Flows, steps and words are read from the loaded flow files, so the
test follows the flows as they change.

Examples per database: FLOW_EXAMPLES (default 3); each example walks every flow in every language.
"""
from __future__ import annotations

import itertools
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.people import contacts
from gateway.inbound import receive as inbound
from gateway.core.flowfile import FlowSet, Step
from gateway.models import Conversation, Message
from gateway.channels.base import InboundSMS
from gateway.core.text import fold

EXAMPLES = int(os.environ.get("FLOW_EXAMPLES", "3"))
ORG = "Our Network"
_numbers = itertools.count(1)

LONG = st.one_of(
    st.text(min_size=701, max_size=1000),
    st.builds(lambda word, n: " ".join([word] * n), st.sampled_from(["clinic", "nurse absent", "Mañana", "ok"]),
              st.integers(min_value=180, max_value=260)),
)
JUNK = st.one_of(
    LONG,
    st.sampled_from(["", " ", "\n", "\x00", ".", "?"]),
    st.sampled_from(["😀", "🙏🏾 thank you", "👍" * 80, "مرحبا", "中文"]),
    st.integers(min_value=-3, max_value=99).map(str),
    st.sampled_from(["1.5", "2,5", "0", "007", "99999999999999999999", "+265991234567"]),
    st.text(max_size=30),
)


def _words(fs: FlowSet, *meanings: str) -> list[str]:
    return sorted({w for m in meanings for w in fs.system_words(m)})


def _resubscribes(fs: FlowSet) -> set[str]:
    """First words after which a stopped contact is active again: START, and flows that subscribe."""
    subscribing = {f.name for f in fs.flows.values() if any(s.kind == "subscribe" for s in f.steps)}
    return ({w for w, (flow, _lang) in fs.triggers.items() if flow in subscribing}
            | set(fs.system_words("start")) | set(fs.system_words("start_when_stopped")))


def _valid(fs: FlowSet, step: Step, language: str, diligent: bool = False) -> st.SearchStrategy[str]:
    """An answer the open step can take; a diligent one takes a flow's branches half the time, writes long."""
    if step.expect in ("choice", "choices"):
        names = sorted(step.choices)
        branches = sorted({case for f in fs.flows.values() for b in f.steps if b.kind == "branch" and b.on == step.id
                           for case in b.cases if case in step.choices})
        if diligent and branches:
            names = branches * max(1, len(names) - len(branches)) + names

        def word(name: str) -> st.SearchStrategy[str]:
            by_lang = step.choices[name]
            return st.sampled_from(sorted(by_lang.get(language) or {w for ws in by_lang.values() for w in ws}))

        one = st.sampled_from(names).flatmap(word)
        return one if step.expect == "choice" else st.lists(one, min_size=1, max_size=3).map(" ".join)
    if step.expect == "place":
        gazetteers = [fs.gazetteers[g] for g in step.gazetteers if g in fs.gazetteers] or list(fs.gazetteers.values())
        return st.sampled_from(sorted(p.name for g in gazetteers for p in g.places))
    if step.expect == "yesno":
        return st.sampled_from(_words(fs, "yes", "no"))
    if step.expect == "number":
        low = int(step.minimum) if step.minimum is not None else 0
        high = int(step.maximum) if step.maximum is not None else low + 100
        return st.integers(min_value=low, max_value=high).map(str)
    if diligent:
        return LONG
    skip = [st.sampled_from(_words(fs, "skip"))] if step.skippable else []
    return st.one_of(LONG, LONG, st.text(min_size=1, max_size=60), *skip)  # free text: long half the time


def _answer(fs: FlowSet, data: st.DataObject, conv: Conversation | None, before_stop: bool,
            diligent: bool = False) -> str:
    """Mostly what the open step asks for (only that, when diligent); else anything, or another keyword."""
    keywords = [w for w in (*fs.triggers, *_words(fs, "help", "skip", "yes", "no"),
                            *(_words(fs, "start") if before_stop else ())) if w]
    options = [JUNK, st.sampled_from(sorted(keywords))]
    if conv is not None and conv.flow in fs.flows and conv.step < len(fs.flows[conv.flow].steps):
        step = fs.flows[conv.flow].steps[conv.step]
        if step.kind == "ask":
            valid = _valid(fs, step, conv.language, diligent)
            options = [valid] if diligent else [valid] * 6 + options
    text = data.draw(st.one_of(*options))
    if not before_stop and (text.split() or [""])[0] and fold(text.split()[0]) in _resubscribes(fs):
        return "thanks"  # only the supporter's own START (or JOIN) ends an opt-out: not tested here
    return text


def test_every_flow_in_every_language_ends_with_stop_confirmed(app, migrated) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["gateway"]
    fs: FlowSet = svc.flows
    stop_words = fs.system_words("stop")
    stop_texts = {lang: fs.text(fs.system.texts["stop"], lang).replace("{org}", ORG).strip()
                  for lang in fs.system.texts["stop"]}
    walks = sorted((name, lang) for name, flow in fs.flows.items() for lang in flow.keywords)  # every flow, every language
    runs = []

    def send(number: str, text: str) -> inbound.Received:
        received = inbound.receive(svc.sessions, InboundSMS("console", None, number, None, text), "MW", fs, ORG)
        with svc.sessions() as s:  # this supporter's only: each example's outcome is its own (replayable)
            assert s.scalar(select(func.count()).select_from(Message).where(
                Message.direction == "in", Message.contact_id == received.contact_id,
                Message.handled_at.is_(None))) == 0, f"a text stays unhandled after {text[:40]!r}"
        return received

    def state(number: str) -> tuple[Any, Conversation | None]:
        with svc.sessions() as s:
            contact = contacts.find(s, number)
            if contact is None:  # a number whose only traffic was an anonymous report is forgotten
                return None, None
            conv = s.scalars(select(Conversation).where(Conversation.contact_id == contact.id,
                                                        Conversation.closed_at.is_(None))).first()
            return contact.status, conv

    def walk(data: st.DataObject, flow: str, language: str) -> None:
        """One new supporter: the flow's keyword, answers, a STOP at a random point, and more texts."""
        number = f"+26599{next(_numbers):07d}"
        diligent = data.draw(st.booleans(), label="diligent")  # answers every step as asked, to the end
        keyword = data.draw(st.sampled_from(sorted(fs.flows[flow].keywords[language])), label="keyword")
        words = [] if diligent else data.draw(st.lists(st.one_of(JUNK, st.sampled_from(sorted(fs.triggers))),
                                                        max_size=2), label="after")
        send(number, " ".join([keyword.upper(), *words]))
        asks = sum(step.kind == "ask" for step in fs.flows[flow].steps)
        low = asks - 1 if diligent else 0  # a diligent supporter's STOP comes near the end, or after it
        for _ in range(data.draw(st.integers(min_value=max(0, low), max_value=asks + 2), label="answers before STOP")):
            send(number, _answer(fs, data, state(number)[1], before_stop=True, diligent=diligent))
        word = data.draw(st.sampled_from(sorted(stop_words)), label="stop word")
        status, _conv = state(number)
        with svc.sessions() as s:
            found = contacts.find(s, number)
            language = found.language if found is not None else None
        received = send(number, data.draw(st.sampled_from([word, word.upper(), f"{word.title()}!", f"{word} please"])))
        if status == "stopped":  # a keyword mid-flow stopped them already: confirmed then, not twice
            assert received.texts == ()
        else:
            assert list(received.texts) == [stop_texts[language or stop_words[word]]]
        assert state(number) == ("stopped", None)
        for _ in range(data.draw(st.integers(min_value=0, max_value=1), label="answers after STOP")):
            send(number, _answer(fs, data, None, before_stop=False))
            assert state(number)[0] == "stopped"

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        runs.append(1)
        for flow, language in walks:
            walk(data, flow, language)

    one()
    assert len(runs) >= EXAMPLES
    with svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.contact_id.is_not(None), Message.handled_at.is_(None))) == 0
