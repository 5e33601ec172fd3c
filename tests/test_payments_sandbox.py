"""The sandbox payment company: its key, signed callbacks, delivery with retries over real HTTP,
refunds and queries."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxoffice.clock import utcnow
from boxoffice.providers.payments import (
    CallbackOutcome,
    CallbackRejected,
    CallbackRequest,
    PaymentOrder,
    PaymentStatus,
    RefundOrder,
    RefundStatus,
    RejectReason,
)
from boxoffice.providers.payments.sandbox import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SandboxGateway,
    SandboxProvider,
    SandboxResult,
    SignedCallback,
    sandbox_signing_key,
)
from tests.live_servers import serving
from tests.services import free_port

JWT_SECRET = b"test-secret-" + b"x" * 40
MERCHANT = "boxoffice-sandbox"
FAST = (0.0, 0.01, 0.01, 0.01)


GatewayFactory = Callable[..., SandboxGateway]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    """Gateways of this deployment (closed after the test)."""
    made: list[SandboxGateway] = []

    def make(secret: bytes = JWT_SECRET, **overrides: object) -> SandboxGateway:
        options: dict[str, object] = {"merchant_id": MERCHANT, "retry_delays": FAST}
        options.update(overrides)
        gateway = SandboxGateway(sandbox_signing_key(secret), **options)  # type: ignore[arg-type]
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.aclose()


def make_order(payment_no: str = "P0001", amount_minor: int = 12800) -> PaymentOrder:
    return PaymentOrder(
        payment_no=payment_no,
        amount_minor=amount_minor,
        currency="CNY",
        subject="Concert ticket",
        notify_url="http://127.0.0.1:1/payments/sandbox/notify",
        expires_at=utcnow() + timedelta(minutes=15),
    )


def genuine(
    gateway: SandboxGateway, *, now: datetime | None = None, **fields: object
) -> SignedCallback:
    values: dict[str, object] = {
        "payment_no": "P0001",
        "result": SandboxResult.SUCCESS,
        "amount_minor": 12800,
        "currency": "CNY",
    }
    values.update(fields)
    return gateway.sign(gateway.callback_body(**values), now=now)  # type: ignore[arg-type]


def rejection(provider: SandboxProvider, request: CallbackRequest) -> RejectReason:
    with pytest.raises(CallbackRejected) as caught:
        provider.verify_callback(request, now=utcnow())
    return caught.value.reason


def verifies_with_public_key(raw_public_key: bytes, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does with nothing but the sandbox's public key."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message = (
        f"{lowered[HEADER_TIMESTAMP.lower()]}\n{lowered[HEADER_NONCE.lower()]}\n".encode() + body
    )
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(
            base64.b64decode(lowered[HEADER_SIGNATURE.lower()]), message
        )
    except InvalidSignature:
        return False
    return True


def raw_public(gateway: SandboxGateway) -> bytes:
    return gateway.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# -- the key --------------------------------------------------------------------------------


async def test_signing_key_is_hkdf_of_the_jwt_secret_so_every_process_agrees(
    make_gateway: GatewayFactory,
):
    # given the derivation spelled out with the primitive itself
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"boxoffice sandbox payments"
    ).derive(JWT_SECRET)
    expected = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    # when two "processes" derive the key
    first, second = make_gateway(), make_gateway()
    other = make_gateway(b"another-secret-" + b"y" * 40)
    # then they agree with it and with each other, and another deployment does not
    assert raw_public(first) == expected.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert first.key_id == second.key_id
    assert other.key_id != first.key_id
    # and a callback signed by one verifies on the other
    callback = genuine(first)
    assert (
        SandboxProvider(second, base_url="http://x")
        .verify_callback(callback.request(), now=utcnow())
        .payment_no
        == "P0001"
    )


# -- verification ---------------------------------------------------------------------------


async def test_genuine_success_callback_verifies_with_amount_merchant_and_outcome(
    make_gateway: GatewayFactory,
):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="http://testserver")
    # given a genuine callback
    callback = genuine(gateway, amount_minor=12800)
    # when it is verified
    verified = provider.verify_callback(callback.request(), now=utcnow())
    # then everything in it is usable
    assert verified.payment_no == "P0001"
    assert verified.outcome is CallbackOutcome.PAID
    assert verified.amount_minor == 12800
    assert verified.currency == "CNY"
    assert verified.merchant_id == MERCHANT
    assert verified.provider_trade_no == gateway.trade_no("P0001")
    assert verified.paid_at is not None and verified.paid_at.tzinfo is not None
    assert verified.event_id and verified.raw["result"] == "SUCCESS"


async def test_failed_callback_verifies_as_failed_without_paid_at(make_gateway: GatewayFactory):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="http://testserver")
    verified = provider.verify_callback(
        genuine(gateway, result=SandboxResult.FAILED).request(), now=utcnow()
    )
    assert verified.outcome is CallbackOutcome.FAILED
    assert verified.paid_at is None


def _forged(gateway: SandboxGateway) -> CallbackRequest:
    callback = genuine(gateway)
    stranger = Ed25519PrivateKey.generate()
    headers = dict(callback.headers)
    message = f"{headers[HEADER_TIMESTAMP]}\n{headers[HEADER_NONCE]}\n".encode() + callback.body
    headers[HEADER_SIGNATURE] = base64.b64encode(stranger.sign(message)).decode()
    return CallbackRequest(body=callback.body, headers=headers)


def _tampered(gateway: SandboxGateway) -> CallbackRequest:
    callback = genuine(gateway, amount_minor=12800)
    body = callback.body.replace(b'"total":12800', b'"total":1')
    assert body != callback.body
    return CallbackRequest(body=body, headers=callback.headers)


def _stale(gateway: SandboxGateway) -> CallbackRequest:
    return genuine(gateway, now=utcnow() - timedelta(minutes=6)).request()


def _from_the_future(gateway: SandboxGateway) -> CallbackRequest:
    return genuine(gateway, now=utcnow() + timedelta(minutes=6)).request()


def _unknown_key(gateway: SandboxGateway) -> CallbackRequest:
    callback = genuine(gateway)
    return CallbackRequest(
        body=callback.body, headers={**callback.headers, HEADER_KEY_ID: "0" * 16}
    )


def _other_merchant(gateway: SandboxGateway) -> CallbackRequest:
    return genuine(gateway, merchant_id="someone-else").request()


def _no_signature(gateway: SandboxGateway) -> CallbackRequest:
    callback = genuine(gateway)
    headers = {k: v for k, v in callback.headers.items() if k != HEADER_SIGNATURE}
    return CallbackRequest(body=callback.body, headers=headers)


def _signed_garbage(gateway: SandboxGateway) -> CallbackRequest:
    return gateway.sign(b"not json").request()


def _signed_without_amount(gateway: SandboxGateway) -> CallbackRequest:
    payload = json.loads(genuine(gateway).body)
    del payload["amount"]
    return gateway.sign(json.dumps(payload).encode()).request()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_forged, RejectReason.SIGNATURE_INVALID),
        (_tampered, RejectReason.SIGNATURE_INVALID),
        (_stale, RejectReason.STALE_TIMESTAMP),
        (_from_the_future, RejectReason.STALE_TIMESTAMP),
        (_unknown_key, RejectReason.UNKNOWN_KEY),
        (_other_merchant, RejectReason.MERCHANT_MISMATCH),
        (_no_signature, RejectReason.MALFORMED),
        (_signed_garbage, RejectReason.MALFORMED),
        (_signed_without_amount, RejectReason.MALFORMED),
    ],
)
async def test_callbacks_that_do_not_prove_themselves_are_rejected_with_their_reason(
    make_gateway: GatewayFactory,
    make: Callable[[SandboxGateway], CallbackRequest],
    reason: RejectReason,
):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="http://testserver")
    assert rejection(provider, make(gateway)) is reason


async def test_timestamps_inside_the_window_are_accepted(make_gateway: GatewayFactory):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="http://testserver")
    for offset in (timedelta(minutes=-4, seconds=-50), timedelta(minutes=4, seconds=50)):
        callback = genuine(gateway, now=utcnow() + offset)
        assert provider.verify_callback(callback.request(), now=utcnow()).payment_no == "P0001"


async def test_acknowledgements_have_the_sandbox_format(make_gateway: GatewayFactory):
    provider = SandboxProvider(make_gateway(), base_url="http://testserver")
    accepted, rejected = provider.ack(True), provider.ack(False)
    assert (accepted.status_code, json.loads(accepted.body)) == (200, {"code": "SUCCESS"})
    assert rejected.status_code == 400
    assert json.loads(rejected.body)["code"] == "FAIL"
    assert accepted.headers["content-type"] == "application/json"


async def test_start_registers_the_payment_and_points_at_the_complete_endpoint(
    make_gateway: GatewayFactory,
):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="http://testserver/")
    started = await provider.start(make_order("P/1", 1280))
    assert started.pay_url == "http://testserver/sandbox/payments/P%2F1/complete"
    assert started.params["paymentNo"] == "P/1"
    assert started.params["amount"] == "12.80"
    assert (await provider.query("P/1")).status is PaymentStatus.PENDING


# -- delivery over HTTP ---------------------------------------------------------------------


class Receiver:
    """A merchant's notify endpoint: fails ``failures`` times with HTTP 500, then verifies the
    callback with the sandbox's public key and acknowledges it as ``/notify`` would."""

    def __init__(self, provider: SandboxProvider, raw_public_key: bytes, failures: int) -> None:
        self.provider = provider
        self.raw_public_key = raw_public_key
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes, bool]] = []
        self.app = Starlette(routes=[Route("/notify", self.notify, methods=["POST"])])

    async def notify(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        self.received.append(
            (headers, body, verifies_with_public_key(self.raw_public_key, headers, body))
        )
        if len(self.received) <= self.failures:
            return Response("busy", status_code=500)
        try:
            self.provider.verify_callback(CallbackRequest(body=body, headers=headers), now=utcnow())
        except CallbackRejected:
            ack = self.provider.ack(False)
        else:
            ack = self.provider.ack(True)
        return Response(ack.body, status_code=ack.status_code, headers=ack.headers)


async def test_delivery_retries_until_acknowledged_and_can_be_replayed(
    make_gateway: GatewayFactory,
):
    # given a notify endpoint that fails twice before it works
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="http://testserver")
    receiver = Receiver(provider, raw_public(gateway), failures=2)
    async with serving(receiver.app) as server:
        # when the payer completes the payment
        delivery = await gateway.complete(
            payment_no="P0001",
            amount_minor=12800,
            currency="CNY",
            notify_url=f"{server.http_url}/notify",
            result=SandboxResult.SUCCESS,
        )
        # then it was delivered three times, every attempt verifiable with the public key
        assert len(receiver.received) == 3
        assert all(verified for _, _, verified in receiver.received)
        assert {body for _, body, _ in receiver.received} == {delivery.callback.body}
        assert delivery.attempts == 3 and delivery.acknowledged and delivery.status_code == 200
        assert json.loads(delivery.ack) == {"code": "SUCCESS"}
        # and the answer has the shape of the complete endpoint
        answer = delivery.as_dict()
        assert answer["ack"] == delivery.ack
        assert json.loads(answer["delivered"]["body"])["payment_no"] == "P0001"
        # when the delivered callback is replayed as returned
        replay = CallbackRequest(
            body=answer["delivered"]["body"].encode(), headers=answer["delivered"]["headers"]
        )
        verified = provider.verify_callback(replay, now=utcnow())
        # then it verifies again, here and at the receiver
        assert verified.outcome is CallbackOutcome.PAID and verified.amount_minor == 12800
        async with httpx.AsyncClient() as http:
            again = await http.post(
                f"{server.http_url}/notify",
                content=replay.body,
                headers=answer["delivered"]["headers"],
            )
        assert again.status_code == 200 and receiver.received[-1][2]


