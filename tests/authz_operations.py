"""The calls the authorization matrix makes: for each operation, its document and a builder of
minimal valid variables for a caller (creating fresh objects when the call would consume them,
so an allowed call never fails for a reason other than authorization).

Objects belong to tenant T1 ("own"); staff of T2 are the "other" tenant's. Objects a customer
owns (orders, tickets, holds) belong to a *victim* customer, so the CUSTOMER row tests that one
customer cannot reach another's things; self-service operations build the caller's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from boxoffice.clock import utcnow
from boxoffice.ids import new_id
from boxoffice.models.identity import Role, Tenant, User
from boxoffice.models.orders import Order
from boxoffice.models.outbox import DeliveryStatus, OutboxDelivery, OutboxEvent
from boxoffice.models.refunds import Refund, RefundStatus
from boxoffice.models.tickets import Ticket
from boxoffice.models.webhooks import WebhookDelivery
from boxoffice.runtime import Runtime
from boxoffice.services import sms_codes
from tests.catalog_factories import make_event
from tests.helpers import gql, make_tenant, make_user, token_for, viewer_for
from tests.order_factories import OnSale, hold_for, on_sale, order_for, paid_order
from tests.queue_factories import QueueSale, queue_sale
from tests.refund_factories import flaky_refunds, join, request, review
from tests.ticket_factories import ticketed_order

ROLES = (
    "CUSTOMER",
    "ORGANIZER_OWN",
    "ORGANIZER_OTHER",
    "CHECKIN_OWN",
    "CHECKIN_OTHER",
    "AGENT",
    "OPERATOR",
    "ANONYMOUS",
)


@dataclass
class Caller:
    role: str
    user: User | None
    token: str | None


@dataclass
class World:
    rt: Runtime
    client: httpx.AsyncClient
    t1: Tenant
    t2: Tenant
    sale: OnSale
    queue: QueueSale
    victim: User
    victim_token: str
    callers: dict[str, Caller]
    tickets: list[Ticket]  # the victim's, T1; consumed one per reissue / check-in
    payloads: list[str]
    order_id: str  # the victim's paid order
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def operator(self) -> Caller:
        return self.callers["OPERATOR"]

    async def admin(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """Run ``query`` as the operator (setting up objects through the API)."""
        return (await gql(self.client, query, variables, token=self.operator.token)).data

    async def stranger(self) -> User:
        """A fresh customer (each owns the objects one call consumes)."""
        return await make_user(self.rt, f"s-{uid()}@example.com")

    def next_ticket(self) -> tuple[Ticket, str]:
        return self.tickets.pop(), self.payloads.pop()


async def build_world(rt: Runtime, client: httpx.AsyncClient) -> World:
    t1 = await make_tenant(rt, "Own Club")
    t2 = await make_tenant(rt, "Other Club")
    users: dict[str, User | None] = {
        "CUSTOMER": await make_user(rt, "customer@example.com"),
        "ORGANIZER_OWN": await make_user(rt, "org1@example.com", Role.ORGANIZER, t1),
        "ORGANIZER_OTHER": await make_user(rt, "org2@example.com", Role.ORGANIZER, t2),
        "CHECKIN_OWN": await make_user(rt, "gate1@example.com", Role.CHECKIN, t1),
        "CHECKIN_OTHER": await make_user(rt, "gate2@example.com", Role.CHECKIN, t2),
        "AGENT": await make_user(rt, "agent@example.com", Role.AGENT),
        "OPERATOR": await make_user(rt, "operator@example.com", Role.OPERATOR),
        "ANONYMOUS": None,
    }
    callers = {
        role: Caller(role, user, await token_for(rt, user) if user else None)
        for role, user in users.items()
    }
    sale = await on_sale(rt, tenant=t1, ga_capacity=400)
    queue = await queue_sale(rt, tenant=t1)
    victim = await make_user(rt, "victim@example.com")
    victim_token = await token_for(rt, victim)
    order, tickets = await ticketed_order(rt, victim, sale, tier_id=sale.ga.id, quantity=2)
    for i in range(4):  # at most 6 per person and session: more victims for more tickets
        other = await make_user(rt, f"victim{i}@example.com")
        tickets += (await ticketed_order(rt, other, sale, tier_id=sale.ga.id, quantity=6))[1]
    payloads = [t.qr_payload for t in tickets]
    return World(
        rt, client, t1, t2, sale, queue, victim, victim_token, callers, tickets, payloads, order.id
    )


Builder = Callable[[World, Caller], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Call:
    document: str
    build: Builder


OPERATIONS: dict[str, Call] = {}


def call(name: str, document: str) -> Callable[[Builder], Builder]:
    def register(build: Builder) -> Builder:
        OPERATIONS[name] = Call(document, build)
        return build

    return register


def uid() -> str:
    return new_id()[-8:].lower()


async def fresh_event(w: World) -> str:
    event = await make_event(w.rt, w.t1, _venue(w), f"Draft {uid()}")
    return event.id


def _venue(w: World) -> Any:
    return w.extra["venue"]


async def pending_order(w: World, owner: User) -> str:
    held = await hold_for(w.rt, owner, w.sale.session, tier_id=w.sale.ga.id, quantity=1)
    return (await order_for(w.rt, owner, held)).id


def soon(days: int = 30) -> str:
    return (utcnow() + timedelta(days=days)).isoformat()


# --- identity ---------------------------------------------------------------------------------


@call("sendSmsCode", "mutation($p: String!) { sendSmsCode(phone: $p, purpose: REGISTER) }")
async def _sms(w: World, me: Caller) -> dict[str, Any]:
    return {"p": f"139{int(uid(), 36) % 10**8:08d}"}


@call("register", "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }")
async def _register(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"email": f"new-{uid()}@example.com", "password": "Str0ng-pass!", "nickname": "n"}}


@call("login", "mutation($i: LoginInput!) { login(input: $i) { accessToken } }")
async def _login(w: World, me: Caller) -> dict[str, Any]:
    await make_user(w.rt, email := f"login-{uid()}@example.com")
    return {"i": {"email": email, "password": "correct-horse-9"}}


@call("loginWithWechat", "mutation($c: String!) { loginWithWechat(code: $c) { accessToken } }")
async def _wechat(w: World, me: Caller) -> dict[str, Any]:
    return {"c": f"sandbox-{uid()}"}


async def _refresh_token(w: World) -> str:
    signed = await gql(
        w.client,
        "mutation($i: LoginInput!) { login(input: $i) { refreshToken } }",
        {"i": {"email": (u := await make_user(w.rt, f"r-{uid()}@example.com")).email,
               "password": "correct-horse-9"}},
    )  # fmt: skip
    del u
    return str(signed.data["login"]["refreshToken"])


@call("refreshToken", "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }")
async def _refresh(w: World, me: Caller) -> dict[str, Any]:
    return {"t": await _refresh_token(w)}


@call("logout", "mutation($t: String!) { logout(refreshToken: $t) }")
async def _logout(w: World, me: Caller) -> dict[str, Any]:
    return {"t": await _refresh_token(w)}


@call(
    "changePassword",
    'mutation { changePassword(oldPassword: "correct-horse-9", newPassword: "correct-horse-9") }',
)
async def _change_password(w: World, me: Caller) -> dict[str, Any]:
    return {}


@call(
    "resetPassword",
    'mutation($p: String!) { resetPassword(phone: $p, smsCode: "246810", '
    'newPassword: "Str0ng-pass!") }',
)
async def _reset_password(w: World, me: Caller) -> dict[str, Any]:
    """A user with a phone, and the RESET code the SMS would have carried."""
    phone = f"+86137{int(uid(), 36) % 10**8:08d}"
    async with w.rt.db.write() as session:
        session.add(User(phone=phone, roles=[Role.CUSTOMER]))
    await w.rt.backends.codes.put(
        sms_codes._code_key(sms_codes.SmsPurpose.RESET, phone), "246810", ttl_seconds=300
    )
    return {"p": phone}


@call("updateProfile", 'mutation { updateProfile(input: {nickname: "n"}) { id } }')
async def _profile(w: World, me: Caller) -> dict[str, Any]:
    return {}


@call("deleteMyAccount", "mutation($p: String!) { deleteMyAccount(password: $p) }")
async def _delete_me(w: World, me: Caller) -> dict[str, Any]:
    """Only ever the caller's own account (no argument names another); a wrong password, so
    the callers live on: every signed-in role gets as far as the password check."""
    return {"p": "not-the-password-1"}


@call("createUser", "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }")
async def _create_user(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"email": f"made-{uid()}@example.com", "password": "Str0ng-pass!",
                  "role": "CUSTOMER"}}  # fmt: skip


@call("freezeUser", "mutation($u: ID!) { freezeUser(userId: $u) { id } }")
async def _freeze(w: World, me: Caller) -> dict[str, Any]:
    return {"u": (await make_user(w.rt, f"f-{uid()}@example.com")).id}


@call("unfreezeUser", "mutation($u: ID!) { unfreezeUser(userId: $u) { id } }")
async def _unfreeze(w: World, me: Caller) -> dict[str, Any]:
    user = await make_user(w.rt, f"uf-{uid()}@example.com")
    await w.admin("mutation($u: ID!) { freezeUser(userId: $u) { id } }", {"u": user.id})
    return {"u": user.id}


@call("createTenant", "mutation($i: CreateTenantInput!) { createTenant(input: $i) { id } }")
async def _create_tenant(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"name": f"Club {uid()}"}}


@call("applyForTenant", "mutation($i: CreateTenantInput!) { applyForTenant(input: $i) { id } }")
async def _apply(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"name": f"Applicant {uid()}"}}


@call(
    "updateTenant",
    'mutation($t: ID!) { updateTenant(id: $t, input: {logoUrl: "https://x.example/l.png"}) '
    "{ id } }",
)
async def _update_tenant(w: World, me: Caller) -> dict[str, Any]:
    return {"t": w.t1.id}


@call(
    "addTenantMember",
    "mutation($t: ID!, $u: ID!) { addTenantMember(tenantId: $t, userId: $u, role: CHECKIN) "
    "{ userId } }",
)
async def _add_member(w: World, me: Caller) -> dict[str, Any]:
    return {"t": w.t1.id, "u": (await make_user(w.rt, f"m-{uid()}@example.com")).id}


@call(
    "auditMerchant",
    "mutation($t: ID!) { auditMerchant(tenantId: $t, approve: true) { id } }",
)
async def _audit(w: World, me: Caller) -> dict[str, Any]:
    applicant = await make_user(w.rt, f"a-{uid()}@example.com")
    applied = await gql(
        w.client,
        "mutation($i: CreateTenantInput!) { applyForTenant(input: $i) { id } }",
        {"i": {"name": f"Pending {uid()}"}},
        token=await token_for(w.rt, applicant),
    )
    return {"t": applied.data["applyForTenant"]["id"]}


# --- catalog ----------------------------------------------------------------------------------


@call("createVenue", "mutation($i: CreateVenueInput!) { createVenue(input: $i) { id } }")
async def _create_venue(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"tenantId": w.t1.id, "name": f"Hall {uid()}", "city": "上海", "address": "1 Rd"}}


@call("updateVenue", 'mutation($v: ID!) { updateVenue(id: $v, input: {address: "2 Rd"}) { id } }')
async def _update_venue(w: World, me: Caller) -> dict[str, Any]:
    return {"v": _venue(w).id}


@call("createSeatMap", "mutation($i: CreateSeatMapInput!) { createSeatMap(input: $i) { id } }")
async def _create_seat_map(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"venueId": _venue(w).id, "name": f"Map {uid()}",
                  "sections": [{"name": "A", "rows": [{"label": "A", "seats": 3}]}]}}  # fmt: skip


@call("createEvent", "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }")
async def _create_event(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"tenantId": w.t1.id, "title": f"Show {uid()}", "category": "STANDUP",
                  "city": "上海", "venueId": _venue(w).id}}  # fmt: skip


@call("updateEvent", 'mutation($e: ID!) { updateEvent(id: $e, input: {tags: ["t"]}) { id } }')
async def _update_event(w: World, me: Caller) -> dict[str, Any]:
    return {"e": w.sale.event.id}


async def _publishable_event(w: World) -> str:
    event_id = await fresh_event(w)
    starts = utcnow() + timedelta(days=9)
    session = await w.admin(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
        {"i": {"eventId": event_id, "startsAt": starts.isoformat(),
               "endsAt": (starts + timedelta(hours=2)).isoformat(),
               "saleStartsAt": (utcnow() - timedelta(hours=1)).isoformat()}},
    )  # fmt: skip
    await w.admin(
        "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { id } }",
        {"i": {"sessionId": session["createSession"]["id"], "name": "GA", "price": "10.00",
               "capacity": 5}},
    )  # fmt: skip
    return event_id


@call("publishEvent", "mutation($e: ID!) { publishEvent(id: $e) { id } }")
async def _publish(w: World, me: Caller) -> dict[str, Any]:
    return {"e": await _publishable_event(w)}


@call("cancelEvent", "mutation($e: ID!) { cancelEvent(id: $e) { id } }")
async def _cancel_event(w: World, me: Caller) -> dict[str, Any]:
    return {"e": await fresh_event(w)}


def _session_input(event_id: str) -> dict[str, Any]:
    starts = utcnow() + timedelta(days=10)
    return {"eventId": event_id, "startsAt": starts.isoformat(),
            "endsAt": (starts + timedelta(hours=2)).isoformat(),
            "saleStartsAt": utcnow().isoformat()}  # fmt: skip


@call("createSession", "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }")
async def _create_session(w: World, me: Caller) -> dict[str, Any]:
    return {"i": _session_input(w.extra["draft_event"])}


async def _fresh_session(w: World) -> str:
    made = await w.admin(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
        {"i": _session_input(w.extra["draft_event"])},
    )
    return str(made["createSession"]["id"])


@call(
    "updateSession",
    "mutation($s: ID!) { updateSession(id: $s, input: {purchaseLimit: 6}) { id } }",
)
async def _update_session(w: World, me: Caller) -> dict[str, Any]:
    return {"s": w.sale.session.id}


@call("deleteSession", "mutation($s: ID!) { deleteSession(id: $s) }")
async def _delete_session(w: World, me: Caller) -> dict[str, Any]:
    return {"s": await _fresh_session(w)}


@call(
    "createTicketTier",
    "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { id } }",
)
async def _create_tier(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"sessionId": w.sale.session.id, "name": f"T{uid()}", "price": "9.00",
                  "capacity": 3}}  # fmt: skip


async def _fresh_tier(w: World) -> str:
    made = await w.admin(
        "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { id } }",
        {"i": {"sessionId": w.sale.session.id, "name": f"T{uid()}", "price": "9.00",
               "capacity": 3}},
    )  # fmt: skip
    return str(made["createTicketTier"]["id"])


@call(
    "updateTicketTier",
    'mutation($t: ID!) { updateTicketTier(id: $t, input: {description: "d"}) { id } }',
)
async def _update_tier(w: World, me: Caller) -> dict[str, Any]:
    return {"t": w.sale.ga.id}


@call("deleteTicketTier", "mutation($t: ID!) { deleteTicketTier(id: $t) }")
async def _delete_tier(w: World, me: Caller) -> dict[str, Any]:
    return {"t": await _fresh_tier(w)}


@call(
    "setSeatsBlocked",
    "mutation($s: ID!, $seats: [ID!]!) { setSeatsBlocked(sessionId: $s, seatIds: $seats, "
    "blocked: false) { id } }",
)
async def _block(w: World, me: Caller) -> dict[str, Any]:
    return {"s": w.sale.session.id, "seats": [w.sale.seat_ids[-1]]}


@call("createBanner", "mutation($i: CreateBannerInput!) { createBanner(input: $i) { id } }")
async def _banner(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"title": "B", "imageUrl": "https://x.example/b.png", "tenantId": w.t1.id}}


@call("deleteBanner", "mutation($b: ID!) { deleteBanner(id: $b) }")
async def _delete_banner(w: World, me: Caller) -> dict[str, Any]:
    made = await w.admin(
        "mutation($i: CreateBannerInput!) { createBanner(input: $i) { id } }",
        {"i": {"title": "B", "imageUrl": "https://x.example/b.png", "tenantId": w.t1.id}},
    )
    return {"b": made["createBanner"]["id"]}


@call(
    "createRecommendation",
    "mutation($i: CreateRecommendationInput!) { createRecommendation(input: $i) { id } }",
)
async def _recommend(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"eventId": w.sale.event.id, "tenantId": w.t1.id}}


@call("deleteRecommendation", "mutation($r: ID!) { deleteRecommendation(id: $r) }")
async def _delete_recommendation(w: World, me: Caller) -> dict[str, Any]:
    made = await w.admin(
        "mutation($i: CreateRecommendationInput!) { createRecommendation(input: $i) { id } }",
        {"i": {"eventId": w.sale.event.id, "tenantId": w.t1.id}},
    )
    return {"r": made["createRecommendation"]["id"]}


@call("markWantToSee", "mutation($e: ID!) { markWantToSee(eventId: $e, want: true) { id } }")
async def _want(w: World, me: Caller) -> dict[str, Any]:
    return {"e": w.sale.event.id}


# --- back office, holds, queue, orders --------------------------------------------------------


@call("boxOfficeSale", "mutation($i: BoxOfficeSaleInput!) { boxOfficeSale(input: $i) { id } }")
async def _box_office(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"sessionId": w.sale.session.id, "tierId": w.sale.ga.id, "quantity": 1,
                  "paymentMethod": "CASH"}}  # fmt: skip


@call("createHold", "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }")
async def _hold(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"sessionId": w.sale.session.id, "tierId": w.sale.ga.id, "quantity": 1}}


@call("releaseHold", "mutation($t: String!) { releaseHold(token: $t) }")
async def _release(w: World, me: Caller) -> dict[str, Any]:
    held = await hold_for(
        w.rt, await w.stranger(), w.sale.session, tier_id=w.sale.ga.id, quantity=1
    )
    return {"t": held.token}


@call(
    "allocateChannelQuota",
    "mutation($s: ID!, $t: ID!) { allocateChannelQuota(sessionId: $s, tierId: $t, "
    'channel: "agency", quantity: 1) { __typename } }',
)
async def _quota(w: World, me: Caller) -> dict[str, Any]:
    return {"s": w.sale.session.id, "t": w.sale.ga.id}


@call("joinQueue", "mutation($e: ID!) { joinQueue(eventId: $e) { status } }")
async def _join(w: World, me: Caller) -> dict[str, Any]:
    return {"e": w.queue.event.id}


@call("leaveQueue", "mutation($e: ID!) { leaveQueue(eventId: $e) }")
async def _leave(w: World, me: Caller) -> dict[str, Any]:
    return {"e": w.queue.event.id}


@call("setQueueRate", "mutation($e: ID!) { setQueueRate(eventId: $e, admitPerSecond: 20) { id } }")
async def _queue_rate(w: World, me: Caller) -> dict[str, Any]:
    return {"e": w.queue.event.id}


@call(
    "addToBlacklist",
    "mutation($i: AddToBlacklistInput!) { addToBlacklist(input: $i) { id } }",
)
async def _blacklist(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"kind": "DEVICE", "value": f"bot-{uid()}"}}


@call("removeFromBlacklist", "mutation($b: ID!) { removeFromBlacklist(id: $b) }")
async def _unblacklist(w: World, me: Caller) -> dict[str, Any]:
    made = await w.admin(
        "mutation($i: AddToBlacklistInput!) { addToBlacklist(input: $i) { id } }",
        {"i": {"kind": "DEVICE", "value": f"bot-{uid()}"}},
    )
    return {"b": made["addToBlacklist"]["id"]}


@call("createOrder", "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }")
async def _order(w: World, me: Caller) -> dict[str, Any]:
    """The caller's own hold (anonymous: a victim's hold, which they must not turn into an
    order either)."""
    owner = me.user or await w.stranger()
    held = await hold_for(w.rt, owner, w.sale.session, tier_id=w.sale.ga.id, quantity=1)
    return {"i": {"holdToken": held.token, "idempotencyKey": uid()}}


@call("cancelOrder", "mutation($o: ID!) { cancelOrder(id: $o) { id } }")
async def _cancel_order(w: World, me: Caller) -> dict[str, Any]:
    return {"o": await pending_order(w, await w.stranger())}


@call(
    "startPayment",
    "mutation($o: ID!) { startPayment(orderId: $o, channel: SANDBOX) { paymentNo } }",
)
async def _start_payment(w: World, me: Caller) -> dict[str, Any]:
    return {"o": await pending_order(w, await w.stranger())}


# --- refunds and the waitlist -----------------------------------------------------------------


async def paid_order_of(w: World, owner: User) -> Order:
    """A paid order of one general-admission unit of T1."""
    return await paid_order(w.rt, owner, w.sale.session, tier_id=w.sale.ga.id, quantity=1)


async def pending_refund(w: World, owner: User | None = None) -> Refund:
    """A customer's paid order of T1 and the refund they asked for (PENDING)."""
    owner = owner or await w.stranger()
    return await request(w.rt, owner, await paid_order_of(w, owner))


