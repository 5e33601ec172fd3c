"""The payment endpoints that are REST, not GraphQL: provider callbacks and the sandbox's
"the payer finished" button."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from boxoffice.errors import NotFound
from boxoffice.providers.payments import CallbackRequest, PaymentChannel
from boxoffice.providers.payments.sandbox import SandboxResult
from boxoffice.runtime import Runtime
from boxoffice.services import payments

log = logging.getLogger("boxoffice.payments")

MAX_CALLBACK_BYTES = 64 * 1024


def _not_found() -> Response:
    return JSONResponse({"error": "not found"}, status_code=404)


async def notify(request: Request) -> Response:
    """``POST /payments/{channel}/notify``: verify on the raw body, apply once, and answer in
    the provider's own acknowledgement format (success for duplicates too)."""
    rt: Runtime = request.app.state.runtime
    channel = PaymentChannel.from_path(request.path_params["channel"])
    provider = rt.payments.get(channel) if channel else None
    if channel is None or provider is None:
        return _not_found()
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        ack = provider.ack(False)
        return Response(ack.body, status_code=ack.status_code, headers=ack.headers)
    callback = CallbackRequest(body=body, headers=dict(request.headers))
    client = request.client.host if request.client else None
    try:
        result, accepted = await payments.handle_callback(
            deps=rt.payment_deps, channel=channel, request=callback, remote_ip=client
        )
        rt.metrics.count("payment_callback", result.verdict.value.lower())
    except Exception:
        log.exception("applying a %s callback failed; the provider will retry", channel)
        rt.metrics.count("payment_callback", "error")
        accepted = False
    ack = provider.ack(accepted)
    return Response(ack.body, status_code=ack.status_code, headers=ack.headers)


async def sandbox_complete(request: Request) -> Response:
    """``POST /sandbox/payments/{paymentNo}/complete`` with ``{"result": "SUCCESS"|"FAILED"}``:
    the sandbox company signs and delivers the callback as a real provider would and answers
    what it delivered (so it can be replayed) and what ``/notify`` acknowledged."""
    rt: Runtime = request.app.state.runtime
    gateway = rt.payments.sandbox_gateway
    if gateway is None:
        return _not_found()
    try:
        data = orjson.loads(await request.body() or b"{}")
        result = SandboxResult(str(data.get("result", "SUCCESS")).upper())
    except (orjson.JSONDecodeError, ValueError, AttributeError):
        return JSONResponse(
            {"error": 'body must be {"result": "SUCCESS"} or {"result": "FAILED"}'}, status_code=400
        )
    try:
        payment = await payments.payment_for(rt.payment_deps, request.path_params["payment_no"])
    except NotFound:
        return _not_found()
    if payment.channel != PaymentChannel.SANDBOX.value:
        return _not_found()
    delivery = await gateway.complete(
        payment_no=payment.payment_no,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        notify_url=payments.notify_url(rt.settings.public_base_url, PaymentChannel.SANDBOX),
        result=result,
    )
    return JSONResponse(delivery.as_dict())
