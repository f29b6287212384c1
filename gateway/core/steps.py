"""Pure: the steps of a flow, one small frozen class per kind (flowfile reads them, engine runs them).

`kind` is the step's key in the flow file (`say:`, `ask:`, ...): it names the step in error
messages and prompt checks; the engine dispatches on the class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True, kw_only=True)
class _Step:
    key: str  # where it sits in its file, e.g. "steps[2]"
    id: str | None = None
    kind: ClassVar[str]


@dataclass(frozen=True, kw_only=True)
class Say(_Step):
    """Send a text and go on."""

    kind: ClassVar[str] = "say"
    texts: dict[str, str] = field(default_factory=dict)
    allow_segments: int = 1


@dataclass(frozen=True, kw_only=True)
class End(_Step):
    """End the conversation, with a last text or none (a bare `end`)."""

    kind: ClassVar[str] = "end"
    texts: dict[str, str] = field(default_factory=dict)
    allow_segments: int = 1


@dataclass(frozen=True, kw_only=True)
class Ask(_Step):
    """Ask a question and wait; the answer is kept under `id`."""

    kind: ClassVar[str] = "ask"
    texts: dict[str, str] = field(default_factory=dict)
    expect: str | None = None  # one of flowfile.EXPECTS
    choices: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> language -> words
    skippable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    gazetteers: tuple[str, ...] = ()
    retry: dict[str, str] = field(default_factory=dict)
    allow_segments: int = 1
    max_length: int | None = None  # text: characters kept (the column's limit unless shorter)


@dataclass(frozen=True, kw_only=True)
class Branch(_Step):
    """Go to the step the answer `on` names in `cases`, else to `default`, else on."""

    kind: ClassVar[str] = "branch"
    on: str
    cases: dict[str, str] = field(default_factory=dict)  # folded answer -> step id
    default: str | None = None


@dataclass(frozen=True, kw_only=True)
class Goto(_Step):
    """Go to the step with id `target` (or `end`)."""

    kind: ClassVar[str] = "goto"
    target: str


@dataclass(frozen=True, kw_only=True)
class Set(_Step):
    """Write contact fields, placeholders filled from the answers."""

    kind: ClassVar[str] = "set"
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Tag(_Step):
    """Tag the contact; `{id}` tags with an answer."""

    kind: ClassVar[str] = "tag"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Subscribe(_Step):
    """Subscribe the contact to alerts in the conversation's language."""

    kind: ClassVar[str] = "subscribe"


@dataclass(frozen=True, kw_only=True)
class Save(_Step):
    """Save the answers as a report (the only thing a flow can save)."""

    kind: ClassVar[str] = "save"


Step = Ask | Say | Branch | Goto | Set | Tag | Subscribe | Save | End


def targets(step: Step) -> list[str]:
    """The step ids (or `end`) a step can go to."""
    match step:
        case Goto():
            return [step.target]
        case Branch():
            return [t for t in (step.default, *step.cases.values()) if t is not None]
    return []


def prompts(step: Step) -> list[tuple[str, dict[str, str]]]:
    """The texts a step sends, by the key they sit under in the file (ask, say, end, retry)."""
    match step:
        case Ask():
            return [(step.kind, step.texts), ("retry", step.retry)]
        case Say() | End():
            return [(step.kind, step.texts)]
    return []