async def test_delivery_gives_up_after_the_schedule_and_reports_the_last_answer(
    make_gateway: GatewayFactory,
):
    gateway = make_gateway()
    receiver = Receiver(SandboxProvider(gateway, base_url="x"), raw_public(gateway), failures=99)
    async with serving(receiver.app) as server:
        delivery = await gateway.complete(
            payment_no="P0002",
            amount_minor=100,
            currency="CNY",
            notify_url=f"{server.http_url}/notify",
            result=SandboxResult.SUCCESS,
        )
    assert len(receiver.received) == len(FAST) == delivery.attempts
    assert not delivery.acknowledged
    assert (delivery.status_code, delivery.ack) == (500, "busy")


async def test_a_success_status_without_the_success_code_is_not_an_acknowledgement(
    make_gateway: GatewayFactory,
):
    gateway = make_gateway()
    calls: list[int] = []

    async def notify(_request: Request) -> Response:
        calls.append(1)
        return Response('{"code":"FAIL"}', media_type="application/json")

    app = Starlette(routes=[Route("/notify", notify, methods=["POST"])])
    async with serving(app) as server:
        delivery = await gateway.deliver(f"{server.http_url}/notify", b"{}")
    assert len(calls) == len(FAST)
    assert not delivery.acknowledged and delivery.status_code == 200


