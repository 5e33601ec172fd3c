"""The sandbox payment company, complete and signed, for development and tests.

``SandboxGateway`` plays the company: it holds an Ed25519 signing key derived from the JWT
secret (HKDF-SHA256, info ``boxoffice sandbox payments``, so every process of one deployment
agrees on it), builds a callback for a payment, signs it and POSTs it to the notify URL,
retrying on network errors and on any answer but its success acknowledgement, as real providers
do (their schedules run for about a day; the sandbox's is short and configurable). It also
settles refunds and answers queries from what it has seen, in memory (one process's view).

``SandboxProvider`` is boxoffice's side, the same shape as the Alipay and WeChat Pay adapters.

The callback on the wire::

    POST <notify_url>
    Content-Type: application/json
    X-Sandbox-Key-Id: <first 16 hex of sha256(raw public key)>
    X-Sandbox-Timestamp: <unix seconds>
    X-Sandbox-Nonce: <random>
    X-Sandbox-Signature: base64(Ed25519(timestamp + "\\n" + nonce + "\\n" + body))

    {"id": ..., "event_type": "PAYMENT.SUCCEEDED" | "PAYMENT.FAILED", "merchant_id": ...,
     "payment_no": ..., "trade_no": ..., "result": "SUCCESS" | "FAILED",
     "amount": {"total": <minor units>, "currency": "CNY"}, "paid_at": ... | null,
     "created_at": ...}

and the acknowledgement it waits for is HTTP 2xx with ``{"code": "SUCCESS"}`` (or no body).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from boxoffice.clock import as_utc, utcnow
from boxoffice.ids import new_id, random_token
from boxoffice.money import Money
from boxoffice.providers.payments import (
    Acknowledgement,
    CallbackOutcome,
    CallbackRejected,
    CallbackRequest,
    PaymentChannel,
    PaymentOrder,
    PaymentQuery,
    PaymentStart,
    PaymentStatus,
    RefundOrder,
    RefundOutcome,
    RefundStatus,
    RejectReason,
    VerifiedCallback,
)

log = logging.getLogger("boxoffice.providers.payments.sandbox")

SIGNING_KEY_INFO = b"boxoffice sandbox payments"
HEADER_KEY_ID = "X-Sandbox-Key-Id"
HEADER_TIMESTAMP = "X-Sandbox-Timestamp"
HEADER_NONCE = "X-Sandbox-Nonce"
HEADER_SIGNATURE = "X-Sandbox-Signature"
TIMESTAMP_WINDOW = timedelta(minutes=5)
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)

_ACK_SUCCESS = b'{"code":"SUCCESS"}'
_ACK_FAIL = b'{"code":"FAIL","message":"callback rejected"}'


class SandboxResult(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


def sandbox_signing_key(jwt_secret: bytes) -> Ed25519PrivateKey:
    """The sandbox company's key, derived from the deployment's JWT secret."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_KEY_INFO).derive(
        jwt_secret
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The bytes the signature covers: ``timestamp \\n nonce \\n body``."""
    return f"{timestamp}\n{nonce}\n".encode() + body


@dataclass(frozen=True, slots=True)
class SignedCallback:
    headers: dict[str, str]
    body: bytes

    def request(self) -> CallbackRequest:
        return CallbackRequest(body=self.body, headers=self.headers)


@dataclass(frozen=True, slots=True)
class SandboxDelivery:
    """The last attempt of one delivery: what was sent and what the notify URL answered."""

    callback: SignedCallback
    ack: str
    status_code: int | None  # None when no attempt got an HTTP answer
    attempts: int
    acknowledged: bool

    def as_dict(self) -> dict[str, Any]:
        """The body of ``POST /sandbox/payments/{paymentNo}/complete`` (API.md)."""
        return {
            "delivered": {
                "headers": dict(self.callback.headers),
                "body": self.callback.body.decode(),
            },
            "ack": self.ack,
            "acknowledged": self.acknowledged,
            "attempts": self.attempts,
        }


@dataclass
class _Payment:
    amount_minor: int
    currency: str
    status: PaymentStatus
    trade_no: str
    paid_at: datetime | None = None


def _acknowledged(response: httpx.Response) -> bool:
    if not 200 <= response.status_code < 300:
        return False
    if not response.content.strip():
        return True
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and answer.get("code") == "SUCCESS"


class SandboxGateway:
    """The sandbox payment company (see the module docstring)."""

    def __init__(
        self,
        signing_key: Ed25519PrivateKey,
        *,
        merchant_id: str,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not retry_delays or any(delay < 0 for delay in retry_delays):
            raise ValueError("retry_delays needs at least one delay, none negative")
        self._key = signing_key
        self.public_key = signing_key.public_key()
        self.key_id = key_id(self.public_key)
        self.merchant_id = merchant_id
        self._retry_delays = tuple(retry_delays)
        self._client = client or httpx.AsyncClient(timeout=5.0)
        self._owns_client = client is None
        self._clock = clock
        self._sleep = sleep
        self._payments: dict[str, _Payment] = {}
        self._refunds: dict[str, tuple[RefundOrder, RefundOutcome]] = {}

    def trade_no(self, payment_no: str) -> str:
        """The company's id of a payment: the same in every process of one deployment."""
        digest = hashlib.sha256(f"{self.key_id}:{payment_no}".encode()).hexdigest()
        return "SBX" + digest[:24].upper()

    def register(self, order: PaymentOrder) -> None:
        """Note a payment the merchant started (what ``query`` then answers PENDING for)."""
        self._payments.setdefault(
            order.payment_no,
            _Payment(
                amount_minor=order.amount_minor,
                currency=order.currency,
                status=PaymentStatus.PENDING,
                trade_no=self.trade_no(order.payment_no),
            ),
        )

    def sign(self, body: bytes, *, now: datetime | None = None) -> SignedCallback:
        """Sign any body as the company would, with a fresh timestamp and nonce."""
        timestamp = str(int((now or self._clock()).timestamp()))
        nonce = random_token(16)
        signature = self._key.sign(signed_message(timestamp, nonce, body))
        return SignedCallback(
            headers={
                "Content-Type": "application/json",
                HEADER_KEY_ID: self.key_id,
                HEADER_TIMESTAMP: timestamp,
                HEADER_NONCE: nonce,
                HEADER_SIGNATURE: base64.b64encode(signature).decode(),
            },
            body=body,
        )

    def callback_body(
        self,
        *,
        payment_no: str,
        result: SandboxResult,
        amount_minor: int,
        currency: str,
        merchant_id: str | None = None,
        paid_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bytes:
        """The JSON body of a callback for one payment (``merchant_id`` defaults to ours)."""
        created = now or self._clock()
        succeeded = result is SandboxResult.SUCCESS
        return orjson.dumps(
            {
                "id": "EV" + new_id(),
                "event_type": "PAYMENT.SUCCEEDED" if succeeded else "PAYMENT.FAILED",
                "merchant_id": merchant_id or self.merchant_id,
                "payment_no": payment_no,
                "trade_no": self.trade_no(payment_no),
                "result": result.value,
                "amount": {"total": amount_minor, "currency": currency},
                "paid_at": (paid_at or created).isoformat() if succeeded else None,
                "created_at": created.isoformat(),
            }
        )

    async def complete(
        self,
        *,
        payment_no: str,
        amount_minor: int,
        currency: str,
        notify_url: str,
        result: SandboxResult,
    ) -> SandboxDelivery:
        """The payer finished (or failed) paying: record it, then notify the merchant."""
        body = self.record(
            payment_no=payment_no, amount_minor=amount_minor, currency=currency, result=result
        )
        return await self.deliver(notify_url, body)

    def record(
        self, *, payment_no: str, amount_minor: int, currency: str, result: SandboxResult
    ) -> bytes:
        """Note the payer's result as the company's own record (what ``query`` and ``refund``
        then go by) and return the body of the callback that tells the merchant.

        A payment completed twice keeps its first ``paid_at``; the sandbox does not stop a
        FAILED notice after a SUCCESS, so tests can exercise the merchant's state machine.
        """
        now = self._clock()
        payment = self._payments.setdefault(
            payment_no,
            _Payment(amount_minor, currency, PaymentStatus.PENDING, self.trade_no(payment_no)),
        )
        if result is SandboxResult.SUCCESS:
            payment.status = PaymentStatus.PAID
            payment.paid_at = payment.paid_at or now
        elif payment.status is not PaymentStatus.PAID:
            payment.status = PaymentStatus.FAILED
        return self.callback_body(
            payment_no=payment_no,
            result=result,
            amount_minor=amount_minor,
            currency=currency,
            paid_at=payment.paid_at,
            now=now,
        )

    async def deliver(self, notify_url: str, body: bytes) -> SandboxDelivery:
        """POST ``body`` to ``notify_url``, signed afresh for each attempt, until it is
        acknowledged or the retry schedule runs out."""
        ack, status_code = "", None
        callback = self.sign(body)
        for attempt, delay in enumerate(self._retry_delays, start=1):
            if delay > 0:
                await self._sleep(delay)
            callback = self.sign(body)
            try:
                response = await self._client.post(
                    notify_url, content=callback.body, headers=callback.headers
                )
            except httpx.HTTPError as exc:
                log.warning(
                    "sandbox callback attempt %d to %s failed: %s", attempt, notify_url, exc
                )
                ack, status_code = "", None
                continue
            ack, status_code = response.text, response.status_code
            if _acknowledged(response):
                return SandboxDelivery(callback, ack, status_code, attempt, acknowledged=True)
            log.info("sandbox callback attempt %d answered %d", attempt, status_code)
        return SandboxDelivery(callback, ack, status_code, len(self._retry_delays), False)

    def refund(self, order: RefundOrder) -> RefundOutcome:
        """Settle a refund at once. The same ``refund_no`` answers the first outcome; reused for
        a different payment or amount, it fails, as the real companies do."""
        known = self._refunds.get(order.refund_no)
        if known is not None:
            first, outcome = known
            if (first.payment_no, first.amount_minor, first.currency) == (
                order.payment_no,
                order.amount_minor,
                order.currency,
            ):
                return outcome
            return self._refund_failed(order, "REFUND_NO_REUSED")
        payment = self._payments.get(order.payment_no)
        if payment is not None and payment.status is not PaymentStatus.PAID:
            return self._refund_failed(order, "TRADE_NOT_PAID")
        refunded = sum(
            first.amount_minor
            for first, outcome in self._refunds.values()
            if first.payment_no == order.payment_no and outcome.status is RefundStatus.SUCCEEDED
        )
        if refunded + order.amount_minor > order.total_minor:
            return self._refund_failed(order, "REFUND_EXCEEDS_PAYMENT")
        provider_refund_no = (
            "SBXR"
            + hashlib.sha256(f"{self.key_id}:{order.refund_no}".encode()).hexdigest()[:22].upper()
        )
        outcome = RefundOutcome(
            status=RefundStatus.SUCCEEDED,
            refund_no=order.refund_no,
            provider_refund_no=provider_refund_no,
            raw={
                "refund_id": provider_refund_no,
                "out_refund_no": order.refund_no,
                "payment_no": order.payment_no,
                "amount": {"refund": order.amount_minor, "currency": order.currency},
                "status": "SUCCESS",
                "success_time": self._clock().isoformat(),
            },
        )
        self._refunds[order.refund_no] = (order, outcome)
        return outcome

    def _refund_failed(self, order: RefundOrder, code: str) -> RefundOutcome:
        return RefundOutcome(
            status=RefundStatus.FAILED,
            refund_no=order.refund_no,
            provider_refund_no=None,
            raw={"code": code, "out_refund_no": order.refund_no},
            failure=code,
        )

    def query(self, payment_no: str) -> PaymentQuery:
        payment = self._payments.get(payment_no)
        if payment is None:
            return PaymentQuery(PaymentChannel.SANDBOX, payment_no, PaymentStatus.NOT_FOUND)
        return PaymentQuery(
            channel=PaymentChannel.SANDBOX,
            payment_no=payment_no,
            status=payment.status,
            provider_trade_no=payment.trade_no,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            paid_at=payment.paid_at,
            raw={"trade_no": payment.trade_no, "status": payment.status.value},
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise CallbackRejected(RejectReason.MALFORMED, f"{name} is missing")
    return value


def _parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise CallbackRejected(RejectReason.MALFORMED, f"{name} is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CallbackRejected(RejectReason.MALFORMED, f"{name} is not a time") from exc
    if parsed.tzinfo is None:
        raise CallbackRejected(RejectReason.MALFORMED, f"{name} has no offset")
    return parsed.astimezone(UTC)


class SandboxProvider:
    """boxoffice's side of the sandbox: verifies callbacks with the gateway's public key only."""

    channel = PaymentChannel.SANDBOX

    def __init__(
        self,
        gateway: SandboxGateway,
        *,
        base_url: str,
        timestamp_window: timedelta = TIMESTAMP_WINDOW,
    ) -> None:
        self.gateway = gateway
        self._base_url = base_url.rstrip("/")
        self._public_keys = {gateway.key_id: gateway.public_key}
        self._merchant_id = gateway.merchant_id
        self._window = timestamp_window

    async def start(self, order: PaymentOrder) -> PaymentStart:
        self.gateway.register(order)
        complete_url = (
            f"{self._base_url}/sandbox/payments/{quote(order.payment_no, safe='')}/complete"
        )
        return PaymentStart(
            pay_url=complete_url,
            params={
                "paymentNo": order.payment_no,
                "amount": str(Money.from_minor(order.amount_minor, order.currency).amount),
                "currency": order.currency,
                "completeUrl": complete_url,
                "method": "POST",
            },
        )

    def verify_callback(self, request: CallbackRequest, *, now: datetime) -> VerifiedCallback:
        """Raises ``CallbackRejected``: MALFORMED (headers or body), UNKNOWN_KEY,
        SIGNATURE_INVALID, STALE_TIMESTAMP (beyond ±5 minutes), MERCHANT_MISMATCH."""
        headers = request.headers
        try:
            kid = headers[HEADER_KEY_ID.lower()]
            timestamp = headers[HEADER_TIMESTAMP.lower()]
            nonce = headers[HEADER_NONCE.lower()]
            signature_b64 = headers[HEADER_SIGNATURE.lower()]
        except KeyError as exc:
            raise CallbackRejected(RejectReason.MALFORMED, f"missing header {exc}") from exc
        public_key = self._public_keys.get(kid)
        if public_key is None:
            raise CallbackRejected(RejectReason.UNKNOWN_KEY, f"key id {kid!r}")
        try:
            signature = base64.b64decode(signature_b64, validate=True)
            public_key.verify(signature, signed_message(timestamp, nonce, request.body))
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise CallbackRejected(RejectReason.SIGNATURE_INVALID) from exc
        if not timestamp.isdigit():
            raise CallbackRejected(RejectReason.MALFORMED, "timestamp is not unix seconds")
        sent_at = datetime.fromtimestamp(int(timestamp), UTC)
        if abs(as_utc(now) - sent_at) > self._window:
            raise CallbackRejected(RejectReason.STALE_TIMESTAMP, f"sent at {sent_at.isoformat()}")
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise CallbackRejected(RejectReason.MALFORMED, "body is not JSON") from exc
        if not isinstance(payload, dict):
            raise CallbackRejected(RejectReason.MALFORMED, "body is not an object")
        merchant_id = _text(payload, "merchant_id")
        if merchant_id != self._merchant_id:
            raise CallbackRejected(RejectReason.MERCHANT_MISMATCH, f"merchant {merchant_id!r}")
        amount = payload.get("amount")
        if not isinstance(amount, dict):
            raise CallbackRejected(RejectReason.MALFORMED, "amount is missing")
        total, currency = amount.get("total"), amount.get("currency")
        if type(total) is not int or total <= 0 or not isinstance(currency, str) or not currency:
            raise CallbackRejected(RejectReason.MALFORMED, "amount is not valid")
        result = payload.get("result")
        if result == SandboxResult.SUCCESS:
            outcome = CallbackOutcome.PAID
            paid_at: datetime | None = _parse_time(payload.get("paid_at"), "paid_at")
        elif result == SandboxResult.FAILED:
            outcome, paid_at = CallbackOutcome.FAILED, None
        else:
            raise CallbackRejected(RejectReason.MALFORMED, f"result {result!r}")
        return VerifiedCallback(
            channel=PaymentChannel.SANDBOX,
            payment_no=_text(payload, "payment_no"),
            provider_trade_no=_text(payload, "trade_no"),
            outcome=outcome,
            amount_minor=total,
            currency=currency,
            merchant_id=merchant_id,
            paid_at=paid_at,
            raw=payload,
            event_id=payload.get("id") if isinstance(payload.get("id"), str) else None,
        )

    def ack(self, accepted: bool) -> Acknowledgement:
        return Acknowledgement(
            status_code=200 if accepted else 400,
            headers={"content-type": "application/json"},
            body=_ACK_SUCCESS if accepted else _ACK_FAIL,
        )

    async def refund(self, order: RefundOrder) -> RefundOutcome:
        return self.gateway.refund(order)

    async def query(self, payment_no: str) -> PaymentQuery:
        return self.gateway.query(payment_no)

    async def aclose(self) -> None:
        await self.gateway.aclose()
