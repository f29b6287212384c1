"""Rate limits (Flask-Limiter): per address and per account, kept in Redis or, embedded, in memory."""
from __future__ import annotations

import functools

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# One limiter for the process; init_app points it at the app's storage. Routes opt in with
# @limiter.limit(...); nothing is limited by default (webhooks must never be refused for load).
limiter = Limiter(get_remote_address, headers_enabled=False)


@limiter.request_filter
def _webhook() -> bool:
    # A provider's webhook has no limit, so the limiter's per-request look-up of which limits apply
    # is skipped there: under a burst it was a tenth of a stored text's CPU.
    return request.blueprint in _webhook_blueprints()


@functools.cache
def _webhook_blueprints() -> frozenset[str]:
    from gateway.channels.hooks import WEBHOOKS

    return frozenset(bp.name for bp in WEBHOOKS.values())


def init_app(app: Flask) -> None:
    """Keep counters where the app keeps shared state: Redis when set, else this process's memory."""
    redis_url = app.extensions["gateway"].settings.redis_url
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "gateway-limits")
    limiter.init_app(app)
