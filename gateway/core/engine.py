"""Pure: runs one inbound text against a contact's state; returns replies, actions and the new state.

No Flask, no database: the inbound adapter loads a ContactView and the open conversation, calls
`handle`, then applies the actions it gets back in one transaction.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gateway.core import steps
from gateway.core.answers import (
    Token,
    cut,
    interpret,
    prefix_answer,
    tokenize,
)
from gateway.core.flowfile import (
    CONTACT_FIELDS,
    KEEP_NAME,
    MAX_TEXT_ANSWER,
    REPORT_ANSWERS,
    Flow,
    FlowSet,
)
from gateway.core.segments import count_segments
from gateway.core.text import fold

MAX_RETRIES = 2  # re-ask an unusable answer at most twice, then end kindly
HINT_INTERVAL = timedelta(days=1)
REF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I/L: read aloud and retyped
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


@dataclass(frozen=True)
class ContactView:
    """What the engine may know about the sender."""

    status: str = "new"  # new (never seen), active, stopped, blocked
    language: str | None = None
    country: str | None = None
    name: str | None = None
    place: str | None = None
    joined: bool = False
    last_hint_at: datetime | None = None
    pledges: Mapping[str, int] = field(default_factory=dict)  # reply keyword -> alert awaiting replies
    # "open": a check asked them and awaits their answer (it comes before case words and keywords);
    # "late": their last one closed or was answered (told so, unless the word means something else)
    check: str | None = None


@dataclass(frozen=True)
class ConversationState:
    """An open conversation: which flow, which step, what has been answered."""

    flow: str
    step: int
    language: str
    expires_at: datetime
    answers: dict[str, Any] = field(default_factory=dict)
    retries: int = 0


# Actions the adapter applies, in order.
@dataclass(frozen=True)
class SetContact:
    fields: dict[str, str]


@dataclass(frozen=True)
class AddTags:
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Subscribe:
    language: str


@dataclass(frozen=True)
class Unsubscribe:
    pass


@dataclass(frozen=True)
class SaveReport:
    ref: str
    answers: dict[str, Any]
    anonymous: bool
    language: str


@dataclass(frozen=True)
class ToInbox:
    hinted: bool


@dataclass(frozen=True)
class Pledge:
    broadcast_id: int


@dataclass(frozen=True)
class CaseCommand:
    """A case word and what follows it: a reporter's STATUS <ref> or NO <ref> (`status`, `dispute`),
    an official's ACK <ref>, PROMISE <ref> <date>, DONE <ref> (`ack`, `promise`, `done`).

    The adapter (gateway/cases/answers.py) looks the reference up, checks who may use it, reads the
    date in the place's calendar (gateway/core/dates.py), and writes the one reply."""

    verb: str
    ref: str  # as typed, upper-cased; "" when missing
    rest: str  # the words after the reference (a promised date)
    language: str


@dataclass(frozen=True)
class CheckAnswer:
    """An answer to a check that asked this supporter (gateway/evidence/answers.py applies it)."""

    answer: str  # yes, no, partly
    language: str


Action = SetContact | AddTags | Subscribe | Unsubscribe | SaveReport | ToInbox | Pledge | CaseCommand | CheckAnswer
CHECK_WORDS = (("yes", "yes"), ("no", "no"), ("partly", "partly"))  # flows/system.yaml keywords -> answer
CASE_VERBS = ("status", "dispute", "ack", "promise", "done")
REPORTER_VERBS = frozenset({"status", "dispute"})  # a reporter's: handled as private, like a report
_REF_SHAPE = re.compile(r"^[A-Z0-9]{4,8}$")