async def failed_refund(w: World) -> str:
    """An approved refund the provider refused (FAILED): what retryRefund is for."""
    refund = await pending_refund(w)
    assert w.operator.user is not None
    staff = await viewer_for(w.rt, w.operator.user)
    with flaky_refunds(w.rt) as flaky:
        flaky.failing = "SYSTEMERROR"
        failed = await review(w.rt, staff, refund)
    assert failed.status is RefundStatus.FAILED
    return failed.id


@call(
    "requestRefund",
    'mutation($o: ID!) { requestRefund(orderId: $o, reason: "r") { id } }',
)
async def _request_refund(w: World, me: Caller) -> dict[str, Any]:
    """Someone else's paid order (a refund asked for is one per order: a fresh one each)."""
    return {"o": (await paid_order_of(w, await w.stranger())).id}


@call(
    "reviewRefund",
    "mutation($r: ID!) { reviewRefund(refundId: $r, approve: true) { status } }",
)
async def _review_refund(w: World, me: Caller) -> dict[str, Any]:
    return {"r": (await pending_refund(w)).id}


@call("retryRefund", "mutation($r: ID!) { retryRefund(refundId: $r) { status } }")
async def _retry_refund(w: World, me: Caller) -> dict[str, Any]:
    return {"r": await failed_refund(w)}


