"""How list answers are paged: production's shapes, and records that move while paged.

Production caps `per_page` at 100, sends `links` as an empty array when there is no link,
and (the MCP server warns) may count `total_pages` by its own page size rather than the one
asked. Pages are numbered, so a record edited while a list is paged moves between pages:
`move_after_page` plays that, once, after the given page of a list is answered.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

DEFAULT_PER_PAGE = 10

#: What a move does to the store's order: the first record to the end (the others move
#: up one slot), or the last one to the front (the others move down one).
MOVES = ("first_to_end", "last_to_front")


class ListShape:
    def __init__(self, *, max_per_page: int = 100, total_pages_per: int | None = None) -> None:
        self.max_per_page = max_per_page
        self.total_pages_per = total_pages_per
        #: (page, how, times left): after that page is answered, move a record.
        self.moves: list[tuple[int, str, int]] = []

    def move_after_page(self, page: int, how: str = "first_to_end", times: int = 1) -> None:
        if how not in MOVES:
            raise ValueError(f"how must be one of {', '.join(MOVES)}")
        self.moves.append((page, how, times))

    def page(self, request: web.Request, items: list[dict[str, Any]], store: Any, *,
             asked: int, page: int) -> dict[str, Any]:
        """One page's body: `asked` records a page (capped), page number `page`."""
        per_page = min(self.max_per_page, max(1, asked))
        page = max(1, page)
        total = len(items)
        counted_by = self.total_pages_per or per_page
        total_pages = max(1, math.ceil(total / counted_by))
        chunk = items[(page - 1) * per_page: page * per_page]
        links: dict[str, str] = {}
        last = page * per_page >= total
        if not last:
            links["next"] = str(request.url.update_query(page=page + 1))
            if page > 1:
                links["previous"] = str(request.url.update_query(page=page - 1))
        body = {"data": chunk, "meta": {"pagination": {
            "total": total,
            "count": len(chunk),
            "per_page": per_page,
            "current_page": page,
            "total_pages": total_pages,
            # Production sends an empty ARRAY on the last page; clients cope.
            "links": links or [],
        }}}
        self._move(page, store)
        return body

    def _move(self, page: int, store: Any) -> None:
        for n, (after, how, times) in enumerate(self.moves):
            if after != page or times < 1:
                continue
            self.moves[n] = (after, how, times - 1)
            records = store.runs if store.runs else store.checklists
            ids = list(records)
            if not ids:
                return
            moved = ids[0] if how == "first_to_end" else ids[-1]
            record = records.pop(moved)
            if how == "first_to_end":
                records[moved] = record
            else:
                rest = dict(records)
                records.clear()
                records[moved] = record
                records.update(rest)
            return
