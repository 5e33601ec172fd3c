"""WeChat Pay API v3 (Native payments, refunds, queries, payment notices).

Signatures are RSA-SHA256 with PKCS#1 v1.5, base64:

- our requests carry ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  timestamp="..",serial_no="..",signature=".."``, signed with the merchant API private key over
  ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n``;
- WeChat Pay's answers and notices carry ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``,
  ``Wechatpay-Signature`` and ``Wechatpay-Serial`` and are signed over
  ``timestamp\\nnonce\\nbody\\n`` with the platform key named by the serial (a platform
  certificate serial or a ``PUB_KEY_ID_...``); timestamps older or newer than 5 minutes are
  refused.

A notice's ``resource`` is AES-256-GCM encrypted with the 32-byte APIv3 key (``nonce`` and
``associated_data`` as given, the 16-byte tag at the end of ``ciphertext``) and holds the
transaction. Amounts are integer fen. A notice is acknowledged by HTTP 200 with
``{"code":"SUCCESS"}``; anything else makes WeChat Pay retry (15s, 15s, 30s, 3m, 10m, 20m, 30m,
30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from boxoffice.clock import as_utc, utcnow
from boxoffice.ids import random_token
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
    ProviderError,
    RefundOrder,
    RefundOutcome,
    RefundStatus,
    RejectReason,
    VerifiedCallback,
)
from boxoffice.providers.payments import rsa_signatures as rsa

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
TIMESTAMP_WINDOW = timedelta(minutes=5)
BEIJING = timezone(timedelta(hours=8), "CST")

_OUTCOMES = {
    "SUCCESS": CallbackOutcome.PAID,
    "REFUND": CallbackOutcome.PAID,  # paid, then (partly) refunded
    "NOTPAY": CallbackOutcome.PENDING,
    "USERPAYING": CallbackOutcome.PENDING,
    "ACCEPT": CallbackOutcome.PENDING,
    "PAYERROR": CallbackOutcome.FAILED,
    "CLOSED": CallbackOutcome.CLOSED,
    "REVOKED": CallbackOutcome.CLOSED,
}
_REFUND_STATES = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "PROCESSING": RefundStatus.PENDING,
    "CLOSED": RefundStatus.FAILED,
    "ABNORMAL": RefundStatus.FAILED,
}
_TRANSIENT_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "SYSTEMERROR"})


def message(*lines: str) -> bytes:
    """Lines joined by ``\\n`` with a final ``\\n``: the shape of every v3 signed message."""
    return "".join(f"{line}\n" for line in lines).encode()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rfc3339(value: datetime) -> str:
    return as_utc(value).astimezone(BEIJING).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class _Transaction:
    payment_no: str
    trade_no: str | None
    outcome: CallbackOutcome
    amount_minor: int
    currency: str
    paid_at: datetime | None


def _read_transaction(data: Mapping[str, Any]) -> _Transaction:
    """The fields of a transaction object; raises ``ValueError`` naming a bad one."""
    payment_no = data.get("out_trade_no")
    if not isinstance(payment_no, str) or not payment_no:
        raise ValueError("out_trade_no")
    outcome = _OUTCOMES.get(str(data.get("trade_state")))
    if outcome is None:
        raise ValueError("trade_state")
    amount = data.get("amount")
    if not isinstance(amount, dict):
        raise ValueError("amount")
    total, currency = amount.get("total"), amount.get("currency", "CNY")
    if type(total) is not int or total <= 0 or not isinstance(currency, str):
        raise ValueError("amount")
    paid_at = None
    if outcome is CallbackOutcome.PAID and data.get("success_time"):
        paid_at = datetime.fromisoformat(str(data["success_time"]))
        if paid_at.tzinfo is None:
            raise ValueError("success_time")
        paid_at = paid_at.astimezone(UTC)
    trade_no = data.get("transaction_id")
    return _Transaction(
        payment_no=payment_no,
        trade_no=trade_no if isinstance(trade_no, str) and trade_no else None,
        outcome=outcome,
        amount_minor=total,
        currency=currency,
        paid_at=paid_at,
    )


class _Unverified(Exception):
    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail


class WechatPayProvider:
    """WeChat Pay v3 for one merchant (``mchid``) and one app (``appid``)."""

    channel = PaymentChannel.WECHAT_PAY

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        merchant_serial: str,
        merchant_private_key: RSAPrivateKey,
        apiv3_key: bytes,
        platform_public_keys: Mapping[str, RSAPublicKey],
        base_url: str = DEFAULT_BASE_URL,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        timestamp_window: timedelta = TIMESTAMP_WINDOW,
    ) -> None:
        if len(apiv3_key) != 32:
            raise ValueError("the APIv3 key is 32 bytes")
        if not platform_public_keys:
            raise ValueError("at least one platform public key is needed")
        self._mchid = mchid
        self._appid = appid
        self._serial = merchant_serial
        self._private_key = merchant_private_key
        self._aead = AESGCM(apiv3_key)
        self._platform_keys = dict(platform_public_keys)
        self._base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._owns_client = client is None
        self._clock = clock
        self._window = timestamp_window

    # -- signatures ---------------------------------------------------------------------------

    def authorization(self, method: str, url_path: str, body: str) -> str:
        """The ``Authorization`` header of a request to ``url_path`` (path and query)."""
        timestamp = str(int(self._clock().timestamp()))
        nonce = random_token(16)
        signature = rsa.sign(self._private_key, message(method, url_path, timestamp, nonce, body))
        return (
            f'{AUTH_SCHEME} mchid="{self._mchid}",nonce_str="{nonce}",timestamp="{timestamp}",'
            f'serial_no="{self._serial}",signature="{signature}"'
        )

    def _verify_signed(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """Check a platform-signed message (notice or answer); raises ``_Unverified``."""
        try:
            timestamp = headers["wechatpay-timestamp"]
            nonce = headers["wechatpay-nonce"]
            signature = headers["wechatpay-signature"]
            serial = headers["wechatpay-serial"]
        except KeyError as exc:
            raise _Unverified(RejectReason.MALFORMED, f"missing header {exc}") from exc
        signature_type = headers.get("wechatpay-signature-type", AUTH_SCHEME)
        if signature_type != AUTH_SCHEME:
            raise _Unverified(RejectReason.SIGNATURE_INVALID, f"type {signature_type!r}")
        key = self._platform_keys.get(serial)
        if key is None:
            raise _Unverified(RejectReason.UNKNOWN_KEY, f"serial {serial!r}")
        signed = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        if not rsa.verify(key, signed, signature):
            raise _Unverified(RejectReason.SIGNATURE_INVALID)
        if not timestamp.isdigit():
            raise _Unverified(RejectReason.MALFORMED, "timestamp is not unix seconds")
        sent_at = datetime.fromtimestamp(int(timestamp), UTC)
        if abs(as_utc(now) - sent_at) > self._window:
            raise _Unverified(RejectReason.STALE_TIMESTAMP, f"signed at {sent_at.isoformat()}")

    # -- notices ------------------------------------------------------------------------------

    def decrypt(self, resource: Mapping[str, Any]) -> bytes:
        """The plaintext of an encrypted ``resource``; raises ``CallbackRejected``."""
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise CallbackRejected(RejectReason.MALFORMED, "resource algorithm")
        ciphertext, nonce = resource.get("ciphertext"), resource.get("nonce")
        associated = resource.get("associated_data") or ""
        if not isinstance(ciphertext, str) or not isinstance(nonce, str):
            raise CallbackRejected(RejectReason.MALFORMED, "resource ciphertext or nonce")
        if not isinstance(associated, str):
            raise CallbackRejected(RejectReason.MALFORMED, "resource associated_data")
        try:
            return self._aead.decrypt(
                nonce.encode(), base64.b64decode(ciphertext, validate=True), associated.encode()
            )
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise CallbackRejected(RejectReason.DECRYPT_FAILED) from exc

    def verify_callback(self, request: CallbackRequest, *, now: datetime) -> VerifiedCallback:
        """Raises ``CallbackRejected``: MALFORMED, UNKNOWN_KEY (serial), SIGNATURE_INVALID,
        STALE_TIMESTAMP (beyond ±5 minutes), DECRYPT_FAILED, MERCHANT_MISMATCH (mchid, appid).
        """
        try:
            self._verify_signed(request.headers, request.body, now)
        except _Unverified as exc:
            raise CallbackRejected(exc.reason, exc.detail) from None
        try:
            notice = json.loads(request.body)
        except ValueError as exc:
            raise CallbackRejected(RejectReason.MALFORMED, "body is not JSON") from exc
        resource = notice.get("resource") if isinstance(notice, dict) else None
        if not isinstance(resource, dict):
            raise CallbackRejected(RejectReason.MALFORMED, "no resource")
        if resource.get("original_type", "transaction") != "transaction":
            raise CallbackRejected(RejectReason.MALFORMED, "not a transaction notice")
        try:
            transaction = json.loads(self.decrypt(resource))
        except ValueError as exc:
            raise CallbackRejected(RejectReason.MALFORMED, "resource is not JSON") from exc
        if not isinstance(transaction, dict):
            raise CallbackRejected(RejectReason.MALFORMED, "resource is not an object")
        if transaction.get("mchid") != self._mchid or transaction.get("appid") != self._appid:
            raise CallbackRejected(RejectReason.MERCHANT_MISMATCH, "mchid or appid")
        try:
            read = _read_transaction(transaction)
        except ValueError as exc:
            raise CallbackRejected(RejectReason.MALFORMED, str(exc)) from exc
        if read.trade_no is None:
            raise CallbackRejected(RejectReason.MALFORMED, "transaction_id")
        return VerifiedCallback(
            channel=PaymentChannel.WECHAT_PAY,
            payment_no=read.payment_no,
            provider_trade_no=read.trade_no,
            outcome=read.outcome,
            amount_minor=read.amount_minor,
            currency=read.currency,
            merchant_id=self._mchid,
            paid_at=read.paid_at,
            raw={"notice": {k: v for k, v in notice.items() if k != "resource"}, **transaction},
            event_id=notice.get("id") if isinstance(notice.get("id"), str) else None,
        )

    def ack(self, accepted: bool) -> Acknowledgement:
        if accepted:
            return Acknowledgement(200, {"content-type": "application/json"}, b'{"code":"SUCCESS"}')
        return Acknowledgement(
            400,
            {"content-type": "application/json"},
            b'{"code":"FAIL","message":"callback rejected"}',
        )

    # -- calls --------------------------------------------------------------------------------

    async def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One signed API call; answers the status and the JSON of a verified answer.

        Raises ``ProviderError`` (retryable) when WeChat Pay is unreachable or its answer is
        not signed by a known platform key within the timestamp window.
        """
        text = _json(body) if body is not None else ""
        headers = {
            "Authorization": self.authorization(method, path, text),
            "Accept": "application/json",
            "User-Agent": "boxoffice",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(
                method, self._base_url + path, content=text.encode(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"WeChat Pay is unreachable: {exc}", retryable=True) from exc
        answer_headers = {name.lower(): value for name, value in response.headers.items()}
        try:
            self._verify_signed(answer_headers, response.content, self._clock())
        except _Unverified as exc:
            raise ProviderError(
                f"WeChat Pay's answer (HTTP {response.status_code}) does not verify: "
                f"{exc.reason} {exc.detail}".strip(),
                code=str(exc.reason),
                retryable=True,
            ) from None
        if not response.content:
            return response.status_code, {}
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderError("WeChat Pay answered something not JSON", retryable=True) from exc
        if not isinstance(data, dict):
            raise ProviderError("WeChat Pay answered something not an object", retryable=True)
        return response.status_code, data

    @staticmethod
    def _error(status_code: int, data: Mapping[str, Any]) -> ProviderError:
        code = str(data.get("code", ""))
        return ProviderError(
            f"WeChat Pay: HTTP {status_code} {code} {data.get('message', '')}".strip(),
            code=code or None,
            retryable=status_code >= 500 or code in _TRANSIENT_CODES,
        )

    async def start(self, order: PaymentOrder) -> PaymentStart:
        """A Native order: ``code_url`` is what the payer scans (render it as a QR code)."""
        status_code, data = await self.call(
            "POST",
            "/v3/pay/transactions/native",
            {
                "appid": self._appid,
                "mchid": self._mchid,
                "description": order.subject[:127],
                "out_trade_no": order.payment_no,
                "time_expire": _rfc3339(order.expires_at),
                "notify_url": order.notify_url,
                "amount": {"total": order.amount_minor, "currency": order.currency},
            },
        )
        code_url = data.get("code_url")
        if status_code != 200 or not isinstance(code_url, str):
            raise self._error(status_code, data)
        return PaymentStart(pay_url=code_url, params={"code_url": code_url})

    async def refund(self, order: RefundOrder) -> RefundOutcome:
        """``POST /v3/refund/domestic/refunds`` with ``out_refund_no`` = refund_no (repeating it
        answers the same refund)."""
        body: dict[str, Any] = {
            "out_trade_no": order.payment_no,
            "out_refund_no": order.refund_no,
            "amount": {
                "refund": order.amount_minor,
                "total": order.total_minor,
                "currency": order.currency,
            },
        }
        if order.reason:
            body["reason"] = order.reason[:80]
        status_code, data = await self.call("POST", "/v3/refund/domestic/refunds", body)
        if status_code != 200:
            error = self._error(status_code, data)
            if error.retryable:
                raise error
            return RefundOutcome(RefundStatus.FAILED, order.refund_no, None, data, str(error))
        status = _REFUND_STATES.get(str(data.get("status")))
        if status is None:
            raise ProviderError(f"unknown refund status {data.get('status')!r}", retryable=True)
        refund_id = data.get("refund_id")
        return RefundOutcome(
            status=status,
            refund_no=order.refund_no,
            provider_refund_no=refund_id if isinstance(refund_id, str) else None,
            raw=data,
            failure=None if status is not RefundStatus.FAILED else str(data.get("status")),
        )

    async def query(self, payment_no: str) -> PaymentQuery:
        path = (
            f"/v3/pay/transactions/out-trade-no/{quote(payment_no, safe='')}"
            f"?mchid={quote(self._mchid, safe='')}"
        )
        status_code, data = await self.call("GET", path)
        if status_code == 404 and data.get("code") == "ORDER_NOT_EXIST":
            return PaymentQuery(
                PaymentChannel.WECHAT_PAY, payment_no, PaymentStatus.NOT_FOUND, raw=data
            )
        if status_code != 200:
            raise self._error(status_code, data)
        if data.get("mchid") != self._mchid or data.get("out_trade_no") != payment_no:
            raise ProviderError("WeChat Pay answered for another trade", retryable=False)
        try:
            read = _read_transaction(data)
        except ValueError as exc:
            raise ProviderError(f"unreadable transaction: {exc}", retryable=False) from exc
        return PaymentQuery(
            channel=PaymentChannel.WECHAT_PAY,
            payment_no=payment_no,
            status=PaymentStatus(read.outcome.value),
            provider_trade_no=read.trade_no,
            amount_minor=read.amount_minor,
            currency=read.currency,
            paid_at=read.paid_at,
            raw=data,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
