"""Alipay (open platform, public-key mode, RSA2).

Signatures are RSA-SHA256 with PKCS#1 v1.5, base64, over the parameters sorted by name and
joined as ``k=v&k=v`` (empty values left out):

- our requests are signed with the app private key over every parameter but ``sign``;
- asynchronous notifications (``application/x-www-form-urlencoded`` POSTs) are signed by Alipay
  over every parameter but ``sign`` and ``sign_type`` and verified with Alipay's public key;
- gateway answers (``{"<method>_response": {...}, "sign": "..."}``) are signed over the exact
  text of the ``<method>_response`` value, which is therefore cut out of the raw body.

Amounts are yuan strings (``"12.80"``) and times are Beijing time without an offset. A notice is
acknowledged by the plain text ``success``; anything else makes Alipay retry for about 25 hours
(4m, 10m, 10m, 1h, 2h, 6h, 15h), which is why ``notify_time`` gets a window that long.

``TRADE_CLOSED`` is also what Alipay reports after a paid trade was refunded in full: a CLOSED
outcome for an order already PAID is not a cancellation.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from boxoffice.clock import as_utc, utcnow
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

DEFAULT_GATEWAY = "https://openapi.alipay.com/gateway.do"
BEIJING = timezone(timedelta(hours=8), "CST")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
NOTIFY_WINDOW = timedelta(hours=25)
CLOCK_SKEW = timedelta(minutes=5)

_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?")
_PAID = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
_OUTCOMES = {
    "TRADE_SUCCESS": CallbackOutcome.PAID,
    "TRADE_FINISHED": CallbackOutcome.PAID,
    "TRADE_CLOSED": CallbackOutcome.CLOSED,
    "WAIT_BUYER_PAY": CallbackOutcome.PENDING,
}
_TRANSIENT_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "isp.unknow-error", "aop.ACQ.SYSTEM_ERROR"})


def sign_content(params: Mapping[str, str], *, exclude: frozenset[str]) -> bytes:
    """``k=v&...`` over the non-empty parameters not in ``exclude``, sorted by name."""
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in exclude and params[key]
    ).encode()


REQUEST_UNSIGNED = frozenset({"sign"})
NOTIFY_UNSIGNED = frozenset({"sign", "sign_type"})


def yuan(amount_minor: int) -> str:
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"


def parse_yuan(value: str) -> int:
    """Exact minor units of a yuan string; raises ``ValueError`` for anything but
    ``123``, ``123.4`` or ``123.45``."""
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise ValueError(f"not an amount: {value!r}")
    whole, fraction = match.group(1), (match.group(2) or ".")[1:]
    return int(whole) * 100 + int(fraction.ljust(2, "0"))


def beijing_time(value: datetime) -> str:
    return as_utc(value).astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing_time(value: str) -> datetime:
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)


def _form(body: bytes) -> dict[str, str]:
    """The notice's parameters, decoded in the charset it names; raises MALFORMED."""
    try:
        text = body.decode("ascii")
        charset = dict(parse_qsl(text, keep_blank_values=True, encoding="latin-1")).get(
            "charset", "utf-8"
        )
        codecs.lookup(charset)
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding=charset, errors="strict", max_num_fields=200
        )
    except (UnicodeDecodeError, LookupError, ValueError) as exc:
        raise CallbackRejected(RejectReason.MALFORMED, "not a form in a known charset") from exc
    params = dict(pairs)
    if len(params) != len(pairs):
        raise CallbackRejected(RejectReason.MALFORMED, "a parameter is repeated")
    return params


def _raw_value(text: str, key: str) -> str | None:
    """The exact text of the top-level ``key``'s value in a JSON object (what Alipay signs)."""
    marker = f'"{key}"'
    at = text.find(marker)
    if at < 0:
        return None
    colon = text.find(":", at + len(marker))
    if colon < 0:
        return None
    start = colon + 1
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    return text[start:end]


