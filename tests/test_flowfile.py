"""Flow files: loading the shipped flows, and every mistake reported with its file and key."""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.config import ROOT
from gateway.flowfile import FlowError, check_prompts, load_flows, load_yaml, parse_duration

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
