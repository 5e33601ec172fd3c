"""Logs never carry a whole phone number or e-mail address."""

from __future__ import annotations

import io
import logging

import orjson

from boxoffice.logs import JsonFormatter, PersonalDataFilter, TextFormatter


def logged(formatter: logging.Formatter, emit) -> str:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger("boxoffice.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_phone_numbers_and_addresses_are_masked_in_messages_extras_and_tracebacks():
    def emit(log: logging.Logger) -> None:
        log.warning(
            "code for %s sent to %s, order %s",
            "+8613800138000",
            "ann.lee@example.com",
            "BO2411251380013800",
            extra={"buyer": "13912345678"},
        )
        try:
            raise ValueError("duplicate phone 13700001111")
        except ValueError:
            log.exception("could not register")

    out = logged(JsonFormatter(), emit)
    first, second = (orjson.loads(line) for line in out.splitlines())
    assert first["msg"] == "code for +86****8000 sent to a***@example.com, order BO2411251380013800"
    assert first["buyer"] == "139****5678"
    assert "13700001111" not in second["exc"] and "137****1111" in second["exc"]
    for secret in ("13800138000", "ann.lee@", "13912345678", "13700001111"):
        assert secret not in out


def test_the_text_format_is_masked_too():
    out = logged(
        TextFormatter("%(levelname)s %(message)s"),
        lambda log: log.info("sms to 13800138000 failed"),
    )
    assert out.strip() == "INFO sms to 138****8000 failed"
