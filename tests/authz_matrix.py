"""The authorization table: for every mutation and every tenant-scoped query, what each role
gets. ``tests/test_authz_matrix.py`` calls each through GraphQL and asserts this table, and
fails when an operation of the schema has no row here.

Who owns what (``tests/authz_operations.py``): catalog objects, coupons, webhooks and orders
belong to tenant T1. ``*_OWN`` are staff of T1, ``*_OTHER`` staff of T2. Orders, tickets and
holds belong to another customer (a victim), so the CUSTOMER column is "a customer reaching
someone else's"; self-service operations (createHold, createOrder, joinQueue, ...) act on the
caller's own. Cells:

    OK      allowed (data, no error)
    NULL    answered with null: the caller may not see it (nullable reads)
    HIDDEN  answered, with the fields asked for null (e.g. a coupon's code)
    UNAUTH  UNAUTHENTICATED        DENY  FORBIDDEN (a role that may never do it)
    GONE    NOT_FOUND (another tenant's object, exactly as if it did not exist)
    NO_HOLD HOLD_NOT_FOUND
    BAD_PW  INVALID_CREDENTIALS (the call reached the password check)
"""

from __future__ import annotations

ALLOW = "ALLOW"
NULL = "NULL"
HIDDEN = "HIDDEN"

OK, UNAUTH, DENY, GONE, NO_HOLD, BAD_PW = (
    ALLOW,
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "HOLD_NOT_FOUND",
    "INVALID_CREDENTIALS",
)

