"""Pure: reads a supporter's answer to an ask step (choice, yes/no, number, place, text, consent).

The engine calls `interpret` for the open question and `prefix_answer` for the words after a
keyword ("REPORT CLINIC ZOMBA NO ..."); both return the value kept under the step's id.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core import steps
from gateway.core.flowfile import KEEP_NAME, MAX_TEXT_ANSWER, FlowSet
from gateway.core.places import Gazetteer, match_place, match_place_prefix
from gateway.core.text import fold

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class Token:
    """One word of a text as typed, and folded for matching."""

    raw: str
    folded: str


def tokenize(text: str) -> list[Token]:
    """The words of a text; punctuation-only words are dropped."""
    return [Token(raw, f) for raw in text.split() if (f := fold(raw))]


def interpret(fs: FlowSet, step: steps.Ask, text: str, tokens: list[Token] | None = None,
              language: str | None = None, country: str | None = None) -> tuple[bool, Any]:
    """Read an answer for an ask step: (True, value) or (False, None) when it is unusable."""
    tokens = tokenize(text) if tokens is None else tokens
    if step.expect == "consent":
        return True, consents(fs, text)  # every answer is usable: anything but an explicit yes is "no"
    if not tokens and step.expect != "text":
        return False, None
    if step.skippable and tokens and tokens[0].folded in fs.system_words("skip") and len(tokens) == 1:
        return True, None
    if step.expect == "choice":
        whole = fold(text)
        found = _choice(step, whole, language) or next(
            (c for t in tokens if (c := _choice(step, t.folded, language))), None)
        found = found or next((c for t in tokens if (c := _choice_fuzzy(step, t.folded))), None)
        return (True, found) if found else (False, None)
    if step.expect == "choices":
        picked: list[str] = []
        for t in tokens:
            c = _choice(step, t.folded, language) or _choice_fuzzy(step, t.folded)
            if c and c not in picked:
                picked.append(c)
        return (True, picked) if picked else (False, None)
    if step.expect == "yesno":
        return _yesno(fs, tokens[0].folded)
    if step.expect == "number":
        match = _NUMBER.search(text)
        if not match:
            return False, None
        number = float(match.group().replace(",", "."))
        if (step.minimum is not None and number < step.minimum) or (
                step.maximum is not None and number > step.maximum):
            return False, None
        return True, int(number) if number.is_integer() else number
    if step.expect == "place":
        place = match_place(text, _gazetteers(fs, step), prefer_country=country)
        return (True, place.name) if place else (False, None)
    cleaned = cut(" ".join(text.split()), step)
    return (True, cleaned) if cleaned else (False, None)


def cut(text: str, step: steps.Ask) -> str:
    """A free-text answer cut to what the question keeps (its column's length, see flowfile)."""
    return text[:step.max_length or MAX_TEXT_ANSWER].rstrip()


def consents(fs: FlowSet, text: str) -> bool:
    """True only when the whole answer asks for the name (NAME, "use my name") and says no 'no' anywhere.

    "No, don't use my name" and "No quiero que aparezca mi nombre" name the name but refuse it.
    """
    said = fold(text).split()
    return _mentions(said, fs.system_words(KEEP_NAME)) and not _mentions(said, fs.system_words("no_name"))


def _mentions(said: list[str], entries: Mapping[str, str]) -> bool:
    for entry in entries:
        if entry.endswith("*"):  # a word start, for languages that negate inside the word (Chichewa "musa-")
            if any(w.startswith(entry[:-1]) for w in said):
                return True
            continue
        parts = entry.split()  # "don't" is folded to "don t": match it as a run of words
        if any(said[i:i + len(parts)] == parts for i in range(len(said) - len(parts) + 1)):
            return True
    return False


def _gazetteers(fs: FlowSet, step: steps.Ask) -> list[Gazetteer]:
    return [fs.gazetteers[g] for g in step.gazetteers if g in fs.gazetteers]


def _choice(step: steps.Ask, word: str, language: str | None) -> str | None:
    # The conversation's language first, so "1" or a shared word resolves the way the prompt read.
    langs = sorted({lang for words in step.choices.values() for lang in words},
                   key=lambda lang: lang != language)
    for lang in langs:
        for name, words in step.choices.items():
            if word in words.get(lang, ()):
                return name
    return None


def _choice_fuzzy(step: steps.Ask, word: str) -> str | None:
    if len(word) < 4 or word.isdigit():  # short words and numbers only match exactly
        return None
    vocab = {w: name for name, by_lang in step.choices.items() for ws in by_lang.values()
             for w in ws if len(w) >= 4}
    close = difflib.get_close_matches(word, list(vocab), n=2, cutoff=0.8)
    names = {vocab[c] for c in close}
    return names.pop() if len(names) == 1 else None


def _yesno(fs: FlowSet, word: str) -> tuple[bool, Any]:
    if word in fs.system_words("yes"):
        return True, True
    if word in fs.system_words("no"):
        return True, False
    return False, None


def prefix_answer(fs: FlowSet, step: steps.Ask, tokens: list[Token], language: str,
                  country: str | None) -> tuple[int, Any]:
    """How many leading tokens answer this step, and the answer."""
    if step.expect == "place":
        found = match_place_prefix([t.folded for t in tokens], _gazetteers(fs, step),
                                   prefer_country=country)
        return (found[1], found[0].name) if found else (0, None)
    for n in (3, 2, 1):  # multi-word choices such as "mobile clinic" before single words
        if n > len(tokens):
            continue
        phrase = " ".join(t.folded for t in tokens[:n])
        if step.expect == "choice":
            choice = _choice(step, phrase, language) or (n == 1 and _choice_fuzzy(step, phrase)) or None
            if choice:
                return n, choice
        elif step.expect == "choices" and n == 1:
            choice = _choice(step, phrase, language) or _choice_fuzzy(step, phrase)
            if choice:
                return 1, [choice]
        elif step.expect == "yesno" and n == 1:
            ok, value = _yesno(fs, phrase)
            if ok:
                return 1, value
        elif step.expect == "number" and n == 1 and _NUMBER.fullmatch(phrase):
            return 1, interpret(fs, step, tokens[0].raw)[1]
    return 0, None
