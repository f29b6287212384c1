"""The pure engine, with no app and no database: flows in, replies and actions out."""
from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway import engine
from gateway.engine import ContactView, handle
from gateway.flowfile import load_flows

FLOWS = Path(__file__).resolve().parent.parent / "flows"
NOW = datetime(2026, 11, 23, 9, 0)
ACTIVE = ContactView(status="active", language="en", country="MW", joined=True)


@pytest.fixture(scope="module")
def fs():  # type: ignore[no-untyped-def]
    """The shipped flows."""
    return load_flows(FLOWS)


def test_stop_wins_in_the_middle_of_a_flow(fs) -> None:
    started = handle(fs, ACTIVE, None, "REPORT", NOW, org="Net")
    assert started.state is not None and started.state.flow == "report"
    stopped = handle(fs, ACTIVE, started.state, "stop.", NOW, org="Net")
    assert stopped.route == "stop" and stopped.state is None
    assert stopped.actions == [engine.Unsubscribe()]
    assert "START" in stopped.replies[0]


@pytest.mark.parametrize("word,lang", [("LEKA", "ny"), ("siya", "ny"), ("Baja", "es"), ("ALTO!", "es"),
                                       ("optout", "en"), ("Parar", "es")])
def test_stop_words_in_every_language_answer_in_that_language(fs, word: str, lang: str) -> None:
    result = handle(fs, ContactView(), None, word, NOW, org="Net")
    assert result.route == "stop" and result.language == lang
    assert result.replies == [fs.text(fs.system.texts["stop"], lang).replace("{org}", "Net")]


def test_second_stop_is_not_confirmed_again(fs) -> None:
    result = handle(fs, ContactView(status="stopped"), None, "STOP", NOW)
    assert result.route == "stop" and result.replies == [] and result.actions == []


def test_stopped_contact_hears_nothing_but_start_join_or_help(fs) -> None:
    stopped = ContactView(status="stopped", language="es")
    assert handle(fs, stopped, None, "hola", NOW).replies == []
    assert handle(fs, stopped, None, "REPORTE", NOW).replies == []
    assert handle(fs, stopped, None, "YES", NOW).route == "start"
    assert handle(fs, ACTIVE, None, "YES", NOW).route == "inbox"  # YES is START only when stopped
    joined = handle(fs, stopped, None, "UNIRME", NOW)
    assert joined.route == "flow" and engine.Subscribe("es") in joined.actions


def test_help_keeps_the_conversation_open(fs) -> None:
    started = handle(fs, ACTIVE, None, "REPORT", NOW)
    helped = handle(fs, ACTIVE, started.state, "help", NOW)
    assert helped.route == "help" and helped.state == started.state


def test_keyword_sets_the_language_of_the_flow(fs) -> None:
    result = handle(fs, ContactView(language="en"), None, "lipoti", NOW)
    assert result.language == "ny" and result.replies[0].startswith("Ntchito iti?")


def test_one_sms_report_asks_only_what_is_missing(fs) -> None:
    result = handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO nurse absent", NOW)
    assert result.state is not None
    assert result.state.answers == {"service": "clinic", "place": "Zomba", "delivered": "no",
                                    "details": "nurse absent"}
    assert result.replies == ["Keep your name and number off this report? 1 Yes 2 No"]
    done = handle(fs, ACTIVE, result.state, "1", NOW, make_ref=lambda: "ABC234")
    save = [a for a in done.actions if isinstance(a, engine.SaveReport)]
    assert save and save[0].anonymous and save[0].ref == "ABC234"
    assert done.state is None and "ABC234" in done.replies[0]


def test_prefill_skips_what_it_cannot_read_without_eating_free_text(fs) -> None:
    result = handle(fs, ACTIVE, None, "REPORT ZOMBA", NOW)
    assert result.state.answers == {"place": "Zomba"}
    assert result.replies[0].startswith("Which service?")


def test_retry_twice_then_end_kindly(fs) -> None:
    state = handle(fs, ACTIVE, None, "REPORT", NOW).state
    for _ in range(2):
        result = handle(fs, ACTIVE, state, "banana", NOW)
        assert result.replies[0].startswith("Which service?") and result.state is not None
        state = result.state
    ended = handle(fs, ACTIVE, state, "banana", NOW)
    assert ended.state is None and "REPORT to start again" in ended.replies[0]


