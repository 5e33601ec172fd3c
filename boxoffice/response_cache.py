"""Anonymous catalog answers, executed once and served again with their live fields refilled.

An event page or the home page asked without a token is the same for everyone, apart from
three things, each handled so a cached answer is never less true than a fresh one:

- **Live fields** (``TicketTier.available``) are recorded with their response path while the
  answer is first executed, and refilled from the seat ledger on every hit (one ledger read
  for all the sessions in the answer): availability is still never cached.
- **Clock-derived fields** (``Event.status``, ``Session.status``) make the entry expire at
  the next time boundary they depend on, so a sale still opens at its second.
- **Anything else that varies** (seat statuses, ``Session.availability``, fields of types not
  listed below) makes a document uncacheable; that is decided once per document, from its
  fields, by :func:`is_cacheable`.

Entries die on any catalog change (this process's writes and, through the catalog cache's
invalidation channel, every other process's), after ``response_cache_seconds``, and with the
LRU bound. A hit still counts the event view it stands for.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

from boxoffice.clock import utcnow
from boxoffice.services import availability

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

ALL = None
# What an anonymous cached answer may select: root fields, and per type the fields (ALL: every
# field) whose anonymous value depends only on catalog data, the clock (statuses, see
# ``Recording.until``) or live availability that is refilled (``LIVE``). A field added to one
# of these types that varies any other way must be left out here.
CACHEABLE: dict[str, frozenset[str] | None] = {
    "Query": frozenset({"event", "home"}),
    "Event": ALL,
    "Session": frozenset(
        {
            "id",
            "eventId",
            "startsAt",
            "endsAt",
            "saleStartsAt",
            "saleEndsAt",
            "queueEnabled",
            "queueAdmitPerSecond",
            "purchaseLimit",
            "seatMapId",
            "status",
            "event",
            "tiers",
        }
    ),
    "TicketTier": ALL,
    "Venue": ALL,
    "Tenant": frozenset({"id", "name", "logoUrl", "currency", "theme"}),
    "TenantTheme": ALL,
    "PriceRange": ALL,
    "Money": ALL,
    "Home": ALL,
    "Banner": ALL,
    "Recommendation": ALL,
}


def is_cacheable(schema: GraphQLSchema, document: DocumentNode) -> bool:
    """Whether every field the document can select is in ``CACHEABLE`` (queries only)."""
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode) and node.operation != OperationType.QUERY:
            return False
    type_info = TypeInfo(schema)
    checker = _FieldChecker(type_info)
    visit(document, TypeInfoVisitor(type_info, checker))
    return checker.ok


class _FieldChecker(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.ok = True

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        name = node.name.value
        if name == "__typename":
            return
        parent = self.type_info.get_parent_type()
        allowed = CACHEABLE.get(parent.name, frozenset()) if parent is not None else frozenset()
        if allowed is not ALL and name not in allowed:
            self.ok = False


@dataclass(slots=True)
class Recording:
    """What resolvers note while a cacheable answer is executed for the first time."""

    deadline: float
    generation: int
    live_tiers: list[tuple[tuple[str | int, ...], str, str]] = field(default_factory=list)
    viewed_events: list[str] = field(default_factory=list)

    def live_tier(self, path: list[str | int], session_id: str, tier_id: str) -> None:
        self.live_tiers.append((tuple(path), session_id, tier_id))

    def until(self, moment: datetime | None) -> None:
        """The answer is true until ``moment`` (a status boundary)."""
        if moment is not None:
            self.deadline = min(
                self.deadline, time.monotonic() + (moment - utcnow()).total_seconds()
            )

    def viewed(self, event_id: str) -> None:
        self.viewed_events.append(event_id)


@dataclass(slots=True)
class CachedAnswer:
    data: dict[str, Any]
    deadline: float
    live_tiers: tuple[tuple[tuple[str | int, ...], str, str], ...]
    sessions: tuple[str, ...]
    viewed_events: tuple[str, ...]

    async def render(self, rt: Runtime) -> bytes:
        """The answer with its live fields refilled now, as JSON."""
        if self.sessions:
            current = await availability.load_availability(
                db=rt.db,
                ledger=rt.backends.ledger,
                rules_cache=rt.session_rules,
                session_ids=self.sessions,
                seats=False,
            )
            # no await from here to the dump: the shared tree is patched and written at once
            for path, session_id, tier_id in self.live_tiers:
                node: Any = self.data
                for key in path[:-1]:
                    node = node[key]
                left = current[session_id].tier(tier_id)
                node[path[-1]] = 0 if left is None else left
        for event_id in self.viewed_events:
            rt.view_counts.add(event_id)
        return orjson.dumps({"data": self.data})


class ResponseCache:
    """Per process; keyed by query text, operation name and variables."""

    def __init__(self, ttl_seconds: float, max_entries: int = 512) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, CachedAnswer] = OrderedDict()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    @staticmethod
    def key(query: str, operation_name: str | None, variables: dict[str, Any] | None) -> Hashable:
        return (query, operation_name, orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS))

    def get(self, key: Hashable) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None or entry.deadline <= time.monotonic():
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def record(self) -> Recording:
        return Recording(deadline=time.monotonic() + self.ttl_seconds, generation=self._generation)

    def put(self, key: Hashable, data: dict[str, Any], recording: Recording) -> None:
        if recording.generation != self._generation or recording.deadline <= time.monotonic():
            return  # the catalog changed while it ran, or a boundary has passed
        self._entries[key] = CachedAnswer(
            data=data,
            deadline=recording.deadline,
            live_tiers=tuple(recording.live_tiers),
            sessions=tuple(dict.fromkeys(s for _, s, _ in recording.live_tiers)),
            viewed_events=tuple(recording.viewed_events),
        )
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self, _changed: object = None) -> None:
        self._generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
