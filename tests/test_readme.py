"""The README's map stays true: every module it names exists, and every package of gateway/ is on it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_path_the_readme_names_exists() -> None:
    named = set(re.findall(r"\b((?:gateway|tests|flows|migrations|bench|docs)/[\w/.-]*\w)", README))
    assert named, "the README names no paths"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []


def test_every_package_of_the_gateway_is_on_the_layout() -> None:
    layout = _section("Layout")
    packages = sorted(p.name for p in (ROOT / "gateway").iterdir() if (p / "__init__.py").exists())
    assert packages and [p for p in packages if f"gateway/{p}/" not in layout] == []


def test_how_a_text_moves_names_only_modules_that_exist() -> None:
    moves = _section("How a text moves")
    relative = set(re.findall(r"`((?:core|inbound|outbound|channels|people|web)/[\w/]+\.py)`", moves))
    assert relative, "the section names no modules"
    assert sorted(p for p in relative if not (ROOT / "gateway" / p).exists()) == []