def _policy_input(**scope: str) -> dict[str, Any]:
    """The default rules (refunds until 48 hours before, no fee): setting them changes
    nothing the other calls rely on."""
    return {**scope, "refundable": True, "deadlineHours": 48, "feeTiers": []}


@call(
    "setRefundPolicy",
    "mutation($i: SetRefundPolicyInput!) { setRefundPolicy(input: $i) { source } }",
)
async def _set_policy(w: World, me: Caller) -> dict[str, Any]:
    return {"i": _policy_input(tenantId=w.t1.id)}


@call(
    "setEventRefundPolicy",
    "mutation($i: SetRefundPolicyInput!) { setRefundPolicy(input: $i) { source } }",
)
async def _set_event_policy(w: World, me: Caller) -> dict[str, Any]:
    return {"i": _policy_input(eventId=w.extra["draft_event"])}


@call(
    "joinWaitlist",
    "mutation($s: ID!, $t: ID!) { joinWaitlist(sessionId: $s, tierId: $t, quantity: 1) "
    "{ status } }",
)
async def _join_waitlist(w: World, me: Caller) -> dict[str, Any]:
    """The caller's own place on T1's sold-out tier (each role joins it once)."""
    return {"s": w.sale.session.id, "t": w.extra["sold_out_tier"]}


