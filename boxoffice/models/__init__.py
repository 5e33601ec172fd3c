"""SQLModel tables: the database is the source of truth.

Importing this package registers every table on ``SQLModel.metadata`` (Alembic and the tests
rely on that), so each domain module is imported here.
"""

from sqlmodel import SQLModel

from boxoffice.models import (  # noqa: F401
    batch_jobs,
    blacklist,
    coupons,
    events,
    home,
    identity,
    notifications,
    orders,
    outbox,
    refunds,
    tickets,
    venues,
    waitlist,
    webhooks,
)

metadata = SQLModel.metadata

__all__ = ["metadata"]