class HandledBy(StrEnum):
    """What handled a text (stored as Message.handled_by)."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    FLOW = "flow"  # a keyword started a flow
    CASE = "case"  # a case word: STATUS or NO <ref> from a reporter, ACK/PROMISE/DONE from an official
    CHECK = "check"  # an answer to a delivery check or a corroboration (1 Yes 2 No 3 Partly)
    CONVERSATION = "conversation"  # an answer to the open step
    PLEDGE = "pledge"  # a reply to an alert's keyword
    INBOX = "inbox"  # nothing matched: the organizers read it
    IGNORED = "ignored"


@dataclass
class Result:
    """What to say, what to change, and the conversation left open (None when closed)."""

    handled_by: HandledBy
    language: str
    replies: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    state: ConversationState | None = None


def new_ref() -> str:
    """A short report reference a person can read out and retype."""
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(6))


class _Run:
    """One call of `handle`: the shared values every step needs."""

    def __init__(self, fs: FlowSet, contact: ContactView, now: datetime, org: str,
                 make_ref: Callable[[], str]) -> None:
        self.fs, self.contact, self.now, self.org, self.make_ref = fs, contact, now, org, make_ref
        self.replies: list[str] = []
        self.actions: list[Action] = []
        self.vars: dict[str, str] = {}

    def render(self, texts: dict[str, str], language: str, answers: dict[str, Any]) -> str:
        text = self.fs.text(texts, language)
        values: dict[str, Any] = {"org": self.org, "name": self.contact.name or "",
                                  "place": self.contact.place or "", **self.vars}
        values.update({k: v for k, v in answers.items() if v is not None})

        def fill(m: re.Match[str]) -> str:
            value = values.get(m.group(1), "")
            return ", ".join(value) if isinstance(value, list) else str(value)

        return _PLACEHOLDER.sub(fill, text).strip()

    def say(self, name: str, language: str, **extra: str) -> None:
        self.vars.update(extra)
        self.replies.append(self.render(self.fs.system.texts[name], language, {}))


COMPLIANCE = ("stop", "start", "help")  # flows/system.yaml meanings every contact may text at any time


def compliance_keyword(fs: FlowSet, text: str) -> str | None:
    """The compliance meaning (stop, start, help) the text's first word has in any language; None if none.

    `handle` answers these before anything else; the inbound path asks too, so under load START and
    HELP are still handled at once and a STOP stored for a worker stops the outbox at once
    (gateway/inbound/__init__.py).
    """
    tokens = tokenize(text)
    first = tokens[0].folded if tokens else ""
    return next((meaning for meaning in COMPLIANCE if first in fs.system_words(meaning)), None)


def handle(fs: FlowSet, contact: ContactView, state: ConversationState | None, text: str,
           now: datetime, *, org: str = "", make_ref: Callable[[], str] = new_ref) -> Result:
    """Run one inbound text: compliance keywords, then triggers and the open step, then the inbox."""
    run = _Run(fs, contact, now, org, make_ref)
    tokens = tokenize(text)
    first = tokens[0].folded if tokens else ""
    lang = contact.language or fs.default_language
    if contact.status == "blocked":
        return Result(HandledBy.IGNORED, lang, state=state)

    stop = fs.system_words("stop")
    if first in stop:
        lang = contact.language or stop[first]
        if contact.status == "stopped":  # already confirmed once; a second confirmation costs money
            return Result(HandledBy.STOP, lang)
        run.say("stop", lang)
        return Result(HandledBy.STOP, lang, run.replies, [Unsubscribe()])

    start = fs.system_words("start")
    if first in start or (contact.status == "stopped" and first in fs.system_words("start_when_stopped")):
        lang = contact.language or start.get(first, lang)
        run.say("start", lang)
        return Result(HandledBy.START, lang, run.replies, [Subscribe(lang)])

    help_words = fs.system_words("help")
    if first in help_words:
        lang = contact.language or help_words[first]
        run.say("help", lang)
        return Result(HandledBy.HELP, lang, run.replies, state=state)  # help leaves the conversation open

    trigger = fs.triggers.get(first)
    if contact.status == "stopped" and not (trigger and trigger[0] == "join"):
        # Only the supporter's own START or JOIN ends an opt-out; keep the text for organizers.
        return Result(HandledBy.INBOX, lang, actions=[ToInbox(hinted=False)])

    answer = check_answer(fs, first) if contact.check and not _talking(state, now) else None
    if answer is not None and contact.check == "open" and not _disputes(fs, tokens):
        # Asked a question, they answer it; the adapter writes the one reply.
        return Result(HandledBy.CHECK, contact.language or answer[1], actions=[CheckAnswer(*answer)], state=state)

    command = _case_command(fs, tokens, state, now, contact.language)
    if command is not None:
        # Replies come from the adapter, which knows the case; an open conversation stays open.
        return Result(HandledBy.CASE, command.language, actions=[command], state=state)

    if trigger:
        flow = fs.flows[trigger[0]]
        lang = trigger[1]
        rest, given = tokens[1:], {}
        if rest and rest[0].folded in fs.system_words(KEEP_NAME) and _takes_consent(flow):
            # "REPORT NAME ...": the reporter asks for their name on the report; nothing else does.
            rest, given = rest[1:], {KEEP_NAME: True}
        fresh = ConversationState(flow.name, 0, lang, now + flow.expires_after, given)
        if flow.prefill:
            fresh = replace(fresh, answers={**given, **_prefill(run, flow, rest, lang)})
        new_state = _advance(run, flow, fresh)
        return Result(HandledBy.FLOW, lang, _merge(run.replies), run.actions, new_state)

    if state is not None and state.expires_at > now and state.flow in fs.flows:
        flow = fs.flows[state.flow]
        new_state = _answer(run, flow, state, text, tokens)
        return Result(HandledBy.CONVERSATION, state.language, _merge(run.replies), run.actions, new_state)

    if first in contact.pledges and contact.status == "active":
        # A YES to an alert is a pledge, not a re-subscription and not an inbox message.
        run.say("pledge", lang)
        return Result(HandledBy.PLEDGE, lang, run.replies, [Pledge(contact.pledges[first])], state=state)

    if answer is not None and not _disputes(fs, tokens):
        # An answer to a question already answered or closed: told so politely (a pledge came first).
        return Result(HandledBy.CHECK, contact.language or answer[1], actions=[CheckAnswer(*answer)], state=state)

    hint_due = contact.last_hint_at is None or now - contact.last_hint_at >= HINT_INTERVAL
    if hint_due:
        run.say("expired_hint" if state is not None else "hint", lang)
    return Result(HandledBy.INBOX, lang, run.replies, [ToInbox(hinted=hint_due)])


def check_answer(fs: FlowSet, first: str) -> tuple[str, str] | None:
    """The check answer a first word means (yes, no, partly) and its language; None if it is none."""
    for meaning, answer in CHECK_WORDS:
        langs = [lang for lang, words in fs.system.keywords.get(meaning, {}).items() if first in words]
        if langs:  # 1, 2, 3 and NO are every language's: the default one then
            return answer, fs.default_language if fs.default_language in langs else langs[0]
    return None


def _disputes(fs: FlowSet, tokens: list[Token]) -> bool:
    """NO followed by what can only be a report's reference (R7K2PQ): a reporter's dispute, not an answer."""
    if len(tokens) < 2 or tokens[0].folded not in fs.system_words("dispute"):
        return False
    ref = tokens[1].raw.strip(".,;:!?()[]'\"").upper()
    return len(ref) == 6 and all(c in REF_ALPHABET for c in ref)


def _talking(state: ConversationState | None, now: datetime) -> bool:
    return state is not None and state.expires_at > now


def _case_command(fs: FlowSet, tokens: list[Token], state: ConversationState | None, now: datetime,
                  language: str | None) -> CaseCommand | None:
    """A case word first, then a reference: `STATUS R7K2PQ`, `PROMISE C7K2P 12 March`.

    NO is also every flow's "no", so it disputes only when no conversation is open and a reference
    follows it. The other words mean a case outside a conversation, and inside one only when a
    reference follows them ("done" alone answers the open question).
    """
    if not tokens:
        return None
    first = tokens[0].folded
    for verb in CASE_VERBS:
        words = fs.system_words(verb)
        if first not in words:
            continue
        ref = tokens[1].raw.strip(".,;:!?()[]'\"").upper() if len(tokens) > 1 else ""
        talking = state is not None and state.expires_at > now
        if verb == "dispute" and (talking or not _REF_SHAPE.match(ref)):
            return None
        if talking and not _REF_SHAPE.match(ref):
            return None  # "done" alone, in the middle of a conversation, is an answer to its question
        rest = " ".join(t.raw for t in tokens[2:])
        return CaseCommand(verb, ref[:12], rest[:60], language or words[first])
    return None


def _advance(run: _Run, flow: Flow, st: ConversationState) -> ConversationState | None:
    """Run steps from st.step until one waits for an answer (returned) or the flow ends (None)."""
    answers = dict(st.answers)
    i = st.step
    for _ in range(len(flow.steps) * 4 + 8):  # a goto loop in a flow file must not hang a worker
        if i >= len(flow.steps):
            return None
        step = flow.steps[i]
        match step:
            case steps.Ask():
                if step.id in answers:
                    i += 1
                    continue
                run.replies.append(run.render(step.texts, st.language, answers))
                return replace(st, step=i, answers=answers, retries=0)
            case steps.Say():
                run.replies.append(run.render(step.texts, st.language, answers))
            case steps.End():
                if step.texts:
                    run.replies.append(run.render(step.texts, st.language, answers))
                return None
            case steps.Branch() | steps.Goto():
                target = _target(step, answers)
                if target == "end":
                    return None
                if target is not None:
                    i = flow.index[target]
                    continue
            case steps.Set():
                values = {k: run.render({"x": v}, "x", {**answers, "language": st.language})
                          for k, v in step.fields.items()}
                values = {k: v[:CONTACT_FIELDS[k].length or MAX_TEXT_ANSWER] for k, v in values.items() if v}
                if values:
                    run.actions.append(SetContact(values))
            case steps.Tag():
                tags: list[str] = []
                for tag in step.tags:
                    value = answers.get(tag.strip("{}")) if tag.startswith("{") else tag
                    tags.extend(value if isinstance(value, list) else [value] if value else [])
                if tags:
                    run.actions.append(AddTags(tuple(str(t) for t in tags)))
            case steps.Subscribe():
                run.actions.append(Subscribe(st.language))
            case steps.Save():
                ref = run.make_ref()
                run.vars["report.ref"] = ref
                # Anonymous unless the reporter consented; answers kept from before a limit changed are cut too.
                run.actions.append(SaveReport(ref, _fit_report(answers), answers.get(KEEP_NAME) is not True,
                                              st.language))
        i += 1
    raise RuntimeError(f"{flow.path}: steps loop without asking anything")


def _target(step: steps.Branch | steps.Goto, answers: dict[str, Any]) -> str | None:
    """Where a goto or branch goes: a step id, `end`, or None (on to the next step)."""
    if isinstance(step, steps.Goto):
        return step.target
    value = answers.get(step.on)
    key = str(value).lower() if isinstance(value, bool) else fold(str(value)) if value is not None else ""
    return step.cases.get(key, step.default)


def _answer(run: _Run, flow: Flow, st: ConversationState, text: str,
            tokens: list[Token]) -> ConversationState | None:
    step = flow.steps[st.step]
    if not isinstance(step, steps.Ask):
        # Only when the flow file changed under an open conversation (a deploy): the text is read
        # as a free-text answer to the step now there, as it always was.
        said = steps.prompts(step)
        step = steps.Ask(key=step.key, id=step.id, texts=said[0][1] if said else {})
    ok, value = interpret(run.fs, step, text, tokens, st.language, run.contact.country)
    if not ok:
        if st.retries >= MAX_RETRIES:
            keyword = next(iter(flow.keywords.get(st.language) or flow.keywords.get("en") or ("",)), "")
            run.say("gave_up", st.language, keyword=keyword.upper())
            return None
        run.replies.append(run.render(step.retry or step.texts, st.language, st.answers))
        return replace(st, retries=st.retries + 1)
    answers = {**st.answers, step.id or "": value}
    return _advance(run, flow, replace(st, step=st.step + 1, answers=answers, retries=0))


def _takes_consent(flow: Flow) -> bool:
    return any(isinstance(s, steps.Save) or (isinstance(s, steps.Ask) and s.expect == "consent")
               for s in flow.steps)


def _fit_report(answers: dict[str, Any]) -> dict[str, Any]:
    """A report's answers cut to what their columns hold (see flowfile.REPORT_ANSWERS)."""
    out = dict(answers)
    for sid, column in REPORT_ANSWERS.items():
        if isinstance(out.get(sid), str):
            out[sid] = out[sid][:column.length or MAX_TEXT_ANSWER]
    return out


