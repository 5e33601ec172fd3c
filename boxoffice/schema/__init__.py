"""The GraphQL schema: root types merged from every domain, with the limits and caches that
keep it cheap and safe."""

from __future__ import annotations

import functools
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.tools import merge_types

from boxoffice.config import Settings
from boxoffice.resolvers.back_office import BackOfficeMutation, BackOfficeQuery
from boxoffice.resolvers.catalog import CatalogMutation, CatalogQuery
from boxoffice.resolvers.coupons import CouponMutation, CouponQuery
from boxoffice.resolvers.identity import IdentityMutation, IdentityQuery
from boxoffice.resolvers.inventory import InventoryMutation, InventoryQuery
from boxoffice.resolvers.notifications import NotificationMutation, NotificationQuery
from boxoffice.resolvers.orders import OrdersMutation, OrdersQuery
from boxoffice.resolvers.outbox import OutboxMutation, OutboxQuery
from boxoffice.resolvers.queue import QueueMutation, QueueQuery
from boxoffice.resolvers.refunds import RefundsMutation, RefundsQuery
from boxoffice.resolvers.tickets import TicketsMutation, TicketsQuery
from boxoffice.resolvers.waitlist import WaitlistMutation, WaitlistQuery
from boxoffice.resolvers.webhooks import WebhookMutation, WebhookQuery
from boxoffice.schema import fast_inputs, rate_limits
from boxoffice.schema.errors import map_errors
from boxoffice.schema.extensions import (
    OneOperationPerRequest,
    OperationMetrics,
    ReportingParserCache,
)
from boxoffice.schema.fast_events import EventExecutionContext
from boxoffice.schema.scalars import SCALAR_MAP
from boxoffice.schema.validation_rules import make_rules
from boxoffice.subscriptions.back_office import BackOfficeSubscription
from boxoffice.subscriptions.identity import IdentitySubscription
from boxoffice.subscriptions.inventory import InventorySubscription
from boxoffice.subscriptions.notifications import NotificationSubscription
from boxoffice.subscriptions.orders import OrdersSubscription
from boxoffice.subscriptions.queue import QueueSubscription

Query = merge_types(
    "Query",
    (
        IdentityQuery,
        CatalogQuery,
        BackOfficeQuery,
        InventoryQuery,
        QueueQuery,
        OrdersQuery,
        CouponQuery,
        TicketsQuery,
        RefundsQuery,
        WaitlistQuery,
        NotificationQuery,
        WebhookQuery,
        OutboxQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        IdentityMutation,
        CatalogMutation,
        BackOfficeMutation,
        InventoryMutation,
        QueueMutation,
        OrdersMutation,
        CouponMutation,
        TicketsMutation,
        RefundsMutation,
        WaitlistMutation,
        NotificationMutation,
        WebhookMutation,
        OutboxMutation,
    ),
)
Subscription = merge_types(
    "Subscription",
    (
        IdentitySubscription,
        InventorySubscription,
        QueueSubscription,
        OrdersSubscription,
        NotificationSubscription,
        BackOfficeSubscription,
    ),
)

rate_limits.attach(Query, is_mutation=False)
rate_limits.attach(Mutation, is_mutation=True)

PARSE_CACHE_SIZE = 1024


class CachedNameConverter(NameConverter):
    """strawberry converts every argument name to camelCase on every resolver call (about a
    tenth of a catalog query's CPU under py-spy); names are few, so remember them."""

    @functools.cache  # noqa: B019 - one converter per schema, names are a closed set
    def apply_naming_config(self, name: str) -> str:
        return super().apply_naming_config(name)


class BoxofficeSchema(strawberry.Schema):
    # the rules added to graphql-core's own (limits, introspection in prod); graphql_http
    # validates with the same ones
    validation_rules: tuple[Any, ...] = ()

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        map_errors(
            errors, execution_context, hide_suggestions=self.config.disable_field_suggestions
        )


def build_schema(settings: Settings | None = None) -> BoxofficeSchema:
    """Extensions are built fresh per operation (factories); the validation rules are made
    once so the validation cache keeps hitting across requests."""
    settings = settings or Settings()
    rules: list[Any] = [
        *make_rules(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_field_repeats=settings.max_field_repeats,
            max_fields=settings.max_fields,
            max_directives_per_node=settings.max_directives_per_node,
            max_directives=settings.max_directives,
        ),
    ]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    max_tokens = settings.max_tokens
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: ReportingParserCache(maxsize=PARSE_CACHE_SIZE),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=PARSE_CACHE_SIZE),
        OneOperationPerRequest,
        OperationMetrics,
    ]
    if settings.otel_enabled:
        from boxoffice.tracing import graphql_tracing_extension

        extensions.append(graphql_tracing_extension())
    schema = BoxofficeSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=EventExecutionContext,
        config=StrawberryConfig(
            disable_field_suggestions=settings.is_prod,
            scalar_map=SCALAR_MAP,
            name_converter=CachedNameConverter(),
        ),
    )
    schema.validation_rules = tuple(rules)
    fast_inputs.install(schema)
    return schema
