"""Pure: loads and validates flows/*.yaml; every error names the file and the key.

flows/system.yaml declares `languages` (e.g. [en, ny, es]): every text and keyword is in one of them.

Flow-level keys: `flow`, `keywords`, `expires_after` (24h), `drafts` (languages no native speaker has
checked), `prefill` (words after the keyword answer the first questions) and `private` (true: a
conversation of this flow that ends without saving keeps none of the words the supporter sent).
Ask steps may add `max_length` (a text answer's characters, never more than its column holds: see
REPORT_ANSWERS and CONTACT_FIELDS). `expect: consent` (id `keep_name`, before any free-text question)
reads the whole answer: only the keep_name word with none of the no_name words keeps a name.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from gateway.core.places import Gazetteer, GazetteerError, load_gazetteers
from gateway.core.segments import count_segments
from gateway.core.steps import (
    Ask,
    Branch,
    End,
    Goto,
    Save,
    Say,
    Set,
    Step,
    Subscribe,
    Tag,
    prompts,
    targets,
)
from gateway.core.text import fold

EXPECTS = ("choice", "choices", "yesno", "number", "place", "text", "consent")
SYSTEM_KEYWORDS = ("stop", "start", "start_when_stopped", "help", "skip", "yes", "no", "keep_name", "no_name")
KEEP_NAME = "keep_name"  # the answer that says a report may carry the reporter's name (True only on consent)
MAX_TEXT_ANSWER = 640  # a free-text answer with no shorter column is still cut here (four SMS segments)


@dataclass(frozen=True)
class Column:
    """Where a saved answer is stored and how many characters it holds (None: Text, no limit)."""

    table: str
    column: str
    length: int | None


# Where each answer goes, kept equal to gateway/models.py by tests/test_flowfile.py; this module
# stays free of SQLAlchemy. A report keeps these answers (by id) when its flow has `save: report`:
REPORT_ANSWERS: dict[str, Column] = {
    "service": Column("reports", "service", 40),
    "service_other": Column("reports", "service_detail", 200),
    "place": Column("reports", "place", 80),
    "delivered": Column("reports", "delivered", 10),
    "details": Column("reports", "details", None),
}
# ... and a `set:` step writes these contact fields:
CONTACT_FIELDS: dict[str, Column] = {
    "name": Column("contacts", "name", 120),
    "place": Column("contacts", "place", 80),
    "language": Column("contacts", "language", 8),
}
SYSTEM_TEXTS = ("stop", "start", "help", "hint", "gave_up", "expired_hint", "pledge")
# Cases (gateway/cases/): optional, so a flows directory without them still loads; `flows check`
# measures every one present.
CASE_TEXTS = ("case_sent", "case_disputed", "case_escalated", "case_escalated_promise", "case_escalated_nodate",
              "case_ack_ok", "case_promise_ok", "case_done_ok", "case_not_yours", "case_bad_ref",
              "case_bad_date", "case_refused", "status_none", "status_unknown", "status_open", "status_sent",
              "status_acknowledged", "status_promised", "status_resolved", "status_overdue", "status_disputed",
              "status_closed", "reporter_promised", "reporter_resolved", "dispute_ok", "dispute_refused")
CASE_KEYWORDS = ("status", "dispute", "ack", "promise", "done")
# Delivery checks and corroboration (gateway/evidence/): optional like the case texts.
EVIDENCE_TEXTS = ("check_ask", "check_thanks", "check_late", "corroborate_ask", "service_label",
                  "community_summary", "community_summary_short")
EVIDENCE_KEYWORDS = ("partly",)  # with yes and no: the answers to a check (1 Yes 2 No 3 Partly)
# Sample values used to measure prompts whose placeholders are filled at run time.
SAMPLE_VALUES = {"name": "Chikondi Banda", "place": "Nkhata Bay", "ref": "R7K2PQ",
                 "keyword": "REPORT", "language": "en", "case": "C7K2P", "count": "12", "service": "fertilizer",
                 "since": "12/10", "date": "12/10", "days": "14", "role": "District Health Officer",
                 "org": "Our Network", "status": "acknowledged", "label": "the mobile clinic", "came": "12",
                 "due": "14", "month": "September"}
_DURATION = re.compile(r"^(\d+)\s*([mhd])$")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
_LANGUAGE = re.compile(r"[a-z]{2,3}")  # ISO 639 codes: what contacts.language (8 characters) keeps


class _Loader(yaml.SafeLoader):
    """YAML without the 1.1 surprise that YES, NO, ON and OFF are booleans: here they are words."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse flow and gazetteer YAML, keeping yes/no as words."""
    return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader subclass


