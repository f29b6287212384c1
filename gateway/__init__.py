"""The SMS mobilization gateway: `from gateway import create_app` builds the Flask application."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.factory import Services, create_app, services

__all__ = ["Services", "create_app", "services"]


def __getattr__(name: str) -> Any:
    """create_app, services and Services, loaded from gateway.factory on first use.

    Why lazy (PEP 562): importing any gateway.* module runs this file first, and the pure core
    (gateway.core) must import without Flask, SQLAlchemy or Redis.
    """
    if name in __all__:
        return getattr(importlib.import_module("gateway.factory"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
