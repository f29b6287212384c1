"""What every channel's webhook does first: refuse an oversized body, note that the channel was heard."""
from __future__ import annotations

import logging

from flask import abort
from werkzeug.wrappers import Request

from gateway import channels

logger = logging.getLogger(__name__)
MAX_WEBHOOK_BYTES = 64 * 1024  # a provider's webhook is a few hundred bytes


def refuse_oversized(request: Request) -> None:
    """413 for a webhook body far beyond what any provider sends, chunked bodies included.

    Content-Length alone is not enough: a chunked request has none. So the body is read here,
    before anything (the form, a signature check) looks at it, and never past one byte over the
    limit: werkzeug stops reading a stream at the request's max_content_length (silently, so the
    one extra byte is how an oversized body shows). Later reads (request.form) use this copy.
    """
    request.max_content_length = MAX_WEBHOOK_BYTES + 1
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        abort(413)
    if len(request.get_data(cache=True)) > MAX_WEBHOOK_BYTES:
        abort(413)


def seen(redis: object, name: str) -> None:
    """Record that a channel was heard from; only a display, so a failure is logged, not raised."""
    try:
        channels.mark_seen(redis, name)
    except Exception:  # only a display: a webhook is not refused over it
        logger.warning("could not record contact with %s", name)
