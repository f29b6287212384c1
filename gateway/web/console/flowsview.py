"""Console: the flows as written in FLOWS_DIR: keywords, every prompt's length in SMS, or the errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from gateway import services
from gateway.core import steps
from gateway.core.flowfile import FlowError, PromptCheck, check_prompts, load_flows
from gateway.web.console import role_required

bp = Blueprint("flowsview", __name__, template_folder="templates")


@dataclass
class Prompt:
    """One text of a step (or a system text), in every language it is written in."""

    label: str
    kind: str
    texts: list[tuple[str, str, PromptCheck | None]] = field(default_factory=list)  # language, text, check


@dataclass
class FlowView:
    name: str
    file: str
    keywords: list[tuple[str, list[str]]]
    drafts: list[str]
    expires_after: str
    prompts: list[Prompt]


def _duration(seconds: float) -> str:
    hours = int(seconds // 3600)
    if hours and hours % 24 == 0:
        return f"{hours // 24} day(s)"
    return f"{hours} hour(s)" if hours else f"{int(seconds // 60)} minute(s)"


def _words(by_language: dict[str, tuple[str, ...]]) -> list[tuple[str, list[str]]]:
    return [(lang, [w.upper() for w in words]) for lang, words in by_language.items()]


@bp.get("/flows")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Each flow's keywords and prompts with encoding and segments; the problems if the files are broken."""
    directory = services().settings.flows_dir
    try:
        flowset = load_flows(directory, default_language=services().settings.default_language)
    except FlowError as exc:
        prefix = f"{directory}/"
        errors = [e.replace(prefix, "") for e in exc.errors]
        return render_template("flows_index.html", errors=errors, flows=[], system=None, directory=directory)
    checks = {c.where: c for c in check_prompts(flowset, services().settings.org_name)}

    flows = []
    for flow in flowset.flows.values():
        prompts = []
        for number, step in enumerate(flow.steps, 1):
            label = f"{number}. {step.id}" if step.id else f"{number}."
            for kind, texts in steps.prompts(step):
                if texts:
                    where = f"{flow.path}: {step.key}.{kind}"
                    prompts.append(Prompt(label, kind, [(lang, text, checks.get(f"{where}.{lang}"))
                                                        for lang, text in texts.items()]))
        flows.append(FlowView(flow.name, Path(flow.path).name, _words(flow.keywords), sorted(flow.drafts),
                              _duration(flow.expires_after.total_seconds()), prompts))

    sys = flowset.system
    system = {
        "keywords": [(meaning, _words(words)) for meaning, words in sys.keywords.items() if words],
        "prompts": [Prompt(name, "text", [(lang, text, checks.get(f"{sys.path}: texts.{name}.{lang}"))
                                          for lang, text in texts.items()])
                    for name, texts in sys.texts.items() if texts],
        "drafts": sorted(sys.drafts),
    }
    over = sum(1 for c in checks.values() if not c.ok)
    return render_template("flows_index.html", errors=[], flows=flows, system=system, over=over,
                           directory=directory)
