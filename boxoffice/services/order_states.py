"""The order state machine: one table of allowed transitions, nothing else.

    PENDING_PAYMENT ─► PAID | CANCELLED | EXPIRED
    CANCELLED, EXPIRED ─► PAID            (a late payment revives the order, seats permitting)
    PAID ─► REFUNDING | COMPLETED         (completed seven days after the session ends)
    REFUNDING ─► REFUNDED | PARTIALLY_REFUNDED | PAID   (back to PAID: refund rejected/failed)
    PARTIALLY_REFUNDED ─► REFUNDING | COMPLETED

Every refused transition is logged and answers ``ORDER_STATE_INVALID``.
"""

from __future__ import annotations

import logging

from boxoffice.errors import OrderStateInvalid
from boxoffice.models.orders import OrderStatus as S

log = logging.getLogger("boxoffice.orders")

TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED, S.EXPIRED}),
    S.CANCELLED: frozenset({S.PAID}),
    S.EXPIRED: frozenset({S.PAID}),
    S.PAID: frozenset({S.REFUNDING, S.COMPLETED}),
    S.REFUNDING: frozenset({S.REFUNDED, S.PARTIALLY_REFUNDED, S.PAID}),
    S.PARTIALLY_REFUNDED: frozenset({S.REFUNDING, S.COMPLETED}),
    S.REFUNDED: frozenset(),
    S.COMPLETED: frozenset(),
}


def allowed(current: S, target: S) -> bool:
    return target in TRANSITIONS[current]


def check(order_id: str, current: S, target: S) -> None:
    """Raise ``OrderStateInvalid`` (and log it) unless ``current → target`` is allowed."""
    if not allowed(current, target):
        log.warning("refused order transition %s: %s -> %s", order_id, current, target)
        raise OrderStateInvalid(
            f"An order that is {current} cannot become {target}.",
            current=current.value,
            target=target.value,
        )