def _prefill(run: _Run, flow: Flow, tokens: list[Token], language: str) -> dict[str, Any]:
    """Fill answers from the words after the keyword: 'REPORT CLINIC ZOMBA NO nurse absent'."""
    answers: dict[str, Any] = {}
    pos, i, gap = 0, 0, False
    for _ in range(len(flow.steps) * 4 + 8):
        if i >= len(flow.steps):
            break
        if pos >= len(tokens):
            if tokens and not gap:
                answers.update(_optional_rest(flow, i, answers))
            break
        step = flow.steps[i]
        match step:
            case steps.Ask(expect="consent"):
                pass  # given only by the keep-name word; a flow that asks it still asks
            case steps.Ask(expect="text"):
                if gap:  # free text only when everything before it was understood
                    break
                answers[step.id or ""] = cut(" ".join(t.raw for t in tokens[pos:]), step)
                pos = len(tokens)
            case steps.Ask():
                used, value = prefix_answer(run.fs, step, tokens[pos:], language, run.contact.country)
                if used:
                    answers[step.id or ""] = value
                    pos += used
                else:
                    gap = True
            case steps.Branch() | steps.Goto():
                target = _target(step, answers)
                if target == "end":
                    break
                if target is not None:
                    i = flow.index[target]
                    continue
            case steps.End() | steps.Save():
                break
        i += 1
    return answers


