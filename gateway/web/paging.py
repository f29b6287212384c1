"""One page of a listing, for the console's pages and the API alike."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request, url_for
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

PAGE_SIZE = 50  # the console's pages; the API's callers choose theirs


@dataclass
class Page:
    """One page of a listing, with links that keep the current filter."""

    items: list[Any]
    number: int
    total: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        """Pages in all; at least one, so an empty listing still has a first page."""
        return max(1, math.ceil(self.total / self.size))

    @property
    def first(self) -> int:
        """The position of this page's first item, from 1 (0 when there is none)."""
        return 0 if not self.total else (self.number - 1) * self.size + 1

    @property
    def last(self) -> int:
        """The position of this page's last item."""
        return min(self.total, self.number * self.size)

    def meta(self) -> dict[str, int]:
        """The API's pagination object ("pages" is 0 when nothing matches)."""
        return {"page": self.number, "per_page": self.size, "total": self.total,
                "pages": (self.total + self.size - 1) // self.size}

    def url(self, number: int) -> str:
        """This listing's address for page `number`, with the same query arguments."""
        # The query string is built here, never passed to url_for as keywords: `?_method=`,
        # `?_external=`, `?_anchor=` or a route argument's name would steer or break url_for.
        # Arguments url_for reserves (`_...`) and route arguments' names mean nothing here: dropped.
        route = request.view_args or {}
        args = [(k, v) for k, v in request.args.items()
                if v and k != "page" and not k.startswith("_") and k not in route]
        base = url_for(request.endpoint or "pages.dashboard", **route)
        return f"{base}?{urlencode([*args, ('page', str(number))])}"

    @property
    def prev_url(self) -> str | None:
        """The previous page's address, if there is one."""
        return self.url(self.number - 1) if self.number > 1 else None

    @property
    def next_url(self) -> str | None:
        """The next page's address, if there is one."""
        return self.url(self.number + 1) if self.number < self.pages else None


def page_number() -> int:
    """The ?page= argument, 1 when missing or nonsense (the console's forgiving reading)."""
    value = request.args.get("page", "1")
    return max(1, int(value)) if value.isdigit() else 1


def paginate(session: Session, query: Select[Any], *, number: int | None = None, size: int = PAGE_SIZE,
             clamp: bool = True, scalars: bool = True) -> Page:
    """Run `query` (already ordered) for one page and count every row it matches.

    `number` defaults to ?page=. With `clamp`, a page past the end shows the last one (the
    console's links); without it, it is empty (the API says what was asked for).
    """
    number = page_number() if number is None else number
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    if clamp:
        number = min(number, max(1, math.ceil(total / size)))
    paged = query.limit(size).offset((number - 1) * size)
    items = list(session.scalars(paged)) if scalars else list(session.execute(paged))
    return Page(items, number, total, size)
