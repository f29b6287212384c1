"""The pure engine, with no app and no database: flows in, replies and actions out."""
from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.core import engine
from gateway.core.engine import ContactView, handle
from gateway.core.flowfile import (
    CONTACT_FIELDS,
    MAX_TEXT_ANSWER,
    REPORT_ANSWERS,
    fill_sample,
    load_flows,
)
from gateway.core.segments import count_segments
from gateway.core.steps import prompts

FLOWS = Path(__file__).resolve().parent.parent / "flows"
NOW = datetime(2026, 11, 23, 9, 0)
ACTIVE = ContactView(status="active", language="en", country="MW", joined=True)


@pytest.fixture(scope="module")
def fs():  # type: ignore[no-untyped-def]
    """The shipped flows."""
    return load_flows(FLOWS)


def test_compliance_keyword_names_the_meanings_handle_answers_first_in_every_language(fs) -> None:
    words = {"STOP please": "stop", "leka": "stop", "Alto.": "stop", "Inicio": "start", "YAMBA": "start",
             "help": "help", "Ayuda": "help", "JOIN": None, "YES": None, "": None, "stopping": None}
    for text, meaning in words.items():
        assert engine.compliance_keyword(fs, text) == meaning, text
        if meaning:  # the same word is what handle answers before anything else
            assert handle(fs, ACTIVE, None, text, NOW, org="Net").handled_by == meaning


def test_stop_wins_in_the_middle_of_a_flow(fs) -> None:
    started = handle(fs, ACTIVE, None, "REPORT", NOW, org="Net")
    assert started.state is not None and started.state.flow == "report"
    stopped = handle(fs, ACTIVE, started.state, "stop.", NOW, org="Net")
    assert stopped.handled_by == "stop" and stopped.state is None
    assert stopped.actions == [engine.Unsubscribe()]
    assert "START" in stopped.replies[0]


@pytest.mark.parametrize("word,lang", [("LEKA", "ny"), ("siya", "ny"), ("Baja", "es"), ("ALTO!", "es"),
                                       ("optout", "en"), ("Parar", "es")])
def test_stop_words_in_every_language_answer_in_that_language(fs, word: str, lang: str) -> None:
    result = handle(fs, ContactView(), None, word, NOW, org="Net")
    assert result.handled_by == "stop" and result.language == lang
    assert result.replies == [fs.text(fs.system.texts["stop"], lang).replace("{org}", "Net")]


def test_second_stop_is_not_confirmed_again(fs) -> None:
    result = handle(fs, ContactView(status="stopped"), None, "STOP", NOW)
    assert result.handled_by == "stop" and result.replies == [] and result.actions == []


def test_stopped_contact_hears_nothing_but_start_join_or_help(fs) -> None:
    stopped = ContactView(status="stopped", language="es")
    assert handle(fs, stopped, None, "hola", NOW).replies == []
    assert handle(fs, stopped, None, "REPORTE", NOW).replies == []
    assert handle(fs, stopped, None, "YES", NOW).handled_by == "start"
    assert handle(fs, ACTIVE, None, "YES", NOW).handled_by == "inbox"  # YES is START only when stopped
    joined = handle(fs, stopped, None, "UNIRME", NOW)
    assert joined.handled_by == "flow" and engine.Subscribe("es") in joined.actions


def test_help_keeps_the_conversation_open(fs) -> None:
    started = handle(fs, ACTIVE, None, "REPORT", NOW)
    helped = handle(fs, ACTIVE, started.state, "help", NOW)
    assert helped.handled_by == "help" and helped.state == started.state


def test_keyword_sets_the_language_of_the_flow(fs) -> None:
    result = handle(fs, ContactView(language="en"), None, "lipoti", NOW)
    assert result.language == "ny" and result.replies[0].startswith("Ntchito iti?")


def _saved(result: engine.Result) -> engine.SaveReport:
    [save] = [a for a in result.actions if isinstance(a, engine.SaveReport)]
    return save


def test_one_sms_report_is_one_reply_anonymous_with_its_reference(fs) -> None:
    result = handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO nurse absent", NOW, make_ref=lambda: "ABC234")
    save = _saved(result)
    assert save.answers == {"service": "clinic", "place": "Zomba", "delivered": "no", "details": "nurse absent"}
    assert save.anonymous is True and save.ref == "ABC234" and result.state is None
    [reply] = result.replies
    assert "ABC234" in reply and "without your name" in reply
    assert count_segments(reply).segments == 1


@pytest.mark.parametrize("text,lang", [("REPORT CLINIC ZOMBA NO", "en"), ("LIPOTI madzi Mangochi ayi", "ny"),
                                       ("DENUNCIA agua Cortes no", "es")])
def test_details_are_optional_when_the_rest_came_in_the_first_text(fs, text: str, lang: str) -> None:
    result = handle(fs, ACTIVE, None, text, NOW, make_ref=lambda: "ABC234")
    save = _saved(result)
    assert save.answers["details"] is None and save.anonymous and save.language == lang
    assert result.state is None and len(result.replies) == 1 and "ABC234" in result.replies[0]


