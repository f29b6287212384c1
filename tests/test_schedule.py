"""The pure rules of promised services: due dates, the local hour to ask, rotation, tallies, labels, summaries."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.core import schedule as rules
from gateway.core.flowfile import load_flows
from gateway.core.segments import count_segments
from gateway.core.schedule import Candidate, Plan, Tally


def test_due_dates_every_second_week_and_once() -> None:
    plan = Plan(date(2026, 11, 3), 14, date(2026, 12, 31))
    assert plan.due_between(date(2026, 11, 1), date(2026, 12, 31)) == [
        date(2026, 11, 3), date(2026, 11, 17), date(2026, 12, 1), date(2026, 12, 15), date(2026, 12, 29)]
    assert plan.is_due(date(2026, 11, 17)) and not plan.is_due(date(2026, 11, 10))
    assert not plan.is_due(date(2027, 1, 12))  # after the end
    once = Plan(date(2026, 11, 3))
    assert once.due_between(date(2026, 11, 1), date(2026, 11, 30)) == [date(2026, 11, 3)]
    assert once.due_between(date(2026, 11, 4), date(2026, 11, 30)) == []


@given(st.dates(date(2026, 1, 1), date(2027, 12, 31)), st.integers(1, 60), st.integers(0, 120), st.integers(0, 120))
def test_due_between_is_exactly_the_due_days(start: date, every: int, skip: int, length: int) -> None:
    plan = Plan(start, every)
    first = start + timedelta(days=skip - 30)
    last = first + timedelta(days=length)
    expected = [first + timedelta(days=i) for i in range(length + 1) if plan.is_due(first + timedelta(days=i))]
    assert plan.due_between(first, last) == expected


def test_ask_after_is_the_local_hour_in_utc() -> None:
    assert rules.ask_after(date(2026, 11, 3), time(16, 0), "Africa/Blantyre") == datetime(2026, 11, 3, 14, 0)
    assert rules.ask_after(date(2026, 11, 3), time(16, 0), "America/Tegucigalpa") == datetime(2026, 11, 3, 22, 0)


def test_rotation_asks_the_least_recently_asked_first_and_never_the_excluded() -> None:
    day = datetime(2026, 11, 3)
    people = [Candidate(1, day), Candidate(2, None), Candidate(3, day - timedelta(days=14)), Candidate(4, None)]
    assert rules.pick(people, 3) == [2, 4, 3]
    assert rules.pick(people, 3, exclude={2}) == [4, 3, 1]
    assert rules.pick(people, 0) == []


@given(st.lists(st.tuples(st.integers(1, 50), st.one_of(st.none(), st.integers(0, 100))), unique_by=lambda t: t[0]),
       st.integers(0, 10), st.sets(st.integers(1, 50)))
def test_pick_is_a_sample_of_the_longest_waiting(rows: list[tuple[int, int | None]], size: int,
                                                 exclude: set[int]) -> None:
    people = [Candidate(cid, None if d is None else datetime(2026, 1, 1) + timedelta(days=d)) for cid, d in rows]
    chosen = rules.pick(people, size, exclude)
    allowed = [p for p in people if p.contact_id not in exclude]
    assert len(chosen) == min(size, len(allowed)) and len(set(chosen)) == len(chosen)
    assert not set(chosen) & exclude
    left = [p for p in allowed if p.contact_id not in chosen]
    waited = {p.contact_id: p.last_asked or datetime.min for p in people}
    for cid in chosen:  # nobody left out waited longer than someone chosen
        assert all((p.last_asked or datetime.min) >= waited[cid] for p in left)


def test_delivery_outcomes() -> None:
    assert rules.delivery_outcome(Tally(5)) == "no_answer"
    assert rules.delivery_outcome(Tally(5, yes=3, no=1)) == "delivered"
    assert rules.delivery_outcome(Tally(5, yes=1, no=2)) == "not_delivered"
    assert rules.delivery_outcome(Tally(5, yes=1, no=1)) == "partly"
    assert rules.delivery_outcome(Tally(5, partly=1)) == "partly"
    assert Tally.of(4, ["yes", None, "no", "no"]) == Tally(4, 1, 2, 0)


def test_verification_needs_two_answers_and_two_thirds() -> None:
    assert rules.verification(Tally(5, yes=1)) == "unverified"
    assert rules.verification(Tally(5, yes=2)) == "verified"
    assert rules.verification(Tally(5, yes=2, no=1)) == "verified"
    assert rules.verification(Tally(5, yes=2, no=3)) == "unverified"
    assert rules.verification(Tally(5, no=2, partly=3)) == "contested"
    assert rules.verification(Tally(5, yes=1, no=3)) == "contested"


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20))
def test_verification_is_symmetric(yes: int, no: int, partly: int) -> None:
    flip = {"verified": "contested", "contested": "verified", "unverified": "unverified"}
    assert rules.verification(Tally(50, no, yes, partly)) == flip[rules.verification(Tally(50, yes, no, partly))]


def test_follows_a_service_by_its_name_or_its_interest() -> None:
    assert rules.follows("clinic") == ("clinic", "health")
    assert rules.follows("water") == ("water",)
    assert rules.follows("roads") == ("roads",)


FLOWS = load_flows("flows")


@given(st.text(st.characters(min_codepoint=65, max_codepoint=122), min_size=1, max_size=40),
       st.text(st.characters(min_codepoint=65, max_codepoint=122), min_size=1, max_size=60),
       st.integers(0, 99), st.integers(0, 99))
def test_the_community_summary_is_one_sms_in_every_language(place: str, label: str, came: int, due: int) -> None:
    for lang in FLOWS.languages:
        text = rules.draft_summary(FLOWS.text(FLOWS.system.texts["community_summary"], lang), place=place,
                                   label=label, came=came, due=due, month="September",
                                   short_template=FLOWS.text(FLOWS.system.texts["community_summary_short"], lang))
        assert count_segments(text).segments == 1, (lang, text)
        assert place in text and str(came) in text


def test_the_summary_reads_as_the_example() -> None:
    text = rules.draft_summary(FLOWS.text(FLOWS.system.texts["community_summary"], "en"), place="Zomba",
                               label="the clinic", came=9, due=12, month="March")
    assert text == "Zomba: the clinic came 9 of 12 due days in March. Thank you for reporting."


def test_every_check_text_is_one_gsm7_segment_in_every_language() -> None:
    """With a long organization name, place and label: what a supporter is asked and told fits one SMS."""
    values = {"org": "Women's Voices Network", "place": "Nkhata Bay", "label": "the mobile clinic",
              "service": "fertilizer"}
    for name in ("check_ask", "corroborate_ask", "check_thanks", "check_late", "service_label"):
        for lang in FLOWS.languages:
            text = rules.fill(FLOWS.text(FLOWS.system.texts[name], lang), **values)
            info = count_segments(text)
            assert (info.segments, info.encoding) == (1, "GSM-7"), (name, lang, text)
    assert "ny" in FLOWS.system.drafts  # Chichewa texts stay marked draft until a native speaker checks them
