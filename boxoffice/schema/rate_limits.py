"""The operation rate limits (``boxoffice.services.operation_limits``) on every root field.

A field extension on each async root query and mutation field, attached once at import: it
costs nothing on nested fields, and each root field of a request (aliases included) counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from boxoffice.errors import BoxofficeError
from boxoffice.services import operation_limits, revocation


class OperationRateLimit(FieldExtension):
    def __init__(self, operation: str, *, is_mutation: bool) -> None:
        self.operation = operation
        self.is_mutation = is_mutation

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info,
        **kwargs: Any,
    ) -> Any:
        context = info.context
        rule = operation_limits.limit_for(
            context.rt.operation_limits, self.operation, is_mutation=self.is_mutation
        )
        if rule is not None:
            limiter = context.rt.backends.rate_limiter
            operation = self.operation

            def hit_for(user_id: str) -> revocation.Hit:
                key = operation_limits.key_for(
                    rule, operation, user_id=user_id, ip=None, arguments=kwargs
                )
                return revocation.Hit(limiter, key or "", rule.limit, rule.window_seconds)

            counted = None
            try:
                # a signed-in caller's hit rides along with the revocation check when it can
                viewer, counted = await context.viewer_counting(hit_for)
            except BoxofficeError:
                viewer = None  # the resolver answers the token error itself
            if counted is not None:
                operation_limits.enforce(counted, operation)
            else:
                await operation_limits.hit(
                    rate_limiter=limiter,
                    rule=rule,
                    operation=operation,
                    user_id=viewer.user_id if viewer else None,
                    ip=context.client_ip,
                    arguments=kwargs,
                )
        return await next_(source, info, **kwargs)


def attach(root: type, *, is_mutation: bool) -> None:
    """Put the limiter on every async field of a merged root type (idempotent)."""
    for field in root.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if not field.is_async or any(isinstance(e, OperationRateLimit) for e in field.extensions):
            continue
        name = field.graphql_name or to_camel_case(field.python_name)
        field.extensions.append(OperationRateLimit(name, is_mutation=is_mutation))
