"""The package's import graph (module-level imports only) has no cycles."""
from __future__ import annotations

import ast
from pathlib import Path

from gateway.channels import PROVIDERS
from gateway.core import routing
from gateway.inbound import status
from gateway.outbound import broadcasts

ROOT = Path(__file__).resolve().parent.parent / "gateway"


def _module(path: Path) -> str:
    parts = ["gateway", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the gateway modules it imports at module level (not inside functions).

    An import names its module, not the packages above it: every module's parent package runs
    first anyway, so counting those would make every package that imports its own parts a cycle.
    """
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # module level only: a function's imports run later
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports never run
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name if is_package else name.rsplit(".", 1)[0]
                    for _ in range(node.level - 1):
                        package = package.rsplit(".", 1)[0]
                    base = f"{package}.{base}" if base else package
                # `from gateway.inbound import receive`: the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_one_list_of_channel_kinds_and_one_status_ladder() -> None:
    """The copies kept where importing the original would cost too much agree with it."""
    assert set(routing.BUILTIN) == set(routing.TYPES) == set(PROVIDERS)  # routing stays free of the SDKs
    assert tuple(broadcasts.FINAL) == status.FINAL and tuple(broadcasts.STATUSES) == status.OUTBOUND


if __name__ == "__main__":
    graph = import_graph()
    while cycle := find_cycle(graph):
        print(" -> ".join(cycle))
        graph[cycle[-2]].discard(cycle[-1])