def test_typos_and_numbers_both_answer_a_choice(fs) -> None:
    state = handle(fs, ACTIVE, None, "REPORT", NOW).state
    assert handle(fs, ACTIVE, state, "fertiliser", NOW).state.answers["service"] == "fertilizer"
    assert handle(fs, ACTIVE, state, "Clinc", NOW).state.answers["service"] == "clinic"
    assert handle(fs, ACTIVE, state, "3.", NOW).state.answers["service"] == "water"


def test_expired_conversation_goes_to_the_inbox_with_a_hint(fs) -> None:
    state = handle(fs, ACTIVE, None, "REPORT", NOW).state
    later = NOW + timedelta(hours=25)
    result = handle(fs, ACTIVE, state, "1", later)
    assert result.route == "inbox" and result.replies[0].startswith("Your last conversation timed out")


def test_inbox_hint_at_most_once_a_day(fs) -> None:
    first = handle(fs, ACTIVE, None, "hello?", NOW)
    assert first.replies and first.actions == [engine.ToInbox(hinted=True)]
    hinted = ContactView(status="active", language="en", joined=True, last_hint_at=NOW)
    again = handle(fs, hinted, None, "hello again", NOW + timedelta(hours=3))
    assert again.replies == [] and again.actions == [engine.ToInbox(hinted=False)]
    next_day = handle(fs, hinted, None, "hello", NOW + timedelta(hours=24))
    assert next_day.replies


def test_blocked_contact_is_ignored(fs) -> None:
    result = handle(fs, ContactView(status="blocked"), None, "JOIN", NOW)
    assert result.route == "ignored" and result.replies == []


def test_join_sets_fields_and_tags(fs) -> None:
    state = handle(fs, ContactView(), None, "JOIN", NOW, org="Net").state
    state = handle(fs, ContactView(), state, "Chikondi", NOW).state
    state = handle(fs, ContactView(), state, "zomba", NOW).state
    done = handle(fs, ContactView(), state, "1, 3", NOW)
    assert engine.SetContact({"name": "Chikondi", "place": "Zomba"}) in done.actions
    assert engine.AddTags(("health", "water")) in done.actions
    assert done.replies == ["Welcome! You will get alerts for Zomba. Text REPORT to tell us if a service came, STOP to end."]


def _flow(tmp_path: Path, body: str) -> Path:
    """A flows directory with the shipped system texts and gazetteers plus one test flow."""
    for name in ("system.yaml",):
        (tmp_path / name).write_text((FLOWS / name).read_text())
    (tmp_path / "places").mkdir()
    for f in (FLOWS / "places").glob("*.yaml"):
        (tmp_path / "places" / f.name).write_text(f.read_text())
    (tmp_path / "survey.yaml").write_text(textwrap.dedent(body))
    return tmp_path


def test_branch_number_yesno_goto_and_end(tmp_path: Path) -> None:
    fs = load_flows(_flow(tmp_path, """
        flow: survey
        keywords: {en: [SURVEY]}
        steps:
          - id: visits
            ask: "How many clinic visits this month?"
            expect: number
            min: 0
            max: 31
          - id: safe
            ask: "Did you feel safe? 1 Yes 2 No"
            expect: yesno
          - branch: safe
            cases: {"false": unsafe}
            default: thanks
          - id: unsafe
            say: "We are sorry. An organizer will call you."
          - goto: end
          - id: thanks
            end: "Thank you."
        """))
    st = handle(fs, ACTIVE, None, "survey", NOW).state
    assert handle(fs, ACTIVE, st, "40", NOW).state.retries == 1  # out of range
    st = handle(fs, ACTIVE, st, "about 3", NOW).state
    assert st.answers["visits"] == 3
    no = handle(fs, ACTIVE, st, "no", NOW)
    assert no.replies == ["We are sorry. An organizer will call you."] and no.state is None
    yes = handle(fs, ACTIVE, st, "yes", NOW)
    assert yes.replies == ["Thank you."]


def test_say_then_ask_share_one_sms(tmp_path: Path) -> None:
    fs = load_flows(_flow(tmp_path, """
        flow: survey
        keywords: {en: [SURVEY]}
        steps:
          - say: "Hello."
          - id: q
            ask: "Your age?"
            expect: number
        """))
    assert handle(fs, ACTIVE, None, "survey", NOW).replies == ["Hello.\nYour age?"]