def _optional_rest(flow: Flow, i: int, answers: dict[str, Any]) -> dict[str, Any]:
    """When the first text answered every required question, the optional ones are skipped.

    "REPORT CLINIC ZOMBA NO" is a whole report: one SMS in, one reply out. If a required answer is
    missing, nothing is skipped and the conversation asks the rest, optional ones included.
    """
    skipped: dict[str, Any] = {}
    for _ in range(len(flow.steps) * 4 + 8):
        if i >= len(flow.steps):
            break
        step = flow.steps[i]
        match step:
            case steps.Ask() if step.id not in answers and step.expect != "consent":
                if not step.skippable:
                    return {}
                skipped[step.id or ""] = None
            case steps.Branch() | steps.Goto():
                target = _target(step, {**answers, **skipped})
                if target == "end":
                    break
                if target is not None:
                    i = flow.index[target]
                    continue
            case steps.End() | steps.Save():
                break
        i += 1
    return skipped


def _merge(replies: list[str]) -> list[str]:
    """Join consecutive replies that fit one segment together: one SMS costs less than two."""
    out: list[str] = []
    for reply in replies:
        if not reply:
            continue
        if out and count_segments(f"{out[-1]}\n{reply}").segments == 1:
            out[-1] = f"{out[-1]}\n{reply}"
        else:
            out.append(reply)
    return out