class FlowError(ValueError):
    """One or more flow files are broken; the message lists every problem, one a line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Flow:
    """A conversation started by a keyword."""

    name: str
    path: str
    keywords: dict[str, tuple[str, ...]]
    expires_after: timedelta
    drafts: frozenset[str]
    prefill: bool
    steps: tuple[Step, ...]
    index: dict[str, int]
    private: bool = False  # ended without a save: the adapter keeps none of the supporter's words


@dataclass(frozen=True)
class System:
    """Compliance keywords and the texts the gateway says outside any flow."""

    path: str
    languages: tuple[str, ...]  # declared once, here; flows and the console use no others
    keywords: dict[str, dict[str, tuple[str, ...]]]
    texts: dict[str, dict[str, str]]
    drafts: frozenset[str]


_NO_WORDS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class FlowSet:
    """Everything the engine needs: flows, system texts, gazetteers, trigger words."""

    flows: dict[str, Flow]
    system: System
    gazetteers: dict[str, Gazetteer]
    default_language: str
    triggers: dict[str, tuple[str, str]]  # folded keyword -> (flow name, language)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages flows/system.yaml declares, in its order."""
        return self.system.languages

    def text(self, texts: dict[str, str], language: str) -> str:
        """The text in a language, falling back to the default language."""
        return texts.get(language) or texts.get(self.default_language) or next(iter(texts.values()), "")

    def system_words(self, meaning: str) -> Mapping[str, str]:
        """Folded word -> language for a system keyword meaning (stop, help, yes, ...)."""
        return self._system_words.get(meaning, _NO_WORDS)

    @cached_property
    def _system_words(self) -> dict[str, Mapping[str, str]]:
        # Built once per loaded flow set: every text asks for several meanings (a webhook under load
        # for the compliance words alone), and a flow set never changes once loaded.
        return {meaning: MappingProxyType({w: lang for lang, ws in by_lang.items() for w in ws})
                for meaning, by_lang in self.system.keywords.items()}


def parse_duration(value: Any) -> timedelta | None:
    """'24h', '30m', '2d' -> timedelta; None if it is not such a string."""
    match = _DURATION.match(str(value).strip())
    if not match:
        return None
    amount, unit = int(match.group(1)), match.group(2)
    return {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]


class _Reader:
    """Collects errors for one file so an organizer sees all of them at once."""

    def __init__(self, path: str, languages: tuple[str, ...], default_language: str) -> None:
        self.path, self.languages, self.default = path, languages, default_language
        self.errors: list[str] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.path}: {key}: {message}")

    def declared(self, language: str) -> bool:
        """A language system.yaml lists (any, when that list is broken: its one error is enough)."""
        return not self.languages or language in self.languages

    def texts(self, value: Any, key: str) -> dict[str, str]:
        if isinstance(value, str):
            return {self.default: value}
        if not isinstance(value, dict) or not value:
            self.error(key, "expected texts by language, e.g. {en: \"...\"}")
            return {}
        out = {}
        for lang, text in value.items():
            if not self.declared(lang):
                self.error(f"{key}.{lang}", f"unknown language (known: {', '.join(self.languages)})")
            elif not isinstance(text, str) or not text.strip():
                self.error(f"{key}.{lang}", "expected a non-empty text")
            else:
                out[lang] = text.strip()
        if out and self.default not in out:
            self.error(key, f"missing the default language '{self.default}'")
        return out

    def words(self, value: Any, key: str) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, dict):
            self.error(key, "expected words by language, e.g. {en: [JOIN]}")
            return {}
        out = {}
        for lang, ws in value.items():
            if not self.declared(lang):
                self.error(f"{key}.{lang}", f"unknown language (known: {', '.join(self.languages)})")
                continue
            ws = ws if isinstance(ws, list) else [ws]
            # A trailing * marks a word start ("OSA*"), used where an answer is read whole (consent).
            folded = tuple(fold(str(w)) + ("*" if str(w).endswith("*") else "") for w in ws if fold(str(w)))
            if not folded:
                self.error(f"{key}.{lang}", "expected at least one word")
            out[lang] = folded
        return out


