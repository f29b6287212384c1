"""Property-based: a check's conversation with any mix of answers, STOP, START and junk.

Three supporters are asked whether a service came; then they text, in any order, answers in any
language (1, 2, 3, YES, SI, AYI, PANGONO ...), STOP and START in any language, and junk. A model
that knows only "STOP wins, an answer counts once, and only while the check is open" predicts
every supporter's recorded answer; the gateway must agree, store one report per counted answer,
leave no text unhandled, close the check exactly when everyone asked has answered, and keep
every reply within one SMS. Examples per database: CHECK_EXAMPLES (default 5).
"""
from __future__ import annotations

import itertools
import os
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.core.answers import tokenize
from gateway.core.engine import check_answer
from gateway.core.segments import count_segments
from gateway.models import Check, CheckAsk, Contact, Message, Report
from gateway.people.contacts import number_of
from tests.evidence_helpers import add_schedule, tick
from tests.helpers import add, svc
from tests.transcript import Phone

EXAMPLES = int(os.environ.get("CHECK_EXAMPLES", "5"))
_runs = itertools.count(1)


def test_answers_count_once_and_stop_wins(app, migrated) -> None:  # type: ignore[no-untyped-def]
    fs = svc(app).flows
    stop, start = set(fs.system_words("stop")), set(fs.system_words("start")) | {"yes"}
    answers = sorted(w for m in ("yes", "no", "partly") for w in fs.system_words(m))
    triggers = set(fs.triggers)
    junk = st.one_of(st.text(max_size=30), st.sampled_from(["", "?", "ok thanks", "😀", "maybe", "2,5", "12"]))

    def first(text: str) -> str:
        tokens = tokenize(text)
        return tokens[0].folded if tokens else ""

    texts = st.one_of(st.sampled_from(answers), st.sampled_from(answers).map(lambda w: f"{w} it came late"),
                      st.sampled_from(sorted(stop)), st.sampled_from(sorted(start)),
                      junk.filter(lambda t: first(t) not in triggers and first(t) not in stop | start
                                  and check_answer(fs, first(t)) is None))

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, 2), texts), max_size=14))
    def walk(steps: list[tuple[int, str]]) -> None:
        run = next(_runs)
        service = f"svc{run}"  # this example's own service: only its three supporters follow it
        numbers = [f"+26599{run:04d}{i:03d}" for i in range(3)]
        for number, lang in zip(numbers, ("en", "es", "ny"), strict=True):
            add(app, number, language=lang, tags=(service,))
        add_schedule(app, place="Zomba", service=service, starts_on="2026-11-03", sample_size=3, no_threshold=2)
        tick(app, datetime(2026, 11, 3, 14, 0))
        with svc(app).sessions() as s:
            check_id = s.scalars(select(Check.id).where(Check.service == service)).one()
        phone = Phone(app, datetime(2026, 11, 3, 14, 30))
        stopped = [False] * 3
        model: list[str | None] = [None] * 3
        for who, text in steps:
            word = first(text)
            if word in stop:
                stopped[who] = True
            elif word in start and stopped[who]:
                stopped[who] = False
            elif not stopped[who] and (meaning := check_answer(fs, word)) is not None:
                if model[who] is None and None in model:
                    model[who] = meaning[0]
            for reply in phone.send(numbers[who], text):
                assert count_segments(reply).segments == 1, reply
        with svc(app).sessions() as s:
            ids = {number_of(c): c.id for c in s.scalars(select(Contact).where(Contact.place == "Zomba"))
                   if number_of(c) in numbers}
            got = dict(s.execute(select(CheckAsk.contact_id, CheckAsk.answer).where(CheckAsk.check_id == check_id))
                       .tuples().all())
            assert [got[ids[n]] for n in numbers] == model, (steps, model)
            reports = list(s.scalars(select(Report.delivered).where(Report.check_id == check_id)))
            assert sorted(reports) == sorted(a for a in model if a is not None)
            check = s.get(Check, check_id)
            assert check is not None and (check.status == "closed") == (None not in model)
            assert s.scalar(select(Message.id).where(Message.contact_id.in_(list(ids.values())),
                                                     Message.direction == "in",
                                                     Message.handled_at.is_(None))) is None

    walk()
