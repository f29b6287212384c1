"""Rate limits (Flask-Limiter): per address and per account, kept in Redis or, embedded, in memory."""
from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# One limiter for the process; init_app points it at the app's storage. Routes opt in with
# @limiter.limit(...); nothing is limited by default. Webhooks, which must never be refused for load,
# are served apart (gateway/channels/hooks: Webhooks), where the limiter does not run at all.
limiter = Limiter(get_remote_address, headers_enabled=False)


def init_app(app: Flask) -> None:
    """Keep counters where the app keeps shared state: Redis when set, else this process's memory."""
    redis_url = app.extensions["gateway"].settings.redis_url
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "gateway-limits")
    limiter.init_app(app)
