"""Every admin mutation leaves an audit entry (issue "Back office").

An *admin mutation* is one the authorization matrix (``tests/authz_matrix.py``) refuses to a
customer (DENY or GONE in the CUSTOMER column) and allows to some staff role: only staff or
operators may do it. Mutations no role of the matrix may do on someone else's object
(``startPayment``, ``leaveWaitlist``: only their owner) and self-service ones are not.

The test reuses the matrix's call recipes (``tests/authz_operations.py``): each admin mutation
is called as the first role allowed to (ORGANIZER_OWN, else OPERATOR, else AGENT or
CHECKIN_OWN), and exactly that call must have written an audit entry naming the action and
the caller; the same mutation called as a customer (refused) must write none.
"""

from __future__ import annotations

import httpx
from sqlmodel import col, select

from boxoffice.models.identity import AuditEntry
from boxoffice.runtime import Runtime
from tests.authz_matrix import ALLOW, DENY, GONE, MATRIX
from tests.authz_operations import (
    OPERATIONS,
    ROLES,
    World,
    build_world,
    finish_world,
    fresh_event,
    paid_order_of,
    pending_order,
)
from tests.helpers import gql, token_for

ALLOWED_ROLE_PREFERENCE = ("ORGANIZER_OWN", "OPERATOR", "AGENT", "CHECKIN_OWN")

# The action each admin mutation records (the call recipe decides the variant, e.g. unblocking).
AUDITED: dict[str, str] = {
    "createUser": "user.create",
    "freezeUser": "user.freeze",
    "unfreezeUser": "user.unfreeze",
    "createTenant": "tenant.create",
    "updateTenant": "tenant.update",
    "addTenantMember": "tenant.add_member",
    "auditMerchant": "tenant.audit",
    "createVenue": "venue.create",
    "updateVenue": "venue.update",
    "createSeatMap": "seat_map.create",
    "createEvent": "event.create",
    "updateEvent": "event.update",
    "publishEvent": "event.publish",
    "cancelEvent": "event.cancel",
    "createSession": "session.create",
    "updateSession": "session.update",
    "deleteSession": "session.delete",
    "createTicketTier": "tier.create",
    "updateTicketTier": "tier.update",
    "deleteTicketTier": "tier.delete",
    "setSeatsBlocked": "session.unblock_seats",
    "createBanner": "banner.create",
    "deleteBanner": "banner.delete",
    "createRecommendation": "recommendation.create",
    "deleteRecommendation": "recommendation.delete",
    "boxOfficeSale": "order.box_office_sale",
    "allocateChannelQuota": "inventory.allocate_channel",
    "setQueueRate": "session.update",  # the rate is a field of each of the event's sessions
    "addToBlacklist": "blacklist.add",
    "removeFromBlacklist": "blacklist.remove",
    "cancelOrder": "order.cancel",
    "requestRefund": "refund.request",
    "reviewRefund": "refund.approve",
    "retryRefund": "refund.retry",
    "setRefundPolicy": "refund_policy.set",
    "setEventRefundPolicy": "refund_policy.set",
    "setWaitlistPriority": "waitlist.priority",
    "createCoupon": "coupon.create",
    "pauseCoupon": "coupon.pause",
    "resumeCoupon": "coupon.resume",
    "endCoupon": "coupon.end",
    "issueCoupons": "coupon.issue",
    "createPromotion": "promotion.create",
    "endPromotion": "promotion.end",
    "reissueTicket": "ticket.reissue",
    "printTickets": "tickets.print",
    "sendTickets": "tickets.send",
    "createWebhook": "webhook.create",
    "updateWebhook": "webhook.update",
    "rotateWebhookSecret": "webhook.rotate_secret",
    "deleteWebhook": "webhook.delete",
    "redeliverWebhook": "webhook.redeliver",
    "retryDeadLetter": "outbox.retry_dead",
}

# Admin mutations deliberately not audited. Keep this short; each needs a reason.
EXEMPT: dict[str, str] = {
    # Gate scanning: one call per attendee at the door, thousands an hour per session; each scan
    # is already recorded as a CheckIn row (ticket, gate user, time, device), its own trail.
    "checkIn": "high-volume gate scan, recorded as a CheckIn row",
    # The same scans, uploaded in a batch by a gate device that was offline: CheckIn rows and
    # CheckInConflict rows are their record.
    "uploadOfflineScans": "high-volume gate scans, recorded as CheckIn rows",
}


def allowed_role(name: str) -> str | None:
    row = dict(zip(ROLES, MATRIX[name], strict=True))
    return next((role for role in ALLOWED_ROLE_PREFERENCE if row[role] == ALLOW), None)


