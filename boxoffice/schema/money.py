"""``Money { amount: Decimal!, currency: String! }``: amounts are exact decimals, serialised
as strings ("1280.00"), never floats. The database keeps integer minor units."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from boxoffice import money


@strawberry.type(description='An exact amount: `amount` is a decimal string such as "1280.00".')
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def from_minor(cls, minor: int, currency: str = money.DEFAULT_CURRENCY) -> Money:
        value = money.Money.from_minor(minor, currency)
        return cls(amount=value.amount, currency=value.currency)

    @classmethod
    def optional(cls, minor: int | None, currency: str = money.DEFAULT_CURRENCY) -> Money | None:
        return None if minor is None else cls.from_minor(minor, currency)
