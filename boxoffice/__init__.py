"""boxoffice: a GraphQL API for live-event ticketing."""

__version__ = "0.1.0"
