"""gateway.core is a library: it imports with Flask, SQLAlchemy, Redis and the rest of gateway blocked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "gateway" / "core"

# Runs in a fresh interpreter: a finder placed first refuses the web/database/queue libraries
# and any gateway module outside gateway.core, then every core module is imported.
SCRIPT = """
import importlib, sys
BLOCKED = ("flask", "sqlalchemy", "redis", "rq", "werkzeug", "click")

class Refuse:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        outside = name.startswith("gateway.") and not (name == "gateway.core" or name.startswith("gateway.core."))
        if top in BLOCKED or outside:
            raise ImportError(f"the pure core imported {name}")
        return None

sys.meta_path.insert(0, Refuse())
for module in sys.argv[1:]:
    importlib.import_module(module)
"""


def core_modules() -> list[str]:
    """Every module in gateway/core."""
    return ["gateway.core"] + [f"gateway.core.{p.stem}" for p in sorted(CORE.glob("*.py")) if p.stem != "__init__"]


def test_the_core_imports_without_flask_sqlalchemy_redis_or_the_rest_of_gateway() -> None:
    """Importing gateway.core.* pulls in none of the app's edges."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, *core_modules()], check=False,
                            capture_output=True, text=True,
                            cwd=CORE.parent.parent, timeout=60)
    assert result.returncode == 0, result.stderr
