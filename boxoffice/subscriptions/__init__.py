"""Subscriptions: async generators over broker channels.

They never hold a database session between events: each event opens a short one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from boxoffice.schema.context import Context


@asynccontextmanager
async def tracked(context: Context, field: str) -> AsyncIterator[None]:
    """Count the subscription in ``boxoffice_subscriptions_active`` while it is open."""
    gauge = context.rt.metrics.subscriptions.labels(field)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()