def _read_yaml(path: Path, errors: list[str]) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read: {exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        errors.append(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}")
    return None


def _parse_step(r: _Reader, raw: Any, key: str, gazetteers: dict[str, Gazetteer]) -> Step | None:
    if raw == "end":
        return End(key=key)
    if not isinstance(raw, dict):
        r.error(key, "expected a mapping such as {say: ...} or {id: ..., ask: ..., expect: ...}")
        return None
    sid = raw.get("id")
    if sid is not None and not (isinstance(sid, str) and re.fullmatch(r"[a-z][a-z0-9_]*", sid)):
        r.error(f"{key}.id", "expected a lower-case name like 'place'")
        sid = None
    segs = raw.get("allow_segments", 1)
    if not isinstance(segs, int) or segs < 1:
        r.error(f"{key}.allow_segments", "expected a whole number of segments, 1 or more")
        segs = 1
    if "ask" in raw:
        return _parse_ask(r, raw, key, sid, segs, gazetteers)
    for kind in (Say, End):
        if kind.kind in raw:
            value = raw[kind.kind]
            texts = r.texts(value, f"{key}.{kind.kind}") if value is not None else {}
            return kind(key=key, id=sid, texts=texts, allow_segments=segs)
    if "branch" in raw:
        cases = raw.get("cases")
        if not isinstance(cases, dict) or not cases:
            r.error(f"{key}.cases", "expected answer values mapped to step ids")
            cases = {}
        default = raw.get("default")
        return Branch(key=key, id=sid, on=str(raw["branch"]),
                      cases={fold(str(k)) if k is not True and k is not False else str(k).lower(): str(v)
                             for k, v in cases.items()},
                      default=None if default is None else str(default))
    if "goto" in raw:
        return Goto(key=key, id=sid, target=str(raw["goto"]))
    if "set" in raw:
        fields = raw["set"]
        if not isinstance(fields, dict):
            r.error(f"{key}.set", f"expected contact fields ({', '.join(CONTACT_FIELDS)}) mapped to values")
            fields = {}
        for name in fields:
            if name not in CONTACT_FIELDS:
                r.error(f"{key}.set.{name}", f"not a contact field (known: {', '.join(CONTACT_FIELDS)})")
        return Set(key=key, id=sid, fields={k: str(v) for k, v in fields.items()})
    if "tag" in raw:
        tags = raw["tag"] if isinstance(raw["tag"], list) else [raw["tag"]]
        return Tag(key=key, id=sid, tags=tuple(str(t) for t in tags))
    if "subscribe" in raw:
        return Subscribe(key=key, id=sid)
    if "save" in raw:
        if raw["save"] != "report":
            r.error(f"{key}.save", "only 'report' can be saved")
        return Save(key=key, id=sid)
    r.error(key, "unknown step: expected one of say, ask, branch, goto, set, tag, subscribe, save, end")
    return None


def _parse_ask(r: _Reader, raw: dict[str, Any], key: str, sid: str | None, segs: int,
               gazetteers: dict[str, Gazetteer]) -> Ask:
    if sid is None:
        r.error(f"{key}.id", "an ask step needs an id to store its answer under")
    expect = raw.get("expect")
    if expect not in EXPECTS:
        r.error(f"{key}.expect", f"expected one of {', '.join(EXPECTS)}")
    choices: dict[str, dict[str, tuple[str, ...]]] = {}
    if expect in ("choice", "choices"):
        raw_choices = raw.get("choices")
        if not isinstance(raw_choices, dict) or not raw_choices:
            r.error(f"{key}.choices", "expected choice names mapped to their words per language")
        else:
            for name, ws in raw_choices.items():
                choices[str(name)] = r.words(ws, f"{key}.choices.{name}")
    places = raw.get("places", list(gazetteers))
    places = tuple(places if isinstance(places, list) else [places])
    for g in places:
        if g not in gazetteers:
            r.error(f"{key}.places", f"no gazetteer named '{g}' in flows/places/")
    max_length = raw.get("max_length")
    if max_length is not None and (expect != "text" or not isinstance(max_length, int)
                                   or isinstance(max_length, bool) or max_length < 1):
        r.error(f"{key}.max_length", "expected a whole number of characters, on a text question only")
        max_length = None
    if expect == "consent" and sid is not None and sid != KEEP_NAME:
        r.error(f"{key}.id", f"a consent answer is stored as '{KEEP_NAME}'")
    bounds = {}
    for bound in ("min", "max"):
        if bound in raw and not isinstance(raw[bound], (int, float)):
            r.error(f"{key}.{bound}", "expected a number")
        else:
            bounds[bound] = raw.get(bound)
    return Ask(key=key, id=sid, texts=r.texts(raw["ask"], f"{key}.ask"), expect=expect,
               choices=choices, skippable=bool(raw.get("skip", False)), minimum=bounds.get("min"),
               maximum=bounds.get("max"), gazetteers=places,
               retry=r.texts(raw["retry"], f"{key}.retry") if "retry" in raw else {},
               allow_segments=segs, max_length=max_length)


def load_flow(path: Path, languages: tuple[str, ...], default_language: str,
              gazetteers: dict[str, Gazetteer], errors: list[str]) -> Flow | None:
    """Read one flow file; append problems to `errors`."""
    data = _read_yaml(path, errors)
    if data is None:
        return None
    r = _Reader(str(path), languages, default_language)
    if not isinstance(data, dict) or not isinstance(data.get("flow"), str):
        errors.append(f"{path}: flow: missing; a flow file starts with 'flow: NAME'")
        return None
    keywords = r.words(data.get("keywords", {}), "keywords")
    expires = parse_duration(data.get("expires_after", "24h"))
    if expires is None:
        r.error("expires_after", "expected a duration like 30m, 24h or 2d")
        expires = timedelta(hours=24)
    drafts = data.get("drafts", [])
    if not isinstance(drafts, list) or any(not r.declared(d) for d in drafts):
        r.error("drafts", f"expected a list of languages ({', '.join(languages)})")
        drafts = []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        r.error("steps", "expected a list of steps")
        raw_steps = []
    steps = [s for i, raw in enumerate(raw_steps) if (s := _parse_step(r, raw, f"steps[{i}]", gazetteers))]
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.id in index:
            r.error(f"{step.key}.id", f"'{step.id}' is used twice")
        elif step.id:
            index[step.id] = i
    answers = {s.id for s in steps if isinstance(s, Ask)}
    for step in steps:
        for target in targets(step):
            if target != "end" and target not in index:
                r.error(step.key, f"goes to '{target}', but no step has that id")
        if isinstance(step, Branch) and step.on not in answers | {KEEP_NAME}:  # keep_name: also the keyword's word
            r.error(f"{step.key}.branch", f"'{step.on}' is not the id of an ask step")
    first_text = next((i for i, s in enumerate(steps) if isinstance(s, Ask) and s.expect == "text"), len(steps))
    for step in steps[first_text:]:
        if isinstance(step, Ask) and step.expect == "consent":
            # Asked after the details, a reporter who gives up has already typed what could name them.
            r.error(step.key, f"ask for consent before any free-text question ({steps[first_text].key})")
    steps = _fit_answers(r, steps, gazetteers)
    private = data.get("private", False)
    if not isinstance(private, bool):
        r.error("private", "expected true or false")
        private = False
    errors.extend(r.errors)
    return Flow(name=data["flow"], path=str(path), keywords=keywords, expires_after=expires,
                drafts=frozenset(drafts), prefill=bool(data.get("prefill", False)),
                steps=tuple(steps), index=index, private=private)


def _fit_answers(r: _Reader, steps: list[Step], gazetteers: dict[str, Gazetteer]) -> list[Step]:
    """Check every kept answer fits where it is stored; give each text question its limit."""
    asks = {s.id: s for s in steps if isinstance(s, Ask) and s.id}
    homes: dict[str, list[Column]] = {sid: [] for sid in asks}
    if any(isinstance(s, Save) for s in steps):
        for sid, column in REPORT_ANSWERS.items():
            if sid in asks:
                homes[sid].append(column)
    known = set(asks) | {"language", "org", "name", "place"}  # what a set value may name (see engine.render)
    for step in steps:
        for name, value in step.fields.items() if isinstance(step, Set) else ():
            for used in _PLACEHOLDER.findall(value):
                if used not in known:
                    r.error(f"{step.key}.set.{name}", f"'{{{used}}}' is not the id of an ask step")
                elif used in asks and name in CONTACT_FIELDS:
                    homes[used].append(CONTACT_FIELDS[name])
    out: list[Step] = []
    for step in steps:
        if not isinstance(step, Ask):
            out.append(step)
            continue
        cols = homes.get(step.id or "", [])
        if step.id in REPORT_ANSWERS and REPORT_ANSWERS[step.id] in cols \
                and step.expect in ("choices", "yesno", "number", "consent"):
            r.error(f"{step.key}.expect", f"a report keeps '{step.id}' as text: expect choice, place or text")
        bounded = sorted((c for c in cols if c.length is not None), key=lambda c: c.length or 0)
        tightest = bounded[0] if bounded else None
        limit = tightest.length if tightest and tightest.length is not None else MAX_TEXT_ANSWER
        where = f"{tightest.table}.{tightest.column} ({limit} characters)" if tightest else ""
        if step.expect == "text":
            if step.max_length is not None and step.max_length > limit:
                r.error(f"{step.key}.max_length", f"{step.max_length} does not fit {where}" if tightest else
                        f"{step.max_length} is more than a text answer may keep ({MAX_TEXT_ANSWER})")
            step = replace(step, max_length=min(step.max_length or limit, limit))
        elif tightest and step.expect in ("choice", "choices"):
            for choice in step.choices:
                if len(choice) > limit:
                    r.error(f"{step.key}.choices.{choice}", f"'{choice}' does not fit {where}")
        elif tightest and step.expect == "place":
            for g in step.gazetteers:
                for place in gazetteers[g].places if g in gazetteers else ():
                    if len(place.name) > limit:
                        r.error(f"{step.key}.places", f"'{place.name}' in '{g}' does not fit {where}")
        out.append(step)
    return out


def load_system(path: Path, default_language: str, errors: list[str]) -> System:
    """Read flows/system.yaml: the languages, compliance keywords and the gateway's own texts."""
    data = _read_yaml(path, errors) or {}
    languages = _languages(str(path), data.get("languages"), default_language, errors)
    r = _Reader(str(path), languages, default_language)
    kw, texts = data.get("keywords", {}), data.get("texts", {})
    keywords = {m: r.words(kw.get(m, {}), f"keywords.{m}") for m in SYSTEM_KEYWORDS}
    keywords.update({m: r.words(kw[m], f"keywords.{m}") for m in (*CASE_KEYWORDS, *EVIDENCE_KEYWORDS) if m in kw})
    out_texts = {t: r.texts(texts.get(t), f"texts.{t}") for t in SYSTEM_TEXTS}
    out_texts.update({t: r.texts(texts[t], f"texts.{t}") for t in (*CASE_TEXTS, *EVIDENCE_TEXTS) if t in texts})
    errors.extend(r.errors)
    return System(path=str(path), languages=languages, keywords=keywords, texts=out_texts,
                  drafts=frozenset(data.get("drafts", []) or []))


def _languages(path: str, value: Any, default_language: str, errors: list[str]) -> tuple[str, ...]:
    """The declared `languages`; when the declaration is broken, say so once and accept any language."""
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and _LANGUAGE.fullmatch(v) for v in value):
        errors.append(f"{path}: languages: expected a list of language codes, e.g. [en, ny, es]")
        return ()
    if len(set(value)) != len(value):
        errors.append(f"{path}: languages: a language is listed twice")
    if default_language not in value:
        errors.append(f"{path}: languages: the default language '{default_language}' is not listed")
    return tuple(dict.fromkeys(value))


