"""The normalised text keyword search runs on, and the keyword condition over it.

``events.search_text`` holds the event's title, performers, venue name, tags and city,
normalised here in Python (NFKC, lower case, whitespace collapsed) so that matching does not
depend on the database's collation or ``lc_ctype``. A keyword is split on whitespace into at
most ``MAX_TERMS`` terms, and an event matches when its text contains every term
(``LIKE '%term%'`` per term, ANDed, wildcards escaped).

On PostgreSQL a pg_trgm GIN index on the column accelerates the ``LIKE``s. It only
accelerates: PostgreSQL rechecks every candidate row, so results are the same with or without
it. Under a C ``lc_ctype`` pg_trgm drops non-ASCII characters from trigrams, so a Chinese term
yields no trigrams and the index cannot narrow the scan; terms shorter than three characters
(common in Chinese: 周深, 话剧) never can. Those searches are correct but scan.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from boxoffice.errors import BadUserInput
from boxoffice.models.events import Event

MAX_TERMS = 8
MAX_KEYWORD_LENGTH = 100


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def event_search_text(event: Event, venue_name: str) -> str:
    parts = [event.title, *event.performers, venue_name, *event.tags, event.city]
    return normalise(" ".join(part for part in parts if part))


def keyword_terms(keyword: str | None) -> list[str]:
    if keyword is None:
        return []
    if len(keyword) > MAX_KEYWORD_LENGTH:
        raise BadUserInput(
            f"keyword must be at most {MAX_KEYWORD_LENGTH} characters", field="filter.keyword"
        )
    terms = list(dict.fromkeys(normalise(keyword).split()))
    if len(terms) > MAX_TERMS:
        raise BadUserInput(f"keyword has more than {MAX_TERMS} words", field="filter.keyword")
    return terms


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def keyword_condition(terms: list[str]) -> ColumnElement[bool]:
    """True for events whose search text contains every term."""
    column = col(Event.search_text)
    return and_(*(column.like(f"%{_escape_like(t)}%", escape="\\") for t in terms))
