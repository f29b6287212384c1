"""Flow files: loading the shipped flows, and every mistake reported with its file and key."""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.core.flowfile import (
    CONTACT_FIELDS,
    MAX_TEXT_ANSWER,
    REPORT_ANSWERS,
    FlowError,
    check_prompts,
    load_flows,
    load_yaml,
    parse_duration,
)
from gateway.settings import ROOT

FLOWS = ROOT / "flows"


def flows_with(tmp_path: Path, name: str, text: str) -> Path:
    """A copy of the shipped flows with one file added or replaced."""
    directory = tmp_path / "flows"
    shutil.copytree(FLOWS, directory)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(FlowError) as exc:
        load_flows(directory)
    return exc.value.errors


def test_shipped_flows_load() -> None:
    fs = load_flows(FLOWS)
    assert sorted(fs.flows) == ["join", "report", "rights"]
    assert sorted(fs.gazetteers) == ["honduras", "malawi"]
    assert fs.triggers["lowa"] == ("join", "ny")
    assert fs.triggers["denuncia"] == ("report", "es")
    assert fs.triggers["join"] == ("join", "en")
    assert "stop" not in fs.triggers
    assert fs.flows["report"].prefill and not fs.flows["join"].prefill
    assert fs.flows["join"].drafts == {"ny", "es"}


