"""Redis for RQ, pacing and locks: the real server, or an in-process one when REDIS_URL is unset."""
from __future__ import annotations

from typing import Any

import redis


def connect(url: str | None) -> Any:
    """A Redis client for REDIS_URL, else an in-process fakeredis so no server is needed."""
    if url:
        return redis.Redis.from_url(url)
    import fakeredis

    return fakeredis.FakeRedis()