@call("leaveWaitlist", "mutation($e: ID!) { leaveWaitlist(id: $e) }")
async def _leave_waitlist(w: World, me: Caller) -> dict[str, Any]:
    """Someone else's place in the line."""
    entry = await join(w.rt, await w.stranger(), w.sale.session.id, w.extra["sold_out_tier"])
    return {"e": entry.id}


@call(
    "setWaitlistPriority",
    "mutation($e: ID!) { setWaitlistPriority(id: $e, priority: 5) { priority } }",
)
async def _waitlist_priority(w: World, me: Caller) -> dict[str, Any]:
    return {"e": w.extra["victim_entry"]}


# --- coupons ----------------------------------------------------------------------------------


def _coupon_input(w: World) -> dict[str, Any]:
    return {"name": f"C{uid()}", "kind": "FIXED", "value": "5.00", "totalQuantity": 100,
            "tenantId": w.t1.id}  # fmt: skip


async def _fresh_coupon(w: World) -> str:
    made = await w.admin(
        "mutation($i: CreateCouponInput!) { createCoupon(input: $i) { id } }",
        {"i": _coupon_input(w)},
    )
    return str(made["createCoupon"]["id"])


@call("createCoupon", "mutation($i: CreateCouponInput!) { createCoupon(input: $i) { id } }")
async def _create_coupon(w: World, me: Caller) -> dict[str, Any]:
    return {"i": _coupon_input(w)}


