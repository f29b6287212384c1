"""The brief's pure figures (gateway/core/brief.py): due dates, tallies, officials' rates, scrubbing, the fingerprint."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core import brief as core
from gateway.evidence.words import WORDS


def test_a_month_is_year_dash_month_and_nothing_else() -> None:
    assert core.parse_month("2026-11") == date(2026, 11, 1)
    assert core.parse_month(" 2026-01 ") == date(2026, 1, 1)
    assert core.parse_month("9998-12") == date(9998, 12, 1) and core.parse_month("1900-01") == date(1900, 1, 1)
    # 9999-12 would need a year 10000 for the month after it; ٢٠٢٦ is digits to Python's re, not to a reader.
    for bad in ("2026-13", "2026-00", "26-11", "2026/11", "November", "", "2026-11-01", "9999-12", "1899-12",
                "٢٠٢٦-11"):
        with pytest.raises(core.BadInput, match="month"):
            core.parse_month(bad)


def test_six_months_up_to_the_month_cross_the_year() -> None:
    assert core.months_up_to(date(2026, 2, 1)) == [date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1),
                                                   date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]
    assert core.next_month(date(2026, 12, 1)) == date(2027, 1, 1)


@given(st.dates(date(2025, 1, 1), date(2027, 1, 1)), st.one_of(st.none(), st.integers(1, 40)),
       st.one_of(st.none(), st.dates(date(2025, 1, 1), date(2027, 6, 1))),
       st.dates(date(2025, 1, 1), date(2027, 1, 1)), st.integers(1, 120))
def test_due_dates_follow_the_schedule_inside_the_window(starts_on, every, ends_on, start, length) -> None:  # type: ignore[no-untyped-def]
    end = start + timedelta(days=length)
    days = core.due_dates(starts_on, every, ends_on, start, end)
    assert all(start <= d < end and d >= starts_on and (ends_on is None or d <= ends_on) for d in days)
    assert all((d - starts_on).days % (every or 1) == 0 for d in days)
    # None is missed: counting every day of the window by hand gives the same dates.
    by_hand = [start + timedelta(days=i) for i in range(length)]
    expected = [d for d in by_hand if d >= starts_on and (ends_on is None or d <= ends_on)
                and ((d - starts_on).days % every == 0 if every else d == starts_on)]
    assert days == expected


due_date = st.builds(core.DueDate, st.sampled_from(["clinic", "water"]),
                     st.dates(date(2026, 5, 1), date(2026, 12, 31)), st.sampled_from([*core.OUTCOMES, "odd"]))


@given(st.lists(due_date, max_size=60))
def test_every_rate_is_over_due_dates_and_between_0_and_1(dues) -> None:  # type: ignore[no-untyped-def]
    months = core.months_up_to(date(2026, 11, 1))
    records = core.tally(dues, months)
    for record in records:
        for m in record.months:
            assert m.delivered + m.partly + m.not_delivered + m.no_answer + m.unchecked == m.due
            assert m.due == sum(d.service == record.service and d.due_on.strftime("%Y-%m") == m.month for d in dues)
            assert m.rate is None if m.due == 0 else 0 <= m.rate <= 1
        assert record.due == sum(m.due for m in record.months)
        assert record.rate is None or 0 <= record.rate <= 1
    # A due date outside the six months is not counted; an unknown outcome is "unchecked", never "delivered".
    assert sum(r.due for r in records) == sum(date(2026, 6, 1) <= d.due_on < date(2026, 12, 1) for d in dues)


def test_an_open_check_is_unchecked_not_a_failure() -> None:
    assert core.outcome_of("delivered", closed=False) == core.UNCHECKED
    assert core.outcome_of(None, closed=True) == core.UNCHECKED
    assert core.outcome_of("not_delivered", closed=True) == core.NOT_DELIVERED


def _events(official: int, cases: int, answered: list[int], hours: list[float]) -> list[core.Event]:
    t0 = datetime(2026, 11, 1, 8)
    out = []
    for c in range(cases):
        out.append(core.Event(c, official, "sent", t0 + timedelta(days=c), False))
        out.append(core.Event(c, official, "resent", t0 + timedelta(days=c, hours=1), False))  # counted once
    for c, h in zip(answered, hours, strict=True):
        out.append(core.Event(c, official, "acknowledged", t0 + timedelta(days=c, hours=h), True))
        out.append(core.Event(c, official, "resolved", t0 + timedelta(days=c, hours=h + 1), True))
    return out


def test_an_officials_rate_is_shown_only_over_enough_cases() -> None:
    who = {1: ("Grace Phiri", "District Health Officer"), 2: ("John Banda", "District Commissioner")}
    lines = core.responses(_events(1, 4, [0, 2], [5, 29]) + _events(2, 2, [0, 1], [1, 2]), who)
    grace, john = lines
    assert (grace.name, grace.cases, grace.answered, grace.median_hours, grace.rate) == \
        ("Grace Phiri", 4, 2, 17.0, 0.5)
    assert core.MIN_CASES_FOR_RATE == 3
    assert (john.cases, john.enough, john.rate) == (2, False, None)  # 2 of 2 is not a fair 100%


def test_an_organizer_closing_a_case_is_not_the_officials_answer() -> None:
    events = [core.Event(c, 1, "sent", datetime(2026, 11, c + 1), False) for c in range(3)]
    events += [core.Event(c, 1, "resolved", datetime(2026, 11, c + 2), False) for c in range(3)]
    (line,) = core.responses(events, {1: ("Grace Phiri", "DHO")})
    assert (line.cases, line.answered, line.rate, line.median_hours) == (3, 0, 0.0, None)


NAMES = ["Chikondi Mwale", "Grace Phiri", "José Núñez", "Tiyamike"]
name_word = st.sampled_from([w for n in NAMES for w in n.split()])
digits = st.from_regex(r"\+?[0-9][0-9 \-]{0,14}[0-9]", fullmatch=True)
plain = st.text(st.characters(whitelist_categories=("Ll", "Lu"), max_codepoint=0x24F), min_size=1, max_size=10)


@given(st.lists(st.one_of(name_word, digits, plain, name_word.map(str.upper), digits.map(lambda d: f"ref{d}x")),
                min_size=1, max_size=25))
def test_a_scrubbed_quote_has_no_digit_and_no_known_name(parts) -> None:  # type: ignore[no-untyped-def]
    names = core.name_words(NAMES)
    text = core.scrub(" ".join(parts), names)
    assert not re.search(r"\d", text)
    words = {core.fold(w) for w in re.findall(r"[^\W\d_]+", text)}
    assert not words & names
    assert len(text) <= core.MAX_QUOTE + 2


def test_scrubbing_keeps_the_sense() -> None:
    names = core.name_words(NAMES)
    said = "Nurse Chikondi said call +265 991 234 567 or jose@example.org; NÚÑEZ came at 7am, case CZMB7"
    assert core.scrub(said, names) == "Nurse … said call … or …; … came at …, case …"


def test_quotes_come_only_from_a_big_enough_pool_and_never_repeat() -> None:
    names = core.name_words(NAMES)
    said = [core.Said("clinic", "The clinic was closed all day again", date(2026, 11, 3), 3),
            core.Said("clinic", "the clinic was closed all day AGAIN", date(2026, 11, 4), 3),
            core.Said("water", "Borehole dry since the rains ended", date(2026, 11, 4), 2),
            core.Said("clinic", "Chikondi 0991234567", date(2026, 11, 5), 3)]
    assert [q.text for q in core.quotes(said, names)] == ["The clinic was closed all day again"]


def test_the_fingerprint_changes_with_a_figure_and_only_then() -> None:
    tally = core.MonthTally("2026-11", 2, 1, 0, 1, 0, 0)
    same = core.MonthTally("2026-11", 2, 1, 0, 1, 0, 0)
    other = core.MonthTally("2026-11", 2, 0, 0, 2, 0, 0)
    assert core.fingerprint(tally) == core.fingerprint(same)
    assert core.fingerprint(tally) != core.fingerprint(other)
    assert re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", core.fingerprint(tally))
    assert core.canonical({"b": 1, "a": date(2026, 11, 1)}) == '{"a":"2026-11-01","b":1}'


def test_spanish_has_every_word_english_has() -> None:
    assert set(WORDS["es"]) == set(WORDS["en"])
    for key, text in WORDS["en"].items():
        assert re.findall(r"{(\w+)}", text) == re.findall(r"{(\w+)}", WORDS["es"][key]) or \
            set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", WORDS["es"][key])), key


said_st = st.builds(core.Said, st.sampled_from(["clinic", "water"]),
                    st.one_of(st.none(), st.text(max_size=300)), st.just(date(2026, 11, 3)), st.integers(0, 6))


@given(st.lists(said_st, max_size=30))
def test_quotes_are_few_scrubbed_and_only_from_a_crowd(said) -> None:  # type: ignore[no-untyped-def]
    names = core.name_words(NAMES)
    picked = core.quotes(said, names)
    assert len(picked) <= core.MAX_QUOTES
    crowded = {core.scrub(s.details, names) for s in said if s.details and s.pool >= core.MIN_REPORTS_FOR_QUOTES}
    for q in picked:
        assert q.text in crowded and not re.search(r"\d", q.text)
        assert core.MIN_QUOTE <= len(q.text) <= core.MAX_QUOTE + 2
