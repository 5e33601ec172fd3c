"""Domain errors: every failure a client can see, with its contract code and status.

The tree (``code`` / ``status``; status ranges: 1xxx general, 2xxx user, 3xxx catalog,
4xxx order, 5xxx inventory and queue, 6xxx payment and ticket)::

    BoxofficeError
    ├── BadUserInput ............ BAD_USER_INPUT        1400   (names the ``field``)
    ├── Unauthenticated ......... UNAUTHENTICATED       1401
    ├── Forbidden ............... FORBIDDEN             1403
    ├── NotFound ................ NOT_FOUND             1404
    ├── AlreadyExists ........... ALREADY_EXISTS        1409
    ├── RateLimited ............. RATE_LIMITED          1429   (``retryAfter`` seconds)
    ├── InternalError ........... INTERNAL              1500   (what clients see for bugs)
    ├── IdentityError
    │   ├── InvalidCredentials .. INVALID_CREDENTIALS   2004
    │   └── AccountFrozen ....... ACCOUNT_FROZEN        2005
    ├── CatalogError
    │   └── CatalogStateInvalid . BAD_USER_INPUT        3001   (e.g. publishing an incomplete event)
    ├── OrderError
    │   ├── OrderStateInvalid ... ORDER_STATE_INVALID   4002
    │   ├── IdempotencyConflict . IDEMPOTENCY_CONFLICT  4009
    │   └── CouponUnavailable ... COUPON_UNAVAILABLE    4201   (``reason``)
    ├── InventoryError
    │   ├── SoldOut ............. SOLD_OUT              5001
    │   ├── SeatUnavailable ..... SEAT_UNAVAILABLE      5002
    │   ├── HoldExpired ......... HOLD_EXPIRED          5003
    │   ├── HoldNotFound ........ HOLD_NOT_FOUND        5004
    │   ├── QueueTokenRequired .. QUEUE_TOKEN_REQUIRED  5101
    │   └── QueueTokenInvalid ... QUEUE_TOKEN_INVALID   5102   (``reason``)
    └── TicketError
        ├── SignatureInvalid .... SIGNATURE_INVALID     6001   (``reason``, ``ticketSn`` if signed)
        ├── AlreadyCheckedIn .... ALREADY_CHECKED_IN    6101
        ├── TicketRevoked ....... TICKET_REVOKED        6102
        └── WrongSession ........ WRONG_SESSION         6103   (a ticket of another session)

Services raise these; ``boxoffice.schema.errors`` maps them to GraphQL errors in one place.
Anything else that escapes a resolver is logged and answered as ``INTERNAL``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BoxofficeError(Exception):
    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 1500
    default_message: ClassVar[str] = "Something went wrong."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = {key: value for key, value in details.items() if value is not None}
        super().__init__(self.message)

    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "status": self.status, **self.details}


class BadUserInput(BoxofficeError):
    code = "BAD_USER_INPUT"
    status = 1400
    default_message = "The input is not valid."

    def __init__(self, message: str | None = None, *, field: str | None = None, **details: Any):
        super().__init__(message, field=field, **details)

    @property
    def field(self) -> str | None:
        return self.details.get("field")


class Unauthenticated(BoxofficeError):
    code = "UNAUTHENTICATED"
    status = 1401
    default_message = "Sign in to do this."


class Forbidden(BoxofficeError):
    code = "FORBIDDEN"
    status = 1403
    default_message = "You are not allowed to do this."


class NotFound(BoxofficeError):
    code = "NOT_FOUND"
    status = 1404
    default_message = "Not found."


class AlreadyExists(BoxofficeError):
    code = "ALREADY_EXISTS"
    status = 1409
    default_message = "It already exists."


class RateLimited(BoxofficeError):
    code = "RATE_LIMITED"
    status = 1429
    default_message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None):
        super().__init__(
            message, retryAfter=None if retry_after is None else max(1, round(retry_after))
        )


class InternalError(BoxofficeError):
    code = "INTERNAL"
    status = 1500
    default_message = "Internal error."


class IdentityError(BoxofficeError):
    status = 2000


class InvalidCredentials(IdentityError):
    code = "INVALID_CREDENTIALS"
    status = 2004
    default_message = "Wrong account or password."


class AccountFrozen(IdentityError):
    code = "ACCOUNT_FROZEN"
    status = 2005
    default_message = "This account is frozen."


class CatalogError(BoxofficeError):
    status = 3000


class CatalogStateInvalid(CatalogError):
    code = "BAD_USER_INPUT"
    status = 3001
    default_message = "The catalog object is not in a state that allows this."


class OrderError(BoxofficeError):
    status = 4000


class OrderStateInvalid(OrderError):
    code = "ORDER_STATE_INVALID"
    status = 4002
    default_message = "The order's state does not allow this."


class IdempotencyConflict(OrderError):
    code = "IDEMPOTENCY_CONFLICT"
    status = 4009
    default_message = "This idempotency key was used with a different request."


class CouponUnavailable(OrderError):
    code = "COUPON_UNAVAILABLE"
    status = 4201
    default_message = "The coupon is not available."

    def __init__(self, message: str | None = None, *, reason: str | None = None):
        super().__init__(message, reason=reason)


class InventoryError(BoxofficeError):
    status = 5000


class SoldOut(InventoryError):
    code = "SOLD_OUT"
    status = 5001
    default_message = "Sold out."


class SeatUnavailable(InventoryError):
    code = "SEAT_UNAVAILABLE"
    status = 5002
    default_message = "A chosen seat is no longer available."


class HoldExpired(InventoryError):
    code = "HOLD_EXPIRED"
    status = 5003
    default_message = "The hold has expired."


class HoldNotFound(InventoryError):
    code = "HOLD_NOT_FOUND"
    status = 5004
    default_message = "No such hold."


class QueueTokenRequired(InventoryError):
    code = "QUEUE_TOKEN_REQUIRED"
    status = 5101
    default_message = "This session sells through the waiting room; a queue token is required."


class QueueTokenInvalid(InventoryError):
    """``reason``: FORGED, EXPIRED, WRONG_EVENT, WRONG_USER or REPLAYED
    (``boxoffice.services.queue_tokens.QueueTokenReason``)."""

    code = "QUEUE_TOKEN_INVALID"
    status = 5102
    default_message = "The queue token is not valid."

    def __init__(self, message: str | None = None, *, reason: str | None = None):
        super().__init__(message, reason=reason)

    @property
    def reason(self) -> str | None:
        return self.details.get("reason")


class TicketError(BoxofficeError):
    status = 6000


class SignatureInvalid(TicketError):
    code = "SIGNATURE_INVALID"
    status = 6001
    default_message = "The signature does not verify."

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        ticket_sn: str | None = None,
        **details: Any,
    ):
        super().__init__(message, reason=reason, ticketSn=ticket_sn, **details)

    @property
    def reason(self) -> str | None:
        return self.details.get("reason")


class AlreadyCheckedIn(TicketError):
    code = "ALREADY_CHECKED_IN"
    status = 6101
    default_message = "This ticket was already checked in."


class TicketRevoked(TicketError):
    code = "TICKET_REVOKED"
    status = 6102
    default_message = "This ticket was revoked."


class WrongSession(TicketError):
    code = "WRONG_SESSION"
    status = 6103
    default_message = "This ticket is for another session."


class ConfigurationError(Exception):
    """The process cannot start with this configuration (never reaches a client)."""


__all__ = [
    "AccountFrozen",
    "AlreadyCheckedIn",
    "AlreadyExists",
    "BadUserInput",
    "BoxofficeError",
    "CatalogError",
    "CatalogStateInvalid",
    "ConfigurationError",
    "CouponUnavailable",
    "Forbidden",
    "HoldExpired",
    "HoldNotFound",
    "IdempotencyConflict",
    "IdentityError",
    "InternalError",
    "InvalidCredentials",
    "InventoryError",
    "NotFound",
    "OrderError",
    "OrderStateInvalid",
    "QueueTokenInvalid",
    "QueueTokenRequired",
    "RateLimited",
    "SeatUnavailable",
    "SignatureInvalid",
    "SoldOut",
    "TicketError",
    "TicketRevoked",
    "Unauthenticated",
    "WrongSession",
]