@call("pauseCoupon", "mutation($c: ID!) { pauseCoupon(id: $c) { id } }")
async def _pause(w: World, me: Caller) -> dict[str, Any]:
    return {"c": await _fresh_coupon(w)}


@call("resumeCoupon", "mutation($c: ID!) { resumeCoupon(id: $c) { id } }")
async def _resume(w: World, me: Caller) -> dict[str, Any]:
    coupon = await _fresh_coupon(w)
    await w.admin("mutation($c: ID!) { pauseCoupon(id: $c) { id } }", {"c": coupon})
    return {"c": coupon}


@call("endCoupon", "mutation($c: ID!) { endCoupon(id: $c) { id } }")
async def _end(w: World, me: Caller) -> dict[str, Any]:
    return {"c": await _fresh_coupon(w)}


@call("claimCoupon", "mutation($c: ID!) { claimCoupon(couponId: $c) { id } }")
async def _claim(w: World, me: Caller) -> dict[str, Any]:
    return {"c": w.extra["coupon"]}


@call("claimCouponByCode", "mutation($c: String!) { claimCouponByCode(code: $c) { id } }")
async def _claim_code(w: World, me: Caller) -> dict[str, Any]:
    return {"c": w.extra["coupon_code"]}


@call(
    "issueCoupons",
    "mutation($c: ID!, $u: [ID!]!) { issueCoupons(couponId: $c, userIds: $u) { id } }",
)
async def _issue(w: World, me: Caller) -> dict[str, Any]:
    return {"c": w.extra["coupon"], "u": [w.victim.id]}