async def test_an_unreachable_notify_url_is_retried_then_reported(make_gateway: GatewayFactory):
    gateway = make_gateway()
    delivery = await gateway.deliver(f"http://127.0.0.1:{free_port()}/notify", b"{}")
    assert delivery.attempts == len(FAST)
    assert (delivery.acknowledged, delivery.status_code, delivery.ack) == (False, None, "")


async def test_the_schedule_waits_between_attempts(make_gateway: GatewayFactory):
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    gateway = make_gateway(retry_delays=(0.0, 1.0, 2.0, 4.0), sleep=sleep)
    await gateway.deliver(f"http://127.0.0.1:{free_port()}/notify", b"{}")
    assert waited == [1.0, 2.0, 4.0]


# -- refunds and queries --------------------------------------------------------------------


def refund(
    refund_no: str, amount: int, *, total: int = 1000, payment_no: str = "P0001"
) -> RefundOrder:
    return RefundOrder(
        payment_no=payment_no,
        refund_no=refund_no,
        amount_minor=amount,
        total_minor=total,
        currency="CNY",
        reason="changed plans",
    )


async def test_refunds_succeed_once_per_refund_no(make_gateway: GatewayFactory):
    provider = SandboxProvider(make_gateway(), base_url="x")
    first = await provider.refund(refund("R1", 300))
    again = await provider.refund(refund("R1", 300))
    reused = await provider.refund(refund("R1", 400))
    assert first.status is RefundStatus.SUCCEEDED and first.provider_refund_no
    assert again == first
    assert reused.status is RefundStatus.FAILED and reused.failure == "REFUND_NO_REUSED"