def admin_mutations() -> list[str]:
    mutations = [name for name in MATRIX if OPERATIONS[name].document.startswith("mutation")]
    return [
        name
        for name in mutations
        if MATRIX[name][ROLES.index("CUSTOMER")] in (DENY, GONE) and allowed_role(name)
    ]


def test_every_admin_mutation_is_audited_or_exempt():
    admin = set(admin_mutations())
    unclassified = sorted(admin - set(AUDITED) - set(EXEMPT))
    assert not unclassified, (
        f"admin mutations that must write an audit entry (add to AUDITED with their action, "
        f"or, with a reason, to EXEMPT): {unclassified}"
    )
    assert not set(AUDITED) & set(EXEMPT)
    stale = sorted((set(AUDITED) | set(EXEMPT)) - admin)
    assert not stale, f"no longer admin mutations: {stale}"


async def _audit_ids(rt: Runtime) -> set[str]:
    async with rt.db.read() as session:
        return set((await session.exec(select(AuditEntry.id))).all())


async def _entries_since(rt: Runtime, seen: set[str]) -> list[AuditEntry]:
    async with rt.db.read() as session:
        rows = (await session.exec(select(AuditEntry).where(col(AuditEntry.id).not_in(seen)))).all()
    return list(rows)


async def _call(world: World, name: str, role: str) -> tuple[str | None, list[AuditEntry]]:
    """Build the call's variables (its setup may audit, as the operator), then make it alone
    and return its error code and the audit entries written meanwhile."""
    caller = world.callers[role]
    variables = await OPERATIONS[name].build(world, caller)
    seen = await _audit_ids(world.rt)
    result = await gql(world.client, OPERATIONS[name].document, variables, token=caller.token)
    return result.code, await _entries_since(world.rt, seen)


async def test_every_admin_mutation_leaves_an_audit_entry(client: httpx.AsyncClient, rt: Runtime):
    # given the authorization matrix's world
    world = await build_world(rt, client)
    await finish_world(world)
    problems: list[str] = []
    for name in admin_mutations():
        if name in EXEMPT:
            continue
        # when a customer tries it (refused)
        code, written = await _call(world, name, "CUSTOMER")
        assert code in ("FORBIDDEN", "NOT_FOUND"), (name, code)
        # then nothing is audited
        if written:
            problems.append(f"{name} refused, yet audited: {[e.action for e in written]}")
        # when the allowed role does it
        role = allowed_role(name)
        assert role is not None
        code, written = await _call(world, name, role)
        assert code is None, (name, role, code)
        # then that call wrote an entry with its action and the caller as actor
        actor = world.callers[role].user
        assert actor is not None
        if not any(e.action == AUDITED[name] and e.actor_id == actor.id for e in written):
            problems.append(
                f"{name} as {role}: no {AUDITED[name]!r} entry by the caller; "
                f"wrote {[(e.action, e.actor_id == actor.id) for e in written]}"
            )
    assert not problems, "\n".join(problems)


async def test_calls_that_fail_or_are_the_buyers_own_write_no_audit_entry(
    client: httpx.AsyncClient, rt: Runtime
):
    world = await build_world(rt, client)
    await finish_world(world)
    organizer = world.callers["ORGANIZER_OWN"]

    async def call(
        document: str, variables: dict[str, str], token: str | None
    ) -> tuple[str | None, list[AuditEntry]]:
        seen = await _audit_ids(rt)
        result = await gql(client, document, variables, token=token)
        return result.code, await _entries_since(rt, seen)

    # a draft without a ticket tier: publishing it passes authorization, then fails
    code, written = await call(
        OPERATIONS["publishEvent"].document, {"e": await fresh_event(world)}, organizer.token
    )
    assert (code, written) == ("BAD_USER_INPUT", [])
    # a second refund of the same order, asked by its organizer for the buyer
    order = await paid_order_of(world, await world.stranger())
    document = OPERATIONS["requestRefund"].document
    code, written = await call(document, {"o": order.id}, organizer.token)
    assert code is None
    assert [e.action for e in written] == ["refund.request"]
    code, written = await call(document, {"o": order.id}, organizer.token)
    assert (code, written) == ("ORDER_STATE_INVALID", [])
    # the buyer cancelling their own order is self-service, not an admin act
    buyer = await world.stranger()
    cancel = OPERATIONS["cancelOrder"].document
    code, written = await call(
        cancel, {"o": await pending_order(world, buyer)}, await token_for(rt, buyer)
    )
    assert (code, written) == (None, [])