@call(
    "createPromotion",
    "mutation($i: CreatePromotionInput!) { createPromotion(input: $i) { id } }",
)
async def _promotion(w: World, me: Caller) -> dict[str, Any]:
    return {"i": {"eventId": w.sale.event.id, "name": f"P{uid()}", "kind": "THRESHOLD",
                  "threshold": "100.00", "amountOff": "10.00"}}  # fmt: skip


@call("endPromotion", "mutation($p: ID!) { endPromotion(id: $p) { id } }")
async def _end_promotion(w: World, me: Caller) -> dict[str, Any]:
    made = await w.admin(
        "mutation($i: CreatePromotionInput!) { createPromotion(input: $i) { id } }",
        (await _promotion(w, me)),
    )
    return {"p": made["createPromotion"]["id"]}


# --- tickets ----------------------------------------------------------------------------------


@call("checkIn", "mutation($p: String!) { checkIn(payload: $p) { ok code } }")
async def _check_in(w: World, me: Caller) -> dict[str, Any]:
    return {"p": w.next_ticket()[1]}


@call(
    "uploadOfflineScans",
    "mutation($s: ID!, $scans: [OfflineScanInput!]!) { uploadOfflineScans(sessionId: $s, "
    "scans: $scans) { ok code } }",
)
async def _offline(w: World, me: Caller) -> dict[str, Any]:
    payload = w.next_ticket()[1]
    return {"s": w.sale.session.id,
            "scans": [{"payload": payload, "scannedAt": utcnow().isoformat(), "deviceId": "g1"}]}  # fmt: skip


@call("reissueTicket", "mutation($t: ID!) { reissueTicket(ticketId: $t) { id } }")
async def _reissue(w: World, me: Caller) -> dict[str, Any]:
    return {"t": w.next_ticket()[0].id}


@call(
    "printTickets",
    "mutation($o: [ID!]!) { printTickets(orderIds: $o) { ticketSn } }",
)
async def _print(w: World, me: Caller) -> dict[str, Any]:
    owner = await w.stranger()
    order, _tickets = await ticketed_order(w.rt, owner, w.sale, tier_id=w.sale.ga.id, quantity=1)
    return {"o": [order.id]}


@call("sendTickets", "mutation($o: ID!) { sendTickets(orderId: $o) }")
async def _send(w: World, me: Caller) -> dict[str, Any]:
    return {"o": w.order_id}


@call("markNotificationsRead", "mutation { markNotificationsRead }")
async def _read(w: World, me: Caller) -> dict[str, Any]:
    return {}


# --- webhooks and the outbox ------------------------------------------------------------------


def _webhook_input(w: World) -> dict[str, Any]:
    return {"url": "https://hooks.example.com/in", "events": ["order.paid"], "tenantId": w.t1.id}


async def _fresh_webhook(w: World) -> str:
    made = await w.admin(
        "mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } } }",
        {"i": _webhook_input(w)},
    )
    return str(made["createWebhook"]["webhook"]["id"])


@call(
    "createWebhook",
    "mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } } }",
)
async def _create_webhook(w: World, me: Caller) -> dict[str, Any]:
    return {"i": _webhook_input(w)}


