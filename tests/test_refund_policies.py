"""Refund rules: fee tiers by time before the show, the deadline, event overrides, and who may
set and read them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from boxoffice.errors import BadUserInput, Forbidden, NotFound
from boxoffice.runtime import Runtime
from boxoffice.services import refund_policies
from boxoffice.services.refund_policies import (
    EffectivePolicy,
    FeeTier,
    FeeTierSpec,
    PolicySource,
)
from boxoffice.services.viewer import Viewer
from tests.coupon_factories import customer, organizer_of
from tests.helpers import make_tenant, make_user
from tests.order_factories import on_sale


def policy(*tiers: FeeTier) -> EffectivePolicy:
    ordered = tuple(sorted(tiers, key=lambda t: -t.hours_before))
    return EffectivePolicy("t", None, PolicySource.TENANT, True, 48, ordered)


def test_the_tier_for_the_time_left_applies_and_the_nearest_when_closer_than_all():
    # given 5 % a week out, 10 % + 2.00 a ticket from three days, 20 % from 49 hours
    rules = policy(FeeTier(168, 500, 0), FeeTier(72, 1000, 200), FeeTier(49, 2000, 0))
    # then the fee of two units costing 380.00 each depends on the hours left
    assert rules.fee(76000, 2, hours_left=200) == 3800
    assert rules.fee(76000, 2, hours_left=72) == 7600 + 400
    assert rules.fee(76000, 2, hours_left=60) == 15200
    assert rules.fee(76000, 2, hours_left=10) == 15200  # nearer than every tier: the nearest


def test_fees_round_down_and_never_exceed_the_cost():
    assert policy(FeeTier(0, 333, 0)).fee(1001, 1, hours_left=100) == 33  # 33.33 fen → 33
    assert policy(FeeTier(0, 5000, 90000)).fee(18000, 1, hours_left=100) == 18000
    assert policy().fee(18000, 1, hours_left=100) == 0


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ([FeeTierSpec(24), FeeTierSpec(24)], "feeTiers[1].hoursBefore"),
        ([FeeTierSpec(0, percent=Decimal("101"))], "feeTiers[0].percent"),
        ([FeeTierSpec(0, fixed=Decimal("-1"))], "feeTiers[0].fixed"),
        ([FeeTierSpec(-1)], "feeTiers[0].hoursBefore"),
        ([FeeTierSpec(0, percent=Decimal("1.234"))], "feeTiers[0].percent"),
    ],
)
async def test_fee_tiers_are_validated(rt: Runtime, tiers: list[FeeTierSpec], field: str):
    tenant = await make_tenant(rt)
    with pytest.raises(BadUserInput) as refused:
        await refund_policies.set_refund_policy(
            db=rt.db,
            viewer=organizer_of(tenant),
            tenant_id=tenant.id,
            event_id=None,
            refundable=True,
            deadline_hours=48,
            fee_tiers=tiers,
        )
    assert refused.value.field == field


async def test_an_events_rules_override_its_tenants_and_buyers_can_read_them(rt: Runtime):
    # given a tenant's rules and one event's own
    sale = await on_sale(rt)
    boss = organizer_of(sale.tenant)
    tenant_rules = await refund_policies.set_refund_policy(
        db=rt.db,
        viewer=boss,
        tenant_id=sale.tenant.id,
        event_id=None,
        refundable=True,
        deadline_hours=24,
        fee_tiers=[FeeTierSpec(0, percent=Decimal("5"))],
    )
    assert tenant_rules.source is PolicySource.TENANT
    buyer = customer(await make_user(rt, "reader@example.com"))
    read = await refund_policies.get_refund_policy(
        db=rt.db, viewer=buyer, tenant_id=None, event_id=sale.event.id
    )
    assert (read.source, read.deadline_hours) == (PolicySource.TENANT, 24)
    await refund_policies.set_refund_policy(
        db=rt.db,
        viewer=boss,
        tenant_id=None,
        event_id=sale.event.id,
        refundable=False,
        deadline_hours=0,
        fee_tiers=[],
    )
    # then the event's own rules are in force for it, the tenant's elsewhere
    read = await refund_policies.get_refund_policy(
        db=rt.db, viewer=buyer, tenant_id=None, event_id=sale.event.id
    )
    assert (read.source, read.refundable, read.event_id) == (
        PolicySource.EVENT,
        False,
        sale.event.id,
    )
    own = await refund_policies.get_refund_policy(
        db=rt.db, viewer=boss, tenant_id=sale.tenant.id, event_id=None
    )
    assert (own.source, own.fee_tiers) == (PolicySource.TENANT, (FeeTier(0, 500, 0),))


async def test_only_the_tenants_organizers_set_its_rules(rt: Runtime):
    sale = await on_sale(rt)
    other = await make_tenant(rt, "Other Club")

    async def set_by(viewer: Viewer, **scope: str | None) -> None:
        await refund_policies.set_refund_policy(
            db=rt.db,
            viewer=viewer,
            tenant_id=scope.get("tenant_id"),
            event_id=scope.get("event_id"),
            refundable=True,
            deadline_hours=48,
            fee_tiers=[],
        )

    with pytest.raises(NotFound):
        await set_by(organizer_of(other), event_id=sale.event.id)
    with pytest.raises(NotFound):
        await set_by(organizer_of(other), tenant_id=sale.tenant.id)
    with pytest.raises(Forbidden):
        await set_by(customer("someone"), tenant_id=sale.tenant.id)
    fresh = await refund_policies.get_refund_policy(
        db=rt.db, viewer=organizer_of(other), tenant_id=other.id, event_id=None
    )
    assert (fresh.source, fresh.deadline_hours, fresh.fee_tiers) == (PolicySource.DEFAULT, 48, ())