async def test_concurrent_refunds_never_exceed_the_payment(make_gateway: GatewayFactory):
    # given a paid total of 1000 and fifteen concurrent refunds of 100
    provider = SandboxProvider(make_gateway(), base_url="x")
    outcomes = await asyncio.gather(
        *(provider.refund(refund(f"R{i}", 100)) for i in range(15)),
        *(provider.refund(refund("R0", 100)) for _ in range(5)),
    )
    # then exactly ten distinct refunds succeed and the repeats of R0 answer R0's outcome
    succeeded = {o.refund_no for o in outcomes if o.status is RefundStatus.SUCCEEDED}
    assert len(succeeded) == 10 and "R0" in succeeded
    assert all(
        o.failure == "REFUND_EXCEEDS_PAYMENT" for o in outcomes if o.refund_no not in succeeded
    )


async def test_an_unpaid_payment_cannot_be_refunded(make_gateway: GatewayFactory):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="x")
    await provider.start(make_order("P0003", 1000))
    outcome = await provider.refund(refund("R9", 100, payment_no="P0003"))
    assert outcome.status is RefundStatus.FAILED and outcome.failure == "TRADE_NOT_PAID"


async def test_query_answers_what_the_gateway_knows(make_gateway: GatewayFactory):
    gateway = make_gateway()
    provider = SandboxProvider(gateway, base_url="x")
    receiver = Receiver(provider, raw_public(gateway), failures=0)
    assert (await provider.query("P0004")).status is PaymentStatus.NOT_FOUND
    await provider.start(make_order("P0004", 1280))
    await provider.start(make_order("P0005", 1280))
    assert (await provider.query("P0004")).status is PaymentStatus.PENDING
    async with serving(receiver.app) as server:
        paid = await gateway.complete(
            payment_no="P0004",
            amount_minor=1280,
            currency="CNY",
            notify_url=f"{server.http_url}/notify",
            result=SandboxResult.SUCCESS,
        )
        await gateway.complete(
            payment_no="P0005",
            amount_minor=1280,
            currency="CNY",
            notify_url=f"{server.http_url}/notify",
            result=SandboxResult.FAILED,
        )
    answer = await provider.query("P0004")
    assert answer.status is PaymentStatus.PAID
    assert answer.provider_trade_no == json.loads(paid.callback.body)["trade_no"]
    assert (answer.amount_minor, answer.currency) == (1280, "CNY")
    assert answer.paid_at is not None and answer.paid_at <= datetime.now(UTC)
    assert (await provider.query("P0005")).status is PaymentStatus.FAILED