@pytest.mark.parametrize("text", ["REPORT NAME CLINIC ZOMBA NO nurse absent", "report name, clinic zomba no",
                                  "REPORTE NOMBRE clinica Zomba no", "LIPOTI DZINA chipatala Zomba ayi"])
def test_the_keep_name_word_after_the_keyword_keeps_the_name(fs, text: str) -> None:
    result = handle(fs, ACTIVE, None, text, NOW, make_ref=lambda: "ABC234")
    save = _saved(result)
    assert save.anonymous is False and (save.answers["service"], save.answers["place"]) == ("clinic", "Zomba")
    assert "name" not in str(save.answers.get("details")).lower()
    assert "ABC234" in result.replies[0] and count_segments(result.replies[0]).segments == 1


def test_the_keep_name_word_counts_only_right_after_the_keyword(fs) -> None:
    save = _saved(handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO name of the nurse unknown", NOW))
    assert save.anonymous is True and save.answers["details"] == "name of the nurse unknown"


def test_a_report_that_lacks_an_answer_asks_for_it_and_is_anonymous(fs) -> None:
    first = handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA", NOW)
    assert first.replies == ["Did it arrive? 1 Yes 2 No 3 Partly"] and first.state is not None
    second = handle(fs, ACTIVE, first.state, "no", NOW)
    assert second.replies[0].startswith("Any details")
    done = handle(fs, ACTIVE, second.state, "skip", NOW)
    assert _saved(done).anonymous is True and done.state is None


def test_every_report_prompt_is_one_gsm7_segment_in_every_language(fs) -> None:
    for step in fs.flows["report"].steps:
        for kind, texts in prompts(step):
            for lang, text in texts.items():
                info = count_segments(fill_sample(text, "Our Network"))
                assert (info.encoding, info.segments) == ("GSM-7", 1), (step.key, kind, lang, text)


def _consent_flow(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The shipped report flow with its documented consent step switched on."""
    text = (FLOWS / "report.yaml").read_text()
    start, end = text.index("  # - id: keep_name"), text.index("  - id: service")
    block = "\n".join(line.replace("# ", "", 1) for line in text[start:end].splitlines())
    flows = _flow(tmp_path, "flow: unused\nkeywords: {en: [UNUSED]}\nsteps: [{say: x}]\n")
    (flows / "report.yaml").write_text(text[:start] + block + "\n" + text[end:])
    return load_flows(flows)


def test_a_flow_that_asks_consent_asks_it_first_even_after_a_one_sms_report(tmp_path: Path) -> None:
    fs = _consent_flow(tmp_path)
    assert handle(fs, ACTIVE, None, "REPORT", NOW).replies[0].startswith("Reply NAME to put your name")
    asked = handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO nurse absent", NOW)
    assert asked.state is not None and asked.state.answers["details"] == "nurse absent"
    assert asked.replies[0].startswith("Reply NAME")
    done = handle(fs, ACTIVE, asked.state, "name", NOW, make_ref=lambda: "ABC234")
    assert _saved(done).anonymous is False and "ABC234" in done.replies[0]
    named = handle(fs, ACTIVE, None, "REPORT NAME CLINIC ZOMBA NO", NOW)  # consent already given
    assert _saved(named).anonymous is False and named.state is None
    for step in fs.flows["report"].steps:
        for text in prompts(step)[0][1].values() if prompts(step) else ():
            assert count_segments(fill_sample(text, "Our Network")).segments == 1, text


@pytest.mark.parametrize("answer", [
    "No, don't use my name", "no name", "Don't put my NAME", "dont show name", "do not use my name",
    "NAME? no", "keep my name hidden", "anonymous, no name", "1", "yes", "Yes please", "2", "no", "ok", "",
    "No quiero que aparezca mi nombre", "sin nombre", "nombre no", "Si", "anonimo", "ni nombre ni numero",
    "Ayi", "Musaike dzina langa", "dzina ayi", "osaika dzina", "sindikufuna dzina", "popanda dzina", "inde",
])
def test_consent_answers_that_are_not_an_explicit_yes_to_the_name_are_anonymous(tmp_path: Path,
                                                                                answer: str) -> None:
    fs = _consent_flow(tmp_path)
    state = handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO", NOW).state
    done = handle(fs, ACTIVE, state, answer, NOW)
    assert _saved(done).anonymous is True and done.state is None  # never re-asked: anything else is anonymous


@pytest.mark.parametrize("answer", ["NAME", "name.", "Yes, use my name", "show my name please",
                                    "NOMBRE", "Si, con mi nombre", "pongan mi nombre", "DZINA",
                                    "Inde, ikani dzina langa"])
def test_consent_answers_that_ask_for_the_name_keep_it(tmp_path: Path, answer: str) -> None:
    fs = _consent_flow(tmp_path)
    state = handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO", NOW).state
    assert _saved(handle(fs, ACTIVE, state, answer, NOW)).anonymous is False


def test_long_text_answers_are_cut_to_what_their_column_holds(fs) -> None:
    limits = {"service_other": REPORT_ANSWERS["service_other"].length, "details": MAX_TEXT_ANSWER}
    assert limits == {"service_other": 200, "details": 640}
    state = handle(fs, ACTIVE, None, "REPORT", NOW).state
    state = handle(fs, ACTIVE, state, "5", NOW).state
    state = handle(fs, ACTIVE, state, "x" * 1000, NOW).state
    assert state.answers["service_other"] == "x" * 200
    state = handle(fs, ACTIVE, handle(fs, ACTIVE, state, "Zomba", NOW).state, "no", NOW).state
    done = handle(fs, ACTIVE, state, "y " * 1000, NOW)
    assert _saved(done).answers["details"] == ("y " * 320).strip()[:640]


def test_long_text_in_the_first_sms_is_cut_too(fs) -> None:
    other = handle(fs, ACTIVE, None, "REPORT OTHER " + "medicine " * 60, NOW)
    assert len(other.state.answers["service_other"]) == 200
    save = _saved(handle(fs, ACTIVE, None, "REPORT CLINIC ZOMBA NO " + "d" * 1500, NOW))
    assert save.answers["details"] == "d" * 640


def test_a_long_name_is_cut_to_the_contact_column(fs) -> None:
    state = handle(fs, ContactView(), None, "JOIN", NOW).state
    state = handle(fs, ContactView(), state, "N" * 500, NOW).state
    assert state.answers["name"] == "N" * CONTACT_FIELDS["name"].length


def test_an_old_conversation_with_a_long_answer_is_cut_when_saved(fs) -> None:
    answers = {"service": "other", "service_other": "z" * 640, "place": "Zomba", "delivered": "no"}
    old = engine.ConversationState("report", fs.flows["report"].index["details"], "en", NOW + timedelta(hours=1),
                                   answers=answers)  # stored before answers were cut to their column
    save = _saved(handle(fs, ACTIVE, old, "skip", NOW))
    assert save.answers["service_other"] == "z" * 200


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
    assert result.handled_by == "inbox" and result.replies[0].startswith("Your last conversation timed out")


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
    assert result.handled_by == "ignored" and result.replies == []


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


def test_a_case_word_alone_in_a_conversation_answers_it_and_with_a_reference_is_a_case(fs) -> None:  # type: ignore[no-untyped-def]
    started = handle(fs, ACTIVE, None, "REPORT", NOW)
    assert started.state is not None
    alone = handle(fs, ACTIVE, started.state, "done", NOW)
    assert alone.handled_by == engine.HandledBy.CONVERSATION
    with_ref = handle(fs, ACTIVE, started.state, "DONE C7K2P", NOW)
    assert with_ref.handled_by == engine.HandledBy.CASE and with_ref.state == started.state
    assert handle(fs, ACTIVE, None, "DONE", NOW).handled_by == engine.HandledBy.CASE  # outside: a case word


ASKED = ContactView(status="active", language=None, country="MW", joined=True, check="open")


@pytest.mark.parametrize("text,answer,lang", [("1", "yes", "en"), ("2", "no", "en"), ("3", "partly", "en"),
                                              ("Yes it came", "yes", "en"), ("si", "yes", "es"),
                                              ("AYI", "no", "ny"), ("pangono", "partly", "ny"),
                                              ("parte", "partly", "es"), ("no, nobody came", "no", "en")])
def test_an_asked_supporter_answers_the_check_in_any_language(fs, text: str, answer: str, lang: str) -> None:
    result = handle(fs, ASKED, None, text, NOW, org="Net")
    assert result.handled_by == "check" and result.actions == [engine.CheckAnswer(answer, lang)]
    assert result.replies == []  # the adapter writes the one reply


def test_check_answers_yield_to_stop_a_conversation_a_dispute_and_a_pledge(fs) -> None:
    assert handle(fs, ASKED, None, "STOP", NOW, org="Net").handled_by == "stop"
    stopped = ContactView(status="stopped", language="en", joined=True, check="open")
    assert handle(fs, stopped, None, "2", NOW, org="Net").handled_by == "inbox"  # STOP wins: not counted
    started = handle(fs, ASKED, None, "REPORT", NOW, org="Net")
    assert started.state is not None
    assert handle(fs, ASKED, started.state, "1", NOW, org="Net").handled_by == "conversation"
    dispute = handle(fs, ASKED, None, "NO R7K2PQ", NOW, org="Net")
    assert dispute.handled_by == "case" and dispute.actions[0].verb == "dispute"  # type: ignore[union-attr]
    late = ContactView(status="active", language="en", joined=True, check="late", pledges={"yes": 7})
    assert handle(fs, late, None, "YES", NOW, org="Net").handled_by == "pledge"
    assert handle(fs, late, None, "2", NOW, org="Net").handled_by == "check"  # told it is already answered
    assert handle(fs, ACTIVE, None, "2", NOW, org="Net").handled_by == "inbox"  # never asked: the inbox
