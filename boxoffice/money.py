"""Money as exact decimals; stored as integer minor units (cents, fen) in the database."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from boxoffice.errors import BadUserInput

CENT = Decimal("0.01")
DEFAULT_CURRENCY = "CNY"


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str = DEFAULT_CURRENCY

    @classmethod
    def from_minor(cls, minor: int, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls((Decimal(minor) / 100).quantize(CENT), currency)

    @property
    def minor(self) -> int:
        return to_minor(self.amount)


def to_minor(amount: Decimal, *, field: str = "amount") -> int:
    """Exact conversion of a decimal amount with at most two places to minor units."""
    try:
        quantized = amount.quantize(CENT)
    except InvalidOperation as exc:
        raise BadUserInput(f"{field} is not a valid amount", field=field) from exc
    if quantized != amount or not amount.is_finite():
        raise BadUserInput(f"{field} must have at most two decimal places", field=field)
    return int(quantized * 100)


def round_minor(amount: Decimal) -> int:
    """Round a computed amount (in minor units) half-up to a whole minor unit."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))