@pytest.mark.parametrize("value, expected", [
    ("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30)), ("2d", timedelta(days=2)),
    (" 5 h ", timedelta(hours=5)), ("1w", None), ("h", None), ("", None), (24, None), ("1.5h", None),
])
def test_parse_duration(value: object, expected: timedelta | None) -> None:
    assert parse_duration(value) == expected


def test_yaml_yes_no_on_off_stay_words() -> None:
    assert load_yaml("w: [YES, NO, yes, no, ON, OFF, y, n]\nb: [true, false]") == {
        "w": ["YES", "NO", "yes", "no", "ON", "OFF", "y", "n"], "b": [True, False]}


def test_shipped_yes_no_choices_and_keywords_are_words() -> None:
    fs = load_flows(FLOWS)
    delivered = next(s for s in fs.flows["report"].steps if s.id == "delivered")
    assert list(delivered.choices) == ["yes", "no", "partly"]
    assert delivered.choices["no"]["en"] == ("2", "no", "n", "never")
    assert fs.system_words("yes")["yes"] == "en"
    assert fs.system_words("no")["no"] in ("en", "es")


def test_system_words_are_built_once_per_flow_set_and_cannot_be_changed_by_a_caller() -> None:
    fs = load_flows(FLOWS)
    stop = fs.system_words("stop")
    assert stop is fs.system_words("stop")  # read on every text: built once, when first asked
    assert {"stop", "leka", "parar"} <= set(stop) and stop["leka"] == "ny"
    with pytest.raises(TypeError):
        stop["stop"] = "xx"  # type: ignore[index]
    assert fs.system_words("no such meaning") == {}


def test_several_errors_at_once_each_naming_the_file(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "bad.yaml", """
flow: bad
keywords: {en: [BAD]}
expires_after: soon
steps:
  - id: q
    ask: "Question?"
    expect: maybe
  - goto: nowhere
""")
    errors = errors_of(directory)
    path = str(directory / "bad.yaml")
    assert len(errors) == 3, errors
    assert all(e.startswith(f"{path}: ") for e in errors)
    assert f"{path}: expires_after: expected a duration like 30m, 24h or 2d" in errors
    assert any(e.startswith(f"{path}: steps[0].expect: expected one of choice") for e in errors)
    assert f"{path}: steps[1]: goes to 'nowhere', but no step has that id" in errors


def test_unknown_language_key(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "bad.yaml", """
flow: bad
keywords: {en: [BAD], fr: [MAUVAIS]}
steps:
  - say: {en: "Hello", fr: "Bonjour"}
""")
    path = directory / "bad.yaml"
    assert sorted(errors_of(directory)) == sorted([
        f"{path}: keywords.fr: unknown language (known: en, ny, es)",
        f"{path}: steps[0].say.fr: unknown language (known: en, ny, es)"])


def test_languages_are_declared_once_in_system_yaml() -> None:
    assert load_flows(FLOWS).languages == ("en", "ny", "es")


def test_a_language_declared_in_system_yaml_is_accepted_in_every_flow(tmp_path: Path) -> None:
    system = (FLOWS / "system.yaml").read_text(encoding="utf-8").replace("languages: [en, ny, es]",
                                                                         "languages: [en, ny, es, fr]", 1)
    directory = flows_with(tmp_path, "system.yaml", system)
    (directory / "bad.yaml").write_text('flow: bad\nkeywords: {en: [BAD], fr: [MAUVAIS]}\nsteps: [{say: x}]\n')
    fs = load_flows(directory)
    assert fs.languages == ("en", "ny", "es", "fr") and fs.triggers["mauvais"] == ("bad", "fr")


@pytest.mark.parametrize(("line", "error"), [
    ("", "languages: expected a list of language codes, e.g. [en, ny, es]"),
    ("languages: en", "languages: expected a list of language codes, e.g. [en, ny, es]"),
    ("languages: [en, English]", "languages: expected a list of language codes, e.g. [en, ny, es]"),
    ("languages: [en, ny, es, ny]", "languages: a language is listed twice"),
])
def test_a_broken_languages_declaration_is_one_error(tmp_path: Path, line: str, error: str) -> None:
    system = (FLOWS / "system.yaml").read_text(encoding="utf-8").replace("languages: [en, ny, es]", line, 1)
    directory = flows_with(tmp_path, "system.yaml", system)
    assert errors_of(directory) == [f"{directory / 'system.yaml'}: {error}"]


def test_the_default_language_must_be_declared(tmp_path: Path) -> None:
    system = (FLOWS / "system.yaml").read_text(encoding="utf-8").replace("languages: [en, ny, es]",
                                                                         "languages: [ny, es]", 1)
    directory = flows_with(tmp_path, "system.yaml", system)
    errors = errors_of(directory)
    assert errors[0] == f"{directory / 'system.yaml'}: languages: the default language 'en' is not listed"
    assert f"{directory / 'system.yaml'}: keywords.stop.en: unknown language (known: ny, es)" in errors


def test_missing_default_language(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "bad.yaml", """
flow: bad
keywords: {ny: [ZOIPA]}
steps:
  - say: {ny: "Moni", es: "Hola"}
""")
    assert errors_of(directory) == [f"{directory / 'bad.yaml'}: steps[0].say: missing the default language 'en'"]


def test_branch_on_a_step_that_is_not_an_ask(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "bad.yaml", """
flow: bad
keywords: {en: [BAD]}
steps:
  - id: hello
    say: "Hello"
  - branch: hello
    cases: {x: hello}
""")
    assert errors_of(directory) == [f"{directory / 'bad.yaml'}: steps[1].branch: 'hello' is not the id of an ask step"]


def test_check_prompts_measures_encoding_and_segments(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "poll.yaml", """
flow: poll
keywords: {en: [POLL]}
steps:
  - id: q
    ask: {en: "Zażółć? 1 Yes 2 No", es: "%s"}
    expect: yesno
  - say: "Thanks 🙂"
""" % ("a" * 161))
    checks = {c.where.split(": ", 1)[1]: c for c in check_prompts(load_flows(directory), "Org")
              if c.where.startswith(str(directory / "poll.yaml"))}
    assert set(checks) == {"steps[0].ask.en", "steps[0].ask.es", "steps[1].say.en"}
    en, es, say = checks["steps[0].ask.en"], checks["steps[0].ask.es"], checks["steps[1].say.en"]
    assert (en.encoding, en.segments, en.characters, en.ok) == ("UCS-2", 1, 18, True)
    assert (es.encoding, es.segments, es.characters, es.ok) == ("GSM-7", 2, 161, False)
    assert (say.encoding, say.segments) == ("UCS-2", 1)


def test_check_prompts_fills_placeholders_before_measuring() -> None:
    checks = check_prompts(load_flows(FLOWS), "X" * 100)
    stop_en = next(c for c in checks if c.where.endswith("texts.stop.en"))
    expected = "You will get no more messages from " + "X" * 100 + ". Text START to join again."
    assert (stop_en.characters, stop_en.segments, stop_en.ok) == (len(expected), 2, False)


def test_the_field_table_matches_the_database_columns() -> None:
    """The pure table the loader and engine cut answers to cannot drift from gateway/models.py."""
    from gateway import models

    tables = {"reports": models.Report.__table__, "contacts": models.Contact.__table__}
    for where in (*REPORT_ANSWERS.values(), *CONTACT_FIELDS.values()):
        column = tables[where.table].c[where.column]
        assert getattr(column.type, "length", None) == where.length, (where, column.type)
    used = {c.name for c in tables["reports"].c} - {"id", "ref", "anonymous", "contact_id", "country", "language",
                                                     "created_at", "source", "check_id", "verification"}
    assert used == {c.column for c in REPORT_ANSWERS.values()}  # every report column an answer fills is listed


def test_report_flow_is_private_and_others_are_not() -> None:
    fs = load_flows(FLOWS)
    assert fs.flows["report"].private is True
    assert fs.flows["join"].private is False and fs.flows["rights"].private is False


def test_private_must_be_true_or_false(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "bad.yaml",
                           "flow: bad\nkeywords: {en: [BAD]}\nprivate: maybe\nsteps: [{say: x}]\n")
    assert errors_of(directory) == [f"{directory / 'bad.yaml'}: private: expected true or false"]


def test_text_answers_get_their_columns_limit() -> None:
    fs = load_flows(FLOWS)
    steps = {s.id: s for s in fs.flows["report"].steps if s.kind == "ask"}
    assert (steps["service_other"].max_length, steps["details"].max_length) == (200, MAX_TEXT_ANSWER)
    name = next(s for s in fs.flows["join"].steps if s.id == "name")
    assert name.max_length == CONTACT_FIELDS["name"].length == 120


def _report_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (FLOWS / "report.yaml").read_text(encoding="utf-8")
    assert old in text
    return flows_with(tmp_path, "report.yaml", text.replace(old, new, 1))


def test_a_declared_limit_longer_than_the_column_is_refused(tmp_path: Path) -> None:
    directory = _report_with(tmp_path, "    expect: text\n", "    expect: text\n    max_length: 300\n")
    path = directory / "report.yaml"
    assert errors_of(directory) == [
        f"{path}: steps[2].max_length: 300 does not fit reports.service_detail (200 characters)"]


def test_a_shorter_declared_limit_is_kept(tmp_path: Path) -> None:
    directory = _report_with(tmp_path, "    expect: text\n", "    expect: text\n    max_length: 50\n")
    assert next(s for s in load_flows(directory).flows["report"].steps if s.id == "service_other").max_length == 50


def test_a_free_text_answer_kept_nowhere_still_has_a_cap(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "poll.yaml", """
flow: poll
keywords: {en: [POLL]}
steps:
  - id: q
    ask: "Anything to add?"
    expect: text
    max_length: 5000
""")
    assert errors_of(directory) == [
        f"{directory / 'poll.yaml'}: steps[0].max_length: 5000 is more than a text answer may keep ({MAX_TEXT_ANSWER})"]


def test_a_choice_name_longer_than_its_column_is_refused(tmp_path: Path) -> None:
    directory = _report_with(tmp_path, "      partly: {", "      partly_delivered: {")
    assert errors_of(directory) == [(f"{directory / 'report.yaml'}: steps[4].choices.partly_delivered: "
                                     "'partly_delivered' does not fit reports.delivered (10 characters)")]


def test_a_set_value_naming_no_answer_is_refused(tmp_path: Path) -> None:
    text = (FLOWS / "join.yaml").read_text(encoding="utf-8").replace('name: "{name}"', 'name: "{nmae}"')
    directory = flows_with(tmp_path, "join.yaml", text)
    assert errors_of(directory) == [
        f"{directory / 'join.yaml'}: steps[5].set.name: '{{nmae}}' is not the id of an ask step"]


def test_a_consent_step_after_free_text_or_with_another_id_is_refused(tmp_path: Path) -> None:
    directory = flows_with(tmp_path, "poll.yaml", """
flow: poll
keywords: {en: [POLL]}
steps:
  - id: details
    ask: "Tell us more."
    expect: text
  - id: keep_name
    ask: "Reply NAME to show your name."
    expect: consent
  - id: other
    ask: "Reply NAME to show your name."
    expect: consent
""")
    path = directory / "poll.yaml"
    assert sorted(errors_of(directory)) == sorted([
        f"{path}: steps[1]: ask for consent before any free-text question (steps[0])",
        f"{path}: steps[2]: ask for consent before any free-text question (steps[0])",
        f"{path}: steps[2].id: a consent answer is stored as 'keep_name'"])
