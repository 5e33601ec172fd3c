"""DataLoaders, named ``XByYLoader``, created per request by ``Context.loaders``.

Each batch opens its own short read session, so sibling fields that strawberry resolves
concurrently never share one ``AsyncSession``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from sqlmodel import col, select
from strawberry.dataloader import DataLoader

from boxoffice.models.events import Event, EventSession, SessionSeat, TicketTier, WantToSee
from boxoffice.models.identity import Membership, Tenant, User
from boxoffice.models.orders import Order, OrderItem, Payment
from boxoffice.models.tickets import CheckIn, Ticket
from boxoffice.models.venues import Seat, SeatMap, Venue
from boxoffice.models.webhooks import WebhookAttempt
from boxoffice.runtime import Runtime
from boxoffice.services import availability, seat_maps, webhooks
from boxoffice.services.accounts import LIVE_TENANT_STATUSES
from boxoffice.services.availability import SessionAvailability
from boxoffice.services.events import MAX_SESSIONS_PER_EVENT


class Loaders:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @cached_property
    def user_by_id(self) -> DataLoader[str, User | None]:
        async def load(ids: Sequence[str]) -> list[User | None]:
            async with self.rt.db.read() as session:
                rows = await session.exec(select(User).where(col(User.id).in_(ids)))
                found = {u.id: u for u in rows.all()}
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    @cached_property
    def tenant_by_id(self) -> DataLoader[str, Tenant | None]:
        async def load(ids: Sequence[str]) -> list[Tenant | None]:
            async with self.rt.db.read() as session:
                rows = await session.exec(select(Tenant).where(col(Tenant.id).in_(ids)))
                found = {t.id: t for t in rows.all()}
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    @cached_property
    def memberships_by_user(self) -> DataLoader[str, list[Membership]]:
        async def load(user_ids: Sequence[str]) -> list[list[Membership]]:
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(Membership)
                    .join(Tenant, col(Tenant.id) == col(Membership.tenant_id))
                    .where(
                        col(Membership.user_id).in_(user_ids),
                        col(Tenant.status).in_(LIVE_TENANT_STATUSES),
                    )
                )
                grouped: dict[str, list[Membership]] = {u: [] for u in user_ids}
                for membership in rows.all():
                    grouped[membership.user_id].append(membership)
            return [grouped[u] for u in user_ids]

        return DataLoader(load_fn=load)

    def _by_id(self, model: type[Any]) -> DataLoader[str, Any]:
        async def load(ids: Sequence[str]) -> list[Any]:
            async with self.rt.db.read() as session:
                rows = await session.exec(select(model).where(col(model.id).in_(ids)))
                found = {row.id: row for row in rows.all()}
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    @cached_property
    def event_by_id(self) -> DataLoader[str, Event | None]:
        return self._by_id(Event)

    @cached_property
    def venue_by_id(self) -> DataLoader[str, Venue | None]:
        return self._by_id(Venue)

    @cached_property
    def seat_map_by_id(self) -> DataLoader[str, SeatMap | None]:
        return self._by_id(SeatMap)

    @cached_property
    def seat_by_id(self) -> DataLoader[str, Seat | None]:
        return self._by_id(Seat)

    @cached_property
    def tier_by_id(self) -> DataLoader[str, TicketTier | None]:
        return self._by_id(TicketTier)

    @cached_property
    def order_by_id(self) -> DataLoader[str, Order | None]:
        return self._by_id(Order)

    @cached_property
    def session_by_id(self) -> DataLoader[str, EventSession | None]:
        return self._by_id(EventSession)

    @cached_property
    def sessions_by_event(self) -> DataLoader[str, list[EventSession]]:
        """Each event's sessions by start time (at most ``MAX_SESSIONS_PER_EVENT``)."""

        async def load(event_ids: Sequence[str]) -> list[list[EventSession]]:
            grouped: dict[str, list[EventSession]] = {e: [] for e in event_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(EventSession)
                    .where(col(EventSession.event_id).in_(event_ids))
                    .order_by(col(EventSession.starts_at), col(EventSession.id))
                )
                for row in rows.all():
                    if len(grouped[row.event_id]) < MAX_SESSIONS_PER_EVENT:
                        grouped[row.event_id].append(row)
            return [grouped[e] for e in event_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def tiers_by_session(self) -> DataLoader[str, list[TicketTier]]:
        """Each session's tiers (every status) by sort order."""

        async def load(session_ids: Sequence[str]) -> list[list[TicketTier]]:
            grouped: dict[str, list[TicketTier]] = {s: [] for s in session_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(TicketTier)
                    .where(col(TicketTier.session_id).in_(session_ids))
                    .order_by(col(TicketTier.sort_order), col(TicketTier.id))
                )
                for row in rows.all():
                    grouped[row.session_id].append(row)
            return [grouped[s] for s in session_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def seat_maps_by_venue(self) -> DataLoader[str, list[SeatMap]]:
        async def load(venue_ids: Sequence[str]) -> list[list[SeatMap]]:
            grouped: dict[str, list[SeatMap]] = {v: [] for v in venue_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(SeatMap)
                    .where(col(SeatMap.venue_id).in_(venue_ids))
                    .order_by(col(SeatMap.created_at), col(SeatMap.id))
                )
                for row in rows.all():
                    grouped[row.venue_id].append(row)
            return [grouped[v] for v in venue_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def seats_by_seat_map(self) -> DataLoader[str, list[Seat]]:
        """Every seat of each map in drawing order (maps never change: cached per process)."""

        async def load(seat_map_ids: Sequence[str]) -> list[list[Seat]]:
            return [
                await seat_maps.load_seats(
                    db=self.rt.db, cache=self.rt.catalog_cache, seat_map_id=seat_map_id
                )
                for seat_map_id in seat_map_ids
            ]

        return DataLoader(load_fn=load)

    @cached_property
    def seat_tiers_by_session(self) -> DataLoader[str, dict[str, str | None]]:
        """Per session: seat id -> the tier that sells it (None: blocked outside any tier)."""

        async def load(session_ids: Sequence[str]) -> list[dict[str, str | None]]:
            grouped: dict[str, dict[str, str | None]] = {s: {} for s in session_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(SessionSeat.session_id, SessionSeat.seat_id, SessionSeat.tier_id).where(
                        col(SessionSeat.session_id).in_(session_ids)
                    )
                )
                for session_id, seat_id, tier_id in rows.all():
                    grouped[session_id][seat_id] = tier_id
            return [grouped[s] for s in session_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def availability_by_session(self) -> DataLoader[str, SessionAvailability]:
        """Tier counts and seat statuses, through the availability seam (never cached)."""

        async def load(session_ids: Sequence[str]) -> list[SessionAvailability]:
            found = await availability.load_availability(
                db=self.rt.db,
                ledger=self.rt.backends.ledger,
                rules_cache=self.rt.session_rules,
                session_ids=session_ids,
            )
            return [found[s] for s in session_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def tier_availability_by_session(self) -> DataLoader[str, SessionAvailability]:
        """Tier counts only (no seats), through the availability seam (never cached)."""

        async def load(session_ids: Sequence[str]) -> list[SessionAvailability]:
            found = await availability.load_availability(
                db=self.rt.db,
                ledger=self.rt.backends.ledger,
                rules_cache=self.rt.session_rules,
                session_ids=session_ids,
                seats=False,
            )
            return [found[s] for s in session_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def want_to_see_by_user_event(self) -> DataLoader[tuple[str, str], bool]:
        """Whether a user marked an event 想看; keys are ``(user_id, event_id)``."""

        async def load(keys: Sequence[tuple[str, str]]) -> list[bool]:
            users = sorted({u for u, _ in keys})
            events = sorted({e for _, e in keys})
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(WantToSee.user_id, WantToSee.event_id).where(
                        col(WantToSee.user_id).in_(users), col(WantToSee.event_id).in_(events)
                    )
                )
                marked = {(user_id, event_id) for user_id, event_id in rows.all()}
            return [key in marked for key in keys]

        return DataLoader(load_fn=load)

    @cached_property
    def items_by_order(self) -> DataLoader[str, list[OrderItem]]:
        async def load(order_ids: Sequence[str]) -> list[list[OrderItem]]:
            grouped: dict[str, list[OrderItem]] = {o: [] for o in order_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(OrderItem)
                    .where(col(OrderItem.order_id).in_(order_ids))
                    .order_by(col(OrderItem.id))
                )
                for row in rows.all():
                    grouped[row.order_id].append(row)
            return [grouped[o] for o in order_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def payments_by_order(self) -> DataLoader[str, list[Payment]]:
        async def load(order_ids: Sequence[str]) -> list[list[Payment]]:
            grouped: dict[str, list[Payment]] = {o: [] for o in order_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(Payment)
                    .where(col(Payment.order_id).in_(order_ids))
                    .order_by(col(Payment.created_at))
                )
                for row in rows.all():
                    grouped[row.order_id].append(row)
            return [grouped[o] for o in order_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def tickets_by_order(self) -> DataLoader[str, list[Ticket]]:
        """Each order's tickets, revoked ones included, in issue order."""

        async def load(order_ids: Sequence[str]) -> list[list[Ticket]]:
            grouped: dict[str, list[Ticket]] = {o: [] for o in order_ids}
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(Ticket)
                    .where(col(Ticket.order_id).in_(order_ids))
                    .order_by(col(Ticket.issued_at), col(Ticket.id))
                )
                for row in rows.all():
                    grouped[row.order_id].append(row)
            return [grouped[o] for o in order_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def check_in_by_ticket(self) -> DataLoader[str, CheckIn | None]:
        async def load(ticket_ids: Sequence[str]) -> list[CheckIn | None]:
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(CheckIn).where(col(CheckIn.ticket_id).in_(ticket_ids))
                )
                found = {row.ticket_id: row for row in rows.all()}
            return [found.get(t) for t in ticket_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def webhook_attempts_by_delivery(self) -> DataLoader[str, list[WebhookAttempt]]:
        async def load(delivery_ids: Sequence[str]) -> list[list[WebhookAttempt]]:
            grouped = await webhooks.attempts_of(self.rt.db, delivery_ids)
            return [grouped[d] for d in delivery_ids]

        return DataLoader(load_fn=load)
