"""Relay connections: ``edges { cursor node }``, ``pageInfo``, ``totalCount``.

``Connection[Event]`` is named ``EventConnection`` in the schema (``Edge[Event]``:
``EventEdge``). Build one from a ``services.pagination.Page`` with ``Connection.of``; the
total is computed only when a client asks for ``totalCount``. Subclass to add fields (see
``EventConnection``)::

    @strawberry.field
    async def my_orders(self, info: Info, first: int | None = None, after: str | None = None)
        -> Connection[Order]:
        page = await orders.list_orders(..., first=first, after=after)
        return Connection.of(page, Order.from_model, total=lambda: orders.count_orders(...))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry

from boxoffice.services.pagination import Page

N = TypeVar("N")
M = TypeVar("M")
C = TypeVar("C", bound="Connection[Any]")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo
    _total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items match, over all pages.")
    async def total_count(self) -> int:
        return await self._total()

    @strawberry.field(description="The nodes of `edges`, without cursors.")
    def nodes(self) -> list[N]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(
        cls: type[C],
        page: Page[M],
        node: Callable[[M], Any],
        *,
        total: Callable[[], Awaitable[int]],
        after: str | None = None,
        **extra: Any,
    ) -> C:
        return cls(
            edges=[
                Edge(cursor=cursor, node=node(item))
                for item, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=after is not None,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            ),
            _total=total,
            **extra,
        )
