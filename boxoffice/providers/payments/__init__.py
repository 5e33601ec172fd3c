"""Payment providers: the sandbox, Alipay and WeChat Pay behind one interface.

How the rest of boxoffice uses a provider (DESIGN.md, Flows 4)::

    start(PaymentOrder)            -> PaymentStart        what the client opens or renders
    verify_callback(request, now)  -> VerifiedCallback    or raises CallbackRejected(reason)
    ack(accepted)                  -> Acknowledgement     the exact HTTP answer the provider expects
    refund(RefundOrder)            -> RefundOutcome       idempotent on refund_no
    query(payment_no)              -> PaymentQuery        for the active query job

Checking the callback's amount and currency against the stored payment, applying it once per
``(channel, payment_no)`` and answering ``ack(True)`` for duplicates is the caller's job; a
provider only proves that the provider said it. Outgoing calls raise ``ProviderError`` when the
provider cannot be reached or its answer cannot be trusted (bad or missing signature); calling
again with the same identifiers is safe.

This package imports no web framework and no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class PaymentChannel(StrEnum):
    SANDBOX = "SANDBOX"
    ALIPAY = "ALIPAY"
    WECHAT_PAY = "WECHAT_PAY"

    @property
    def path(self) -> str:
        """The URL segment: ``sandbox``, ``alipay``, ``wechat_pay``."""
        return self.value.lower()

    @property
    def notify_path(self) -> str:
        return f"/payments/{self.path}/notify"

    @classmethod
    def from_path(cls, segment: str) -> PaymentChannel | None:
        """The channel named by a URL segment (any case, ``-`` or ``_``), or None."""
        try:
            return cls(segment.strip().upper().replace("-", "_"))
        except ValueError:
            return None


class CallbackOutcome(StrEnum):
    PAID = "PAID"
    FAILED = "FAILED"  # the attempt failed; the order stays payable until it expires
    CLOSED = "CLOSED"  # the provider closed the trade; it can no longer be paid
    PENDING = "PENDING"  # a genuine notice that changes nothing (e.g. WAIT_BUYER_PAY)


class PaymentStatus(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    PENDING = "PENDING"
    PAID = "PAID"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


class RefundStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    PENDING = "PENDING"  # accepted, not final yet: ask again with the same refund_no
    FAILED = "FAILED"


class RejectReason(StrEnum):
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    MALFORMED = "MALFORMED"
    MERCHANT_MISMATCH = "MERCHANT_MISMATCH"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    DECRYPT_FAILED = "DECRYPT_FAILED"


class CallbackRejected(Exception):
    """A callback that does not prove itself; nothing in it may be used. ``detail`` is for logs
    and the audit table, never for the provider's answer."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else str(reason))


class ProviderError(Exception):
    """An outgoing call did not produce a trustworthy answer. ``retryable`` says whether the
    same call may succeed later (network, 5xx, unsigned answer) or never will as sent."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool) -> None:
        self.code = code
        self.retryable = retryable
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """What a provider needs to start collecting one payment (``payment_no`` = out_trade_no)."""

    payment_no: str
    amount_minor: int
    currency: str
    subject: str
    notify_url: str
    expires_at: datetime
    return_url: str | None = None

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        if not self.payment_no or len(self.payment_no) > 32:
            raise ValueError("payment_no must be 1-32 characters (the providers' limit)")


@dataclass(frozen=True, slots=True)
class PaymentStart:
    """What the client needs: a URL to open (or encode as a QR code) and the signed parameters."""

    pay_url: str | None
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A callback exactly as it arrived. Header names are lower-cased here; ``body`` is the raw
    bytes, which is what the signatures cover."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __post_init__(self) -> None:
        lowered = {name.lower(): value for name, value in self.headers.items()}
        object.__setattr__(self, "headers", lowered)
        if self.content_type is None:
            object.__setattr__(self, "content_type", lowered.get("content-type"))


@dataclass(frozen=True, slots=True)
class VerifiedCallback:
    """What the provider proved it said about one payment."""

    channel: PaymentChannel
    payment_no: str
    provider_trade_no: str
    outcome: CallbackOutcome
    amount_minor: int
    currency: str
    merchant_id: str
    paid_at: datetime | None
    raw: dict[str, Any]
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The HTTP answer to a callback, in the provider's own format."""

    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class RefundOrder:
    payment_no: str
    refund_no: str
    amount_minor: int
    total_minor: int
    currency: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.amount_minor <= self.total_minor:
            raise ValueError("a refund is positive and at most the payment's total")
        if not self.refund_no or len(self.refund_no) > 64:
            raise ValueError("refund_no must be 1-64 characters")


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    status: RefundStatus
    refund_no: str
    provider_refund_no: str | None
    raw: dict[str, Any]
    failure: str | None = None  # the provider's code and message when FAILED


@dataclass(frozen=True, slots=True)
class PaymentQuery:
    """The provider's view of a payment, for payments whose callback never came."""

    channel: PaymentChannel
    payment_no: str
    status: PaymentStatus
    provider_trade_no: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class PaymentProvider(Protocol):
    """One payment company.

    ``verify_callback`` checks the signature over the raw body with the provider's public key
    (RSA and Ed25519 verification in ``cryptography``, which does not leak where a signature
    differs), the timestamp window and our merchant identity, and raises ``CallbackRejected``
    otherwise. ``start``, ``refund`` and ``query`` raise ``ProviderError``.
    """

    @property
    def channel(self) -> PaymentChannel: ...

    async def start(self, order: PaymentOrder) -> PaymentStart: ...

    def verify_callback(self, request: CallbackRequest, *, now: datetime) -> VerifiedCallback: ...

    def ack(self, accepted: bool) -> Acknowledgement: ...

    async def refund(self, order: RefundOrder) -> RefundOutcome: ...

    async def query(self, payment_no: str) -> PaymentQuery: ...

    async def aclose(self) -> None: ...


__all__ = [
    "Acknowledgement",
    "CallbackOutcome",
    "CallbackRejected",
    "CallbackRequest",
    "PaymentChannel",
    "PaymentOrder",
    "PaymentProvider",
    "PaymentQuery",
    "PaymentStart",
    "PaymentStatus",
    "ProviderError",
    "RefundOrder",
    "RefundOutcome",
    "RefundStatus",
    "RejectReason",
    "VerifiedCallback",
]