@call(
    "updateWebhook",
    'mutation($h: ID!) { updateWebhook(id: $h, input: {description: "d"}) { id } }',
)
async def _update_webhook(w: World, me: Caller) -> dict[str, Any]:
    return {"h": w.extra["webhook"]}


@call("rotateWebhookSecret", "mutation($h: ID!) { rotateWebhookSecret(id: $h) { secret } }")
async def _rotate(w: World, me: Caller) -> dict[str, Any]:
    return {"h": w.extra["webhook"]}


@call("deleteWebhook", "mutation($h: ID!) { deleteWebhook(id: $h) }")
async def _delete_webhook(w: World, me: Caller) -> dict[str, Any]:
    return {"h": await _fresh_webhook(w)}


@call("redeliverWebhook", "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id } }")
async def _redeliver(w: World, me: Caller) -> dict[str, Any]:
    return {"d": w.extra["delivery"]}


@call(
    "retryDeadLetter",
    'mutation($e: ID!) { retryDeadLetter(consumer: "notifications", eventId: $e) }',
)
async def _retry(w: World, me: Caller) -> dict[str, Any]:
    return {"e": await fresh_dead_letter(w)}


# --- queries ----------------------------------------------------------------------------------


def query(name: str, document: str, **variables: str) -> None:
    """A read whose variables are attributes of the world (``sessionId="sale.session.id"``)."""

    async def build(w: World, me: Caller) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, path in variables.items():
            value: Any = w
            for part in path.split("."):
                value = (
                    value.extra[part]
                    if part in getattr(value, "extra", {})
                    else getattr(value, part)
                )
            out[key] = value
        return out

    OPERATIONS[name] = Call(document, build)


query("tenant", "query($t: ID!) { tenant(id: $t) { id } }", t="t1.id")
query("event", "query($e: ID!) { event(id: $e) { id } }", e="sale.event.id")
query("draftEvent", "query($e: ID!) { event(id: $e) { id } }", e="draft_event")
query("home", "query($t: ID) { home(tenantId: $t) { banners { id } } }", t="t1.id")
query(
    "eventCalendar",
    "query($t: ID) { eventCalendar(year: 2030, month: 1, tenantId: $t) { count } }",
    t="t1.id",
)
query("session", "query($s: ID!) { session(id: $s) { id } }", s="sale.session.id")
query(
    "sessionAvailability",
    "query($s: ID!) { sessionAvailability(sessionId: $s) { version } }",
    s="sale.session.id",
)
query("venue", "query($v: ID!) { venue(id: $v) { id } }", v="venue.id")
query("venues", "query($t: ID) { venues(tenantId: $t) { id } }", t="t1.id")
query("seatMap", "query($m: ID!) { seatMap(id: $m) { id } }", m="sale.seat_map.id")
query(
    "merchantOrders",
    "query($t: ID) { merchantOrders(filter: {tenantId: $t}) { totalCount } }",
    t="t1.id",
)
query(
    "salesStats", "query($t: ID) { salesStats(period: ALL_TIME, tenantId: $t) { period } }",
    t="t1.id",
)  # fmt: skip
query("auditLog", "query($t: ID) { auditLog(filter: {tenantId: $t}) { totalCount } }", t="t1.id")
query("hold", "query($h: String!) { hold(token: $h) { token } }", h="victim_hold")
query("queueStatus", "query($e: ID!) { queueStatus(eventId: $e) { status } }", e="queue.event.id")
query("blacklist", "query { blacklist { id } }")
query("order", "query($o: ID!) { order(id: $o) { id } }", o="order_id")
query("coupons", "query($t: ID) { coupons(tenantId: $t) { totalCount } }", t="t1.id")
query("coupon", "query($c: ID!) { coupon(id: $c) { id } }", c="coupon")
query("couponCode", "query($c: ID!) { coupon(id: $c) { code } }", c="coupon")
query(
    "availableCoupons",
    "query($h: String!) { availableCoupons(holdToken: $h) { id } }",
    h="victim_hold",
)
query("batchJob", "query($b: ID!) { batchJob(id: $b) { id } }", b="batch_job")
query("promotions", "query($e: ID!) { promotions(eventId: $e) { id } }", e="sale.event.id")
query("ticket", "query($t: ID!) { ticket(id: $t) { id } }", t="kept_ticket")
query("ticketPayload", "query($t: ID!) { ticket(id: $t) { qrPayload } }", t="kept_ticket")
query(
    "scannerBundle", "query($s: ID!) { scannerBundle(sessionId: $s) { version } }",
    s="sale.session.id",
)  # fmt: skip
query(
    "checkInConflicts",
    "query($s: ID!) { checkInConflicts(sessionId: $s) { totalCount } }",
    s="sale.session.id",
)
query("webhooks", "query($t: ID) { webhooks(tenantId: $t) { id } }", t="t1.id")
query("webhook", "query($h: ID!) { webhook(id: $h) { id } }", h="webhook")
query(
    "webhookDeliveries",
    "query($h: ID!) { webhookDeliveries(webhookId: $h) { totalCount } }",
    h="webhook",
)
query("changes", "query($t: ID) { changes(tenantId: $t) { cursor } }", t="t1.id")
query("deadLetters", "query { deadLetters { totalCount } }")
query("refund", "query($r: ID!) { refund(id: $r) { id } }", r="victim_refund")
query(
    "refunds", "query($t: ID) { refunds(tenantId: $t) { totalCount } }", t="t1.id"
)  # fmt: skip
query(
    "refundQuote",
    "query($o: ID!) { refundQuote(orderId: $o) { units } }",
    o="victim_refundable_order",
)
query(
    "refundPolicy", "query($t: ID) { refundPolicy(tenantId: $t) { source } }", t="t1.id"
)  # fmt: skip
query(
    "eventRefundPolicy",
    "query($e: ID) { refundPolicy(eventId: $e) { source } }",
    e="sale.event.id",
)
query(
    "eventRefundProgress",
    "query($e: ID!) { eventRefundProgress(eventId: $e) { total } }",
    e="cancelled_event",
)
query(
    "waitlist", "query($t: ID!) { waitlist(tierId: $t) { totalCount } }", t="sold_out_tier"
)  # fmt: skip