def load_flows(directory: str | Path, default_language: str = "en") -> FlowSet:
    """Load and validate every flow in a directory; raise FlowError listing every problem."""
    directory = Path(directory)
    errors: list[str] = []
    try:
        gazetteers = load_gazetteers(directory / "places")
    except GazetteerError as exc:
        errors.append(str(exc))
        gazetteers = {}
    system = load_system(directory / "system.yaml", default_language, errors)
    languages = system.languages
    flows: dict[str, Flow] = {}
    triggers: dict[str, tuple[str, str]] = {}
    reserved = {w for m in ("stop", "start", "help") for ws in system.keywords[m].values() for w in ws}
    for path in sorted(directory.glob("*.yaml")):
        if path.name in ("system.yaml", "cases.yaml"):  # cases.yaml: case rules (gateway/core/caserules.py)
            continue
        flow = load_flow(path, languages, default_language, gazetteers, errors)
        if flow is None:
            continue
        if flow.name in flows:
            errors.append(f"{path}: flow: '{flow.name}' is also the name of {flows[flow.name].path}")
        flows[flow.name] = flow
        for lang, words in flow.keywords.items():
            for word in words:
                if word in reserved:
                    errors.append(f"{path}: keywords.{lang}: '{word}' is a compliance keyword")
                elif word in triggers and triggers[word][0] != flow.name:
                    errors.append(f"{path}: keywords.{lang}: '{word}' also starts flow '{triggers[word][0]}'")
                else:
                    triggers.setdefault(word, (flow.name, lang))
    if errors:
        raise FlowError(errors)
    return FlowSet(flows=flows, system=system, gazetteers=gazetteers,
                   default_language=default_language, triggers=triggers)