# fmt: off
MATRIX: dict[str, tuple[str, ...]] = {
    #                        CUSTOMER ORG_OWN  ORG_OTH  CHK_OWN  CHK_OTH  AGENT    OPERATOR ANONYMOUS
    "sendSmsCode":          (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "register":             (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "login":                (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "loginWithWechat":      (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "refreshToken":         (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "logout":               (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "changePassword":       (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "resetPassword":        (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),  # public: the SMS code decides
    "updateProfile":        (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "deleteMyAccount":      (BAD_PW,  BAD_PW,  BAD_PW,  BAD_PW,  BAD_PW,  BAD_PW,  BAD_PW,  UNAUTH),  # the caller's own only; a wrong password keeps the callers
    "createUser":           (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "freezeUser":           (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "unfreezeUser":         (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createTenant":         (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "applyForTenant":       (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "updateTenant":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "addTenantMember":      (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "auditMerchant":        (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createVenue":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "updateVenue":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createSeatMap":        (DENY,    OK,      GONE,    DENY,    DENY,    OK,      OK,      UNAUTH),  # AGENT: seat maps for any tenant (no grants yet)
    "createEvent":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "updateEvent":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "publishEvent":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "cancelEvent":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createSession":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "updateSession":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "deleteSession":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createTicketTier":     (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "updateTicketTier":     (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "deleteTicketTier":     (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "setSeatsBlocked":      (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createBanner":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "deleteBanner":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createRecommendation": (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "deleteRecommendation": (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "markWantToSee":        (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "boxOfficeSale":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createHold":           (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "releaseHold":          (NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, UNAUTH),  # a hold is its holder's alone: no one else finds it
    "allocateChannelQuota": (DENY,    OK,      GONE,    DENY,    DENY,    OK,      OK,      UNAUTH),  # AGENT: channel allocation for any tenant (no grants yet)
    "joinQueue":            (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "leaveQueue":           (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "setQueueRate":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "addToBlacklist":       (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "removeFromBlacklist":  (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createOrder":          (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "cancelOrder":          (GONE,    OK,      GONE,    GONE,    GONE,    GONE,    OK,      UNAUTH),  # the buyer, the tenant's organizers, operators
    "startPayment":         (GONE,    GONE,    GONE,    GONE,    GONE,    GONE,    GONE,    UNAUTH),  # only the buyer pays
    "requestRefund":        (GONE,    OK,      GONE,    GONE,    GONE,    GONE,    OK,      UNAUTH),  # the buyer, or the tenant's organizers on their behalf
    "reviewRefund":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "retryRefund":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "setRefundPolicy":      (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),  # the tenant's rules
    "setEventRefundPolicy": (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),  # an event's own rules
    "joinWaitlist":         (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "leaveWaitlist":        (GONE,    GONE,    GONE,    GONE,    GONE,    GONE,    GONE,    UNAUTH),  # a place in line is its holder's alone
    "setWaitlistPriority":  (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createCoupon":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "pauseCoupon":          (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "resumeCoupon":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "endCoupon":            (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "claimCoupon":          (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "claimCouponByCode":    (OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "issueCoupons":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "createPromotion":      (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "endPromotion":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "checkIn":              (DENY,    OK,      GONE,    OK,      GONE,    DENY,    OK,      UNAUTH),  # gate staff and organizers of the ticket's tenant
    "uploadOfflineScans":   (DENY,    OK,      GONE,    OK,      GONE,    DENY,    OK,      UNAUTH),  # gate staff and organizers of the session's tenant
    "reissueTicket":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "printTickets":         (DENY,    OK,      GONE,    DENY,    DENY,    OK,      OK,      UNAUTH),  # AGENT: printing for any tenant (no grants yet)
    "sendTickets":          (GONE,    OK,      GONE,    GONE,    GONE,    OK,      OK,      UNAUTH),  # the buyer, the tenant's organizers, agents, operators
    "markNotificationsRead":(OK,      OK,      OK,      OK,      OK,      OK,      OK,      UNAUTH),
    "createWebhook":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "updateWebhook":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "rotateWebhookSecret":  (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "deleteWebhook":        (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "redeliverWebhook":     (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "retryDeadLetter":      (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "tenant":               (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "event":                (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "draftEvent":           (GONE,    OK,      GONE,    OK,      GONE,    GONE,    OK,      GONE),  # an unpublished event: its tenant's staff only
    "home":                 (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "eventCalendar":        (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "session":              (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "sessionAvailability":  (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "venue":                (GONE,    OK,      GONE,    GONE,    GONE,    OK,      OK,      UNAUTH),
    "venues":               (DENY,    OK,      GONE,    DENY,    DENY,    OK,      OK,      UNAUTH),
    "seatMap":              (GONE,    OK,      GONE,    GONE,    GONE,    OK,      OK,      UNAUTH),
    "merchantOrders":       (DENY,    OK,      GONE,    OK,      GONE,    DENY,    OK,      UNAUTH),  # gate staff look orders up by phone
    "salesStats":           (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "auditLog":             (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "hold":                 (NULL,    NULL,    NULL,    NULL,    NULL,    NULL,    NULL,    UNAUTH),  # someone else's hold
    "queueStatus":          (NULL,    NULL,    NULL,    NULL,    NULL,    NULL,    NULL,    UNAUTH),
    "blacklist":            (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "order":                (NULL,    OK,      NULL,    NULL,    NULL,    NULL,    OK,      UNAUTH),  # the victim's order: the buyer, the tenant's organizers, operators
    "coupons":              (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "coupon":               (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "couponCode":           (HIDDEN,  OK,      HIDDEN,  HIDDEN,  HIDDEN,  HIDDEN,  OK,      HIDDEN),  # the code only for the coupon's managers
    "availableCoupons":     (NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, NO_HOLD, UNAUTH),  # someone else's hold
    "batchJob":             (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "promotions":           (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),
    "ticket":               (NULL,    OK,      NULL,    OK,      NULL,    OK,      OK,      UNAUTH),  # AGENT: any tenant's (per-tenant agent grants do not exist yet)
    "ticketPayload":        (NULL,    OK,      NULL,    HIDDEN,  NULL,    OK,      OK,      UNAUTH),  # gate staff see the ticket, never its signed payload
    "scannerBundle":        (DENY,    OK,      GONE,    OK,      GONE,    DENY,    OK,      UNAUTH),  # gate staff and organizers of the session's tenant
    "checkInConflicts":     (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "webhooks":             (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "webhook":              (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "webhookDeliveries":    (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "changes":              (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "deadLetters":          (DENY,    DENY,    DENY,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "refund":               (NULL,    OK,      NULL,    NULL,    NULL,    NULL,    OK,      UNAUTH),  # the victim's: the buyer, the tenant's organizers, operators
    "refunds":              (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "refundQuote":          (GONE,    OK,      GONE,    GONE,    GONE,    GONE,    OK,      UNAUTH),  # as requestRefund
    "refundPolicy":         (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),  # a tenant's own rules: its organizers
    "eventRefundPolicy":    (OK,      OK,      OK,      OK,      OK,      OK,      OK,      OK),  # a published event's rules: anyone, before buying
    "eventRefundProgress":  (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
    "waitlist":             (DENY,    OK,      GONE,    DENY,    DENY,    DENY,    OK,      UNAUTH),
}
# fmt: on