async def finish_world(w: World) -> None:
    """The objects the builders share, made through the API as the operator."""
    from sqlmodel import select

    from boxoffice.models.venues import Venue

    async with w.rt.db.read() as session:
        w.extra["venue"] = (
            await session.exec(select(Venue).where(Venue.id == w.sale.event.venue_id))
        ).one()
    w.extra["draft_event"] = await fresh_event(w)
    code = f"CODE{uid()}".upper()
    made = await w.admin(
        "mutation($i: CreateCouponInput!) { createCoupon(input: $i) { id } }",
        {"i": {**_coupon_input(w), "code": code, "perUserLimit": 100}},
    )
    w.extra["coupon"] = made["createCoupon"]["id"]
    w.extra["coupon_code"] = code
    job = await w.admin(
        "mutation($c: ID!, $u: [ID!]!) { issueCoupons(couponId: $c, userIds: $u) { id } }",
        {"c": w.extra["coupon"], "u": [w.victim.id]},
    )
    w.extra["batch_job"] = job["issueCoupons"]["id"]
    w.extra["webhook"] = await _fresh_webhook(w)
    held = await hold_for(w.rt, w.victim, w.sale.session, tier_id=w.sale.ga.id, quantity=1)
    w.extra["victim_hold"] = held.token
    kept, _payload = w.next_ticket()
    w.extra["kept_ticket"] = kept.id
    w.extra["delivery"], w.extra["dead_letter_event"] = await _delivery_and_dead_letter(w)
    await _refunds_and_waitlist(w)


async def _refunds_and_waitlist(w: World) -> None:
    """The victim's pending refund and another paid order of theirs; a cancelled event of T1
    (its refund run); a tier of T1 sold out, with the victim waiting for it."""
    w.extra["victim_refund"] = (await pending_refund(w, w.victim)).id
    w.extra["victim_refundable_order"] = (await paid_order_of(w, w.victim)).id
    cancelled = await fresh_event(w)
    await w.admin("mutation($e: ID!) { cancelEvent(id: $e) { id } }", {"e": cancelled})
    w.extra["cancelled_event"] = cancelled
    made = await w.admin(
        "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { id } }",
        {"i": {"sessionId": w.sale.session.id, "name": f"Last {uid()}", "price": "9.00",
               "capacity": 1}},
    )  # fmt: skip
    tier_id = made["createTicketTier"]["id"]
    await paid_order(w.rt, await w.stranger(), w.sale.session, tier_id=tier_id, quantity=1)
    w.extra["sold_out_tier"] = tier_id
    w.extra["victim_entry"] = (await join(w.rt, w.victim, w.sale.session.id, tier_id)).id


async def _outbox_event(w: World) -> OutboxEvent:
    async with w.rt.db.write() as session:
        event = OutboxEvent(
            event_id=new_id(),
            topic="order.paid",
            tenant_id=w.t1.id,
            aggregate_type="Order",
            aggregate_id=w.order_id,
            payload={"resource": {"id": w.order_id}},
        )
        session.add(event)
    return event


async def fresh_dead_letter(w: World) -> str:
    """An outbox event of T1 the notifications consumer gave up on."""
    event = await _outbox_event(w)
    assert event.seq is not None
    async with w.rt.db.write() as session:
        session.add(
            OutboxDelivery(
                event_seq=event.seq, consumer="notifications", status=DeliveryStatus.DEAD
            )
        )
    return event.event_id


async def _delivery_and_dead_letter(w: World) -> tuple[str, str]:
    """A delivery to T1's webhook endpoint, and a dead letter."""
    event = await _outbox_event(w)
    assert event.seq is not None
    async with w.rt.db.write() as session:
        delivery = WebhookDelivery(
            webhook_id=w.extra["webhook"],
            event_seq=event.seq,
            event_id=event.event_id,
            topic=event.topic,
        )
        session.add(delivery)
    return delivery.id, await fresh_dead_letter(w)