@dataclass(frozen=True)
class PromptCheck:
    """One prompt in one language, measured as it would be sent."""

    where: str  # "flows/report.yaml: steps[2].ask.ny"
    language: str
    encoding: str
    segments: int
    characters: int
    allowed: int
    draft: bool

    @property
    def ok(self) -> bool:
        return self.segments <= self.allowed


def fill_sample(text: str, org: str) -> str:
    """Fill placeholders with realistic values so a prompt is measured as sent."""
    values = {**SAMPLE_VALUES, "org": org, "report.ref": SAMPLE_VALUES["ref"]}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), "Chikondi Banda"), text)


def check_prompts(flowset: FlowSet, org: str) -> list[PromptCheck]:
    """Encoding and segment count of every prompt in every language."""
    out: list[PromptCheck] = []

    def measure(where: str, texts: dict[str, str], allowed: int, drafts: frozenset[str]) -> None:
        for lang, text in texts.items():
            info = count_segments(fill_sample(text, org))
            out.append(PromptCheck(f"{where}.{lang}", lang, info.encoding, info.segments,
                                   info.characters, allowed, lang in drafts))

    sys = flowset.system
    for name, texts in sys.texts.items():
        measure(f"{sys.path}: texts.{name}", texts, 1, sys.drafts)
    for flow in flowset.flows.values():
        for step in flow.steps:
            if isinstance(step, (Ask, Say, End)):
                for kind, texts in prompts(step):
                    measure(f"{flow.path}: {step.key}.{kind}", texts, step.allow_segments, flow.drafts)
    return out
