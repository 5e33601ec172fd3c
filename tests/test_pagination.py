"""Keyset cursors: opaque, versioned, tied to their sort order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import column

from boxoffice.errors import BadUserInput
from boxoffice.services.pagination import (
    Page,
    SortKey,
    after_condition,
    decode_cursor,
    encode_cursor,
    page_size,
)

KEYS: list[SortKey[tuple[datetime, str]]] = [
    SortKey(column("starts_at"), lambda row: row[0], "datetime"),
    SortKey(column("id"), lambda row: row[1], descending=True),
]


def test_cursors_round_trip():
    when = datetime(2027, 5, 1, 12, 0, tzinfo=UTC)
    assert decode_cursor(encode_cursor([when, "01ABC"]), KEYS) == [when, "01ABC"]


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        encode_cursor(["2027-05-01T12:00:00+00:00"]),  # another sort's cursor
        encode_cursor([12, "x"]),
        encode_cursor(["not a date", "x"]),
        encode_cursor([datetime(2027, 1, 1, tzinfo=UTC), 7]),
    ],
)
def test_foreign_cursors_are_bad_input(cursor: str):
    with pytest.raises(BadUserInput) as refused:
        decode_cursor(cursor, KEYS)
    assert refused.value.field == "after"


def test_after_condition_honours_each_direction():
    sql = str(after_condition(KEYS, [datetime(2027, 1, 1, tzinfo=UTC), "m"]))
    assert sql == "starts_at > :starts_at_1 OR starts_at = :starts_at_2 AND id < :id_1"


def test_pages_know_whether_more_follow():
    rows = [(datetime(2027, 1, d, tzinfo=UTC), f"id{d}") for d in range(1, 5)]
    page = Page.from_rows(rows, KEYS, 3)
    assert page.items == rows[:3] and page.has_next_page
    assert decode_cursor(page.end_cursor or "", KEYS) == [rows[2][0], "id3"]
    last = Page.from_rows(rows[:2], KEYS, 3)
    assert not last.has_next_page and len(last.cursors) == 2


def test_page_size_limits():
    assert page_size(None) == 20
    assert page_size(0) == 0
    with pytest.raises(BadUserInput):
        page_size(-1)
    with pytest.raises(BadUserInput):
        page_size(101)
