"""The one place domain errors become GraphQL errors.

``extensions`` always hold ``code`` and ``status``; domain errors add their details (``field``,
``reason``, ``retryAfter``). GraphQL syntax and validation errors are ``BAD_USER_INPUT``.
Anything unexpected is logged with the request id and answered as ``INTERNAL`` with no detail.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from boxoffice.errors import BadUserInput, BoxofficeError, InternalError

log = logging.getLogger("boxoffice.graphql")

_INTERNAL = InternalError()
_SUGGESTION = "Did you mean"
_BAD_INPUT_EXTENSIONS = {"code": BadUserInput.code, "status": BadUserInput.status}


def map_error(error: GraphQLError) -> None:
    """Rewrite ``error`` in place with the contract's extensions."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, BoxofficeError):
        error.extensions = original.extensions()
        return
    if original is None or isinstance(original, GraphQLError):
        if not (error.extensions or {}).get("code"):
            error.extensions = dict(_BAD_INPUT_EXTENSIONS)
        return
    log.error(
        "unhandled error in %s",
        ".".join(str(p) for p in error.path or ()) or "operation",
        exc_info=(type(original), original, original.__traceback__),
    )
    error.message = _INTERNAL.message
    error.extensions = _INTERNAL.extensions()
    error.original_error = None
    error.__cause__ = None


def strip_suggestions(error: GraphQLError) -> None:
    """Drop graphql-core's "Did you mean ...?" hints (fields, arguments, enum values, input
    fields, types), which let a client rebuild a schema whose introspection is off."""
    head, found, _hint = error.message.partition(_SUGGESTION)
    if found:
        error.message = head.rstrip()


def map_errors(
    errors: list[GraphQLError], _execution_context: Any = None, *, hide_suggestions: bool = False
) -> None:
    for error in errors:
        map_error(error)
        if hide_suggestions:
            strip_suggestions(error)