class AlipayProvider:
    """Alipay's computer-website payment (``alipay.trade.page.pay``), refunds and queries."""

    channel = PaymentChannel.ALIPAY

    def __init__(
        self,
        *,
        app_id: str,
        app_private_key: RSAPrivateKey,
        alipay_public_key: RSAPublicKey,
        seller_id: str | None = None,
        gateway: str = DEFAULT_GATEWAY,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        notify_window: timedelta = NOTIFY_WINDOW,
    ) -> None:
        self._app_id = app_id
        self._private_key = app_private_key
        self._alipay_key = alipay_public_key
        self._seller_id = seller_id
        self._gateway = gateway
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._owns_client = client is None
        self._clock = clock
        self._window = notify_window

    def signed_request(
        self,
        method: str,
        biz_content: Mapping[str, Any],
        *,
        notify_url: str | None = None,
        return_url: str | None = None,
    ) -> dict[str, str]:
        """The common parameters of one API call plus ``biz_content``, signed (RSA2)."""
        params = {
            "app_id": self._app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_time(self._clock()),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        if return_url:
            params["return_url"] = return_url
        params["sign"] = rsa.sign(self._private_key, sign_content(params, exclude=REQUEST_UNSIGNED))
        return params

    async def start(self, order: PaymentOrder) -> PaymentStart:
        """A signed ``alipay.trade.page.pay`` URL on the gateway (the payer's browser opens it;
        ``params`` are the same fields for a form POST). Only CNY."""
        if order.currency != "CNY":
            raise ProviderError(
                "Alipay takes CNY only", code="CURRENCY_UNSUPPORTED", retryable=False
            )
        params = self.signed_request(
            "alipay.trade.page.pay",
            {
                "out_trade_no": order.payment_no,
                "product_code": "FAST_INSTANT_TRADE_PAY",
                "total_amount": yuan(order.amount_minor),
                "subject": order.subject[:256],
                "time_expire": beijing_time(order.expires_at),
            },
            notify_url=order.notify_url,
            return_url=order.return_url,
        )
        separator = "&" if "?" in self._gateway else "?"
        return PaymentStart(pay_url=f"{self._gateway}{separator}{urlencode(params)}", params=params)

    def verify_callback(self, request: CallbackRequest, *, now: datetime) -> VerifiedCallback:
        """Raises ``CallbackRejected``: MALFORMED, SIGNATURE_INVALID (also for RSA1 notices),
        STALE_TIMESTAMP (``notify_time`` older than the retry window or in the future),
        MERCHANT_MISMATCH (``app_id``, or ``seller_id`` when configured)."""
        params = _form(request.body)
        signature = params.get("sign")
        if not signature:
            raise CallbackRejected(RejectReason.MALFORMED, "no sign")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise CallbackRejected(RejectReason.SIGNATURE_INVALID, "only RSA2 is accepted")
        if not rsa.verify(
            self._alipay_key, sign_content(params, exclude=NOTIFY_UNSIGNED), signature
        ):
            raise CallbackRejected(RejectReason.SIGNATURE_INVALID)
        try:
            sent_at = parse_beijing_time(params["notify_time"])
        except (KeyError, ValueError) as exc:
            raise CallbackRejected(RejectReason.MALFORMED, "notify_time") from exc
        now = as_utc(now)
        if sent_at < now - self._window or sent_at > now + CLOCK_SKEW:
            raise CallbackRejected(RejectReason.STALE_TIMESTAMP, f"notified at {sent_at}")
        if params.get("app_id") != self._app_id:
            raise CallbackRejected(RejectReason.MERCHANT_MISMATCH, "app_id")
        if self._seller_id is not None and params.get("seller_id") != self._seller_id:
            raise CallbackRejected(RejectReason.MERCHANT_MISMATCH, "seller_id")
        payment_no, trade_no = params.get("out_trade_no"), params.get("trade_no")
        if not payment_no or not trade_no:
            raise CallbackRejected(RejectReason.MALFORMED, "out_trade_no or trade_no")
        try:
            amount_minor = parse_yuan(params.get("total_amount", ""))
        except ValueError as exc:
            raise CallbackRejected(RejectReason.MALFORMED, "total_amount") from exc
        outcome = _OUTCOMES.get(params.get("trade_status", ""))
        if outcome is None:
            raise CallbackRejected(RejectReason.MALFORMED, "trade_status")
        paid_at = None
        if outcome is CallbackOutcome.PAID and params.get("gmt_payment"):
            try:
                paid_at = parse_beijing_time(params["gmt_payment"])
            except ValueError as exc:
                raise CallbackRejected(RejectReason.MALFORMED, "gmt_payment") from exc
        return VerifiedCallback(
            channel=PaymentChannel.ALIPAY,
            payment_no=payment_no,
            provider_trade_no=trade_no,
            outcome=outcome,
            amount_minor=amount_minor,
            currency=params.get("trans_currency") or "CNY",
            merchant_id=params.get("seller_id") or params["app_id"],
            paid_at=paid_at,
            raw=dict(params),
            event_id=params.get("notify_id"),
        )

    def ack(self, accepted: bool) -> Acknowledgement:
        return Acknowledgement(
            status_code=200,
            headers={"content-type": "text/plain; charset=utf-8"},
            body=b"success" if accepted else b"failure",
        )

    async def call(self, method: str, biz_content: Mapping[str, Any]) -> dict[str, Any]:
        """One gateway call; answers the verified ``<method>_response`` object.

        Raises ``ProviderError`` (retryable) when the gateway is unreachable, answers non-200,
        or its answer is not signed by Alipay's key.
        """
        try:
            response = await self._client.post(
                self._gateway, data=self.signed_request(method, biz_content)
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"Alipay is unreachable: {exc}", retryable=True) from exc
        if response.status_code != 200:
            raise ProviderError(f"Alipay answered HTTP {response.status_code}", retryable=True)
        text = response.text
        node_key = method.replace(".", "_") + "_response"
        if f'"{node_key}"' not in text:
            node_key = "error_response"
        content = _raw_value(text, node_key)
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProviderError("Alipay answered something not JSON", retryable=True) from exc
        signature = document.get("sign") if isinstance(document, dict) else None
        if (
            content is None
            or not isinstance(signature, str)
            or not rsa.verify(self._alipay_key, content.encode(), signature)
            or document.get(node_key) != json.loads(content)
        ):
            raise ProviderError(
                "Alipay's answer is not signed by Alipay", code="SIGNATURE_INVALID", retryable=True
            )
        node: dict[str, Any] = document[node_key]
        return node

    @staticmethod
    def _error(node: Mapping[str, Any]) -> ProviderError:
        """An answer other than success: retryable for 20000 (service unavailable) and system
        errors; 40004 is a business refusal; 4000x are errors in our call or configuration."""
        code, sub_code = str(node.get("code")), str(node.get("sub_code", ""))
        transient = code == "20000" or sub_code in _TRANSIENT_SUB_CODES
        return ProviderError(
            f"Alipay: {code} {sub_code} {node.get('sub_msg', node.get('msg', ''))}".strip(),
            code=sub_code or code,
            retryable=transient,
        )

    async def refund(self, order: RefundOrder) -> RefundOutcome:
        """``alipay.trade.refund`` with ``out_request_no`` = refund_no (idempotent). When the
        answer shows no fund change (a repeat, or still in progress) the refund is looked up
        with ``alipay.trade.fastpay.refund.query``. A business refusal (40004) is FAILED;
        other errors raise ``ProviderError``."""
        biz: dict[str, Any] = {
            "out_trade_no": order.payment_no,
            "refund_amount": yuan(order.amount_minor),
            "out_request_no": order.refund_no,
        }
        if order.reason:
            biz["refund_reason"] = order.reason[:256]
        node = await self.call("alipay.trade.refund", biz)
        if node.get("code") != "10000":
            error = self._error(node)
            if error.retryable or node.get("code") != "40004":
                raise error
            return RefundOutcome(RefundStatus.FAILED, order.refund_no, None, node, str(error))
        if node.get("fund_change") == "Y":
            return RefundOutcome(RefundStatus.SUCCEEDED, order.refund_no, None, node)
        settled = await self.call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": order.payment_no, "out_request_no": order.refund_no},
        )
        succeeded = settled.get("code") == "10000" and settled.get("refund_status") == (
            "REFUND_SUCCESS"
        )
        status = RefundStatus.SUCCEEDED if succeeded else RefundStatus.PENDING
        return RefundOutcome(status, order.refund_no, None, {"refund": node, "query": settled})

    async def query(self, payment_no: str) -> PaymentQuery:
        node = await self.call("alipay.trade.query", {"out_trade_no": payment_no})
        if node.get("code") != "10000":
            if node.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
                return PaymentQuery(
                    PaymentChannel.ALIPAY, payment_no, PaymentStatus.NOT_FOUND, raw=node
                )
            raise self._error(node)
        trade_status = str(node.get("trade_status", ""))
        outcome = _OUTCOMES.get(trade_status)
        if outcome is None:
            raise ProviderError(f"unknown trade_status {trade_status!r}", retryable=False)
        try:
            amount_minor = parse_yuan(str(node.get("total_amount", "")))
            paid_at = (
                parse_beijing_time(node["send_pay_date"])
                if trade_status in _PAID and node.get("send_pay_date")
                else None
            )
        except ValueError as exc:
            raise ProviderError("Alipay's trade is not readable", retryable=False) from exc
        return PaymentQuery(
            channel=PaymentChannel.ALIPAY,
            payment_no=payment_no,
            status=PaymentStatus(outcome.value),
            provider_trade_no=node.get("trade_no"),
            amount_minor=amount_minor,
            currency=node.get("trans_currency") or "CNY",
            paid_at=paid_at,
            raw=node,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
