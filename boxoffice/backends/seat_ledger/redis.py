"""The seat ledger in Redis: one Lua script per operation (``lua/``), each prefixed with
``lua/prelude.lua``, which documents the key layout and the published message."""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson
from redis.asyncio import Redis

from boxoffice.backends.fast_redis import FastRedis
from boxoffice.backends.redis_client import text
from boxoffice.backends.seat_ledger import (
    Hold,
    HoldRequest,
    HoldState,
    LedgerNotLoaded,
    SeatState,
    SessionSpec,
    Snapshot,
    TierCounts,
)
from boxoffice.backends.seat_ledger.layout import rows_by_tier, rows_to_json
from boxoffice.errors import (
    BadUserInput,
    BoxofficeError,
    HoldExpired,
    HoldNotFound,
    SeatUnavailable,
    SoldOut,
)

SCRIPTS = (
    "hold",
    "get",
    "release",
    "pending",
    "confirm",
    "expire",
    "return",
    "handover",
    "snapshot",
    "quota",
    "counts",
    "load",
    "forget",
)
ACTIVE_KEY = "bo:ledger:active"  # sessions with holds that may expire -> next expiry (ms)


def _source(name: str) -> str:
    return (resources.files("boxoffice.backends.seat_ledger") / "lua" / f"{name}.lua").read_text()


def prefix(session_id: str) -> str:
    return f"bo:{{session:{session_id}}}:"


def _error(reply: dict[str, Any], session_id: str) -> BoxofficeError | LedgerNotLoaded:
    err = reply["err"]
    if err == "NOT_LOADED":
        return LedgerNotLoaded(session_id)
    if err == "SOLD_OUT":
        available = int(reply.get("available", 0))
        return SoldOut(None if available == 0 else f"Only {available} left.", available=available)
    if err == "SEAT_UNAVAILABLE":
        return SeatUnavailable(seats=reply.get("seats"))
    if err == "NO_ADJACENT_SEATS":
        return SeatUnavailable(
            "Not enough seats together are left; choose seats or allow split.",
            reason="NO_ADJACENT_SEATS",
        )
    if err == "HOLD_EXPIRED":
        return HoldExpired()
    if err == "HOLD_NOT_FOUND":
        return HoldNotFound()
    if err in ("HOLD_ORDERED", "CHANNEL_HOLD"):
        return BadUserInput(
            "An order owns this hold."
            if err == "HOLD_ORDERED"
            else "A sales channel's hold goes back to its channel.",
            field="holdId",
            reason=err,
        )
    if err == "NOT_IN_HOLD":
        seats = reply.get("seats")
        return BadUserInput(
            "Not a seat of this hold." if seats else "The hold has fewer units.",
            field="seatIds" if seats else "quantity",
            reason=err,
            seats=seats,
        )
    if err == "USER_LIMIT":
        return BadUserInput(
            f"At most {reply.get('limit')} tickets per person for this session.",
            field="quantity",
            reason="USER_LIMIT",
        )
    messages = {
        "UNKNOWN_SEAT": ("No such seat in this session.", "seatIds"),
        "DUPLICATE_SEAT": ("A seat is listed twice.", "seatIds"),
        "UNKNOWN_TIER": ("No such tier in this session.", "tierId"),
        "BAD_QUANTITY": ("quantity must be > 0", "quantity"),
        "EXISTS": ("This hold already exists.", "holdId"),
        "NOT_GENERAL_ADMISSION": ("Not a general-admission tier of this session.", "units"),
        "NOT_SOLD": ("Only sold seats can be returned.", "seatIds"),
        "OVER_RETURN": ("More units returned than were sold.", "units"),
    }
    message, field = messages.get(err, (f"Seat ledger refused: {err}", None))
    return BadUserInput(message, field=field, seats=reply.get("seats"))


def _hold(session_id: str, reply: dict[str, Any]) -> Hold:
    data = reply["hold"]
    return Hold(
        hold_id=data["id"],
        session_id=session_id,
        user_id=data["u"],
        seats=dict(data["s"]),
        units={t: int(n) for t, n in data["n"].items()},
        expires_at_ms=int(data["e"]),
        state=HoldState(data["st"]),
        version=int(reply["v"]),
        meta=data.get("m") or "",
    )


class RedisSeatLedger:
    def __init__(self, redis: Redis, *, fast: FastRedis | None = None) -> None:
        self._redis = redis
        prelude = _source("prelude")
        scripts = fast or redis  # every ledger operation is one script call: the hot path
        self._scripts: dict[str, Any] = {
            name: scripts.register_script(prelude + "\n" + _source(name)) for name in SCRIPTS
        }

    async def _call(self, name: str, session_id: str, *args: Any) -> dict[str, Any]:
        raw = await self._scripts[name](keys=[prefix(session_id)], args=list(args))
        reply: dict[str, Any] = orjson.loads(raw)
        if "err" in reply:
            raise _error(reply, session_id)
        return reply

    async def _track(self, session_id: str, next_expiry_ms: int) -> None:
        if next_expiry_ms:
            await self._redis.zadd(ACTIVE_KEY, {session_id: next_expiry_ms})
        else:
            await self._redis.zrem(ACTIVE_KEY, session_id)

    async def load(self, spec: SessionSpec, *, now_ms: int, force: bool = True) -> int:
        rows = rows_by_tier(spec.seats)
        payload = {
            "tiers": [
                {"id": t.tier_id, "cap": t.capacity, "seated": t.seated, "quotas": dict(t.quotas)}
                for t in spec.tiers
            ],
            "seats": [[s.seat_id, s.tier_id, 1 if s.blocked else 0] for s in spec.seats],
            "rows": {tier: orjson.dumps(rows_to_json(r)).decode() for tier, r in rows.items()},
            "taken": [
                {
                    "id": t.hold_id,
                    "u": t.user_id,
                    "seats": list(t.seat_ids),
                    "units": dict(t.units),
                    "sold": t.sold,
                    "until": t.until_ms,
                }
                for t in spec.taken
            ],
        }
        reply = await self._call(
            "load", spec.session_id, now_ms, orjson.dumps(payload).decode(), "1" if force else "0"
        )
        pending = [t.until_ms for t in spec.taken if not t.sold and t.until_ms]
        if pending:
            await self._redis.zadd(ACTIVE_KEY, {spec.session_id: min(pending)}, lt=True)
        return int(reply["v"])

    async def is_loaded(self, session_id: str) -> bool:
        return bool(await self._redis.hexists(prefix(session_id) + "meta", "version"))

    async def hold(self, session_id: str, request: HoldRequest, *, now_ms: int) -> Hold:
        mode = "seats" if request.seat_ids else "tier"
        reply = await self._call(
            "hold",
            session_id,
            request.hold_id,
            request.user_id,
            now_ms,
            request.ttl_ms,
            -1 if request.user_limit is None else request.user_limit,
            request.channel or "",
            request.meta,
            mode,
            "1" if request.allow_split else "0",
            request.tier_id or "",
            request.quantity,
            *request.seat_ids,
        )
        return await self._tracked(session_id, reply)

    async def _tracked(self, session_id: str, reply: dict[str, Any]) -> Hold:
        """The hold of ``reply``, its expiry added to the sweeper's index when the script says
        the index may lack it ("t"; see ``needs_tracking`` in prelude.lua): once per session
        and earliest expiry rather than once per hold, which saves a round trip per hold."""
        hold = _hold(session_id, reply)
        if reply.get("t"):
            # LT keeps the earliest expiry and still adds a session that is not tracked yet
            await self._redis.zadd(ACTIVE_KEY, {session_id: hold.expires_at_ms}, lt=True)
        return hold

    async def get(self, session_id: str, hold_id: str, *, now_ms: int) -> Hold:
        return _hold(session_id, await self._call("get", session_id, hold_id, now_ms))

    async def release(self, session_id: str, hold_id: str, *, now_ms: int) -> bool:
        reply = await self._call("release", session_id, hold_id, now_ms)
        return bool(reply["released"])

    async def mark_pending(
        self, session_id: str, hold_id: str, user_id: str, *, until_ms: int, now_ms: int
    ) -> Hold:
        reply = await self._call("pending", session_id, hold_id, user_id, now_ms, until_ms)
        return await self._tracked(session_id, reply)

    async def confirm(self, session_id: str, hold_id: str) -> bool:
        reply = await self._call("confirm", session_id, hold_id)
        return bool(reply["confirmed"])

    async def expire(self, session_id: str, *, now_ms: int) -> list[str]:
        reply = await self._call("expire", session_id, now_ms)
        await self._track(session_id, int(reply.get("next") or 0))
        return list(reply.get("released") or [])

    async def due_sessions(self, *, now_ms: int) -> list[str]:
        """Sessions that have holds due by ``now_ms`` (for the sweeper)."""
        found = await self._redis.zrangebyscore(ACTIVE_KEY, "-inf", now_ms, start=0, num=500)
        return [text(s) or "" for s in found if isinstance(s, bytes | str)]

    async def return_units(
        self,
        session_id: str,
        *,
        user_id: str,
        seat_ids: tuple[str, ...] = (),
        units: dict[str, int] | None = None,
        to: HoldRequest | None = None,
        now_ms: int,
    ) -> Hold | None:
        offer = (
            ""
            if to is None
            else orjson.dumps(
                {"id": to.hold_id, "u": to.user_id, "ttl": to.ttl_ms, "m": to.meta}
            ).decode()
        )
        reply = await self._call(
            "return",
            session_id,
            user_id,
            now_ms,
            orjson.dumps(units or {}).decode(),
            offer,
            *seat_ids,
        )
        if to is None:
            return None
        return await self._tracked(session_id, reply)

    async def hand_over(
        self,
        session_id: str,
        hold_id: str,
        *,
        offers: tuple[HoldRequest, ...],
        only_held: bool = False,
        now_ms: int,
    ) -> list[Hold]:
        payload = [
            {
                "id": o.hold_id,
                "u": o.user_id,
                "ttl": o.ttl_ms,
                "m": o.meta,
                "seats": list(o.seat_ids),
                "tier": o.tier_id or "",
                "n": o.quantity,
            }
            for o in offers
        ]
        reply = await self._call(
            "handover",
            session_id,
            hold_id,
            now_ms,
            "1" if only_held else "0",
            orjson.dumps(payload).decode(),
        )
        holds = [_hold(session_id, {"hold": h, "v": reply["v"]}) for h in reply["holds"] or []]
        if holds:
            # LT keeps the earliest expiry and still adds a session that is not tracked yet
            expiry = min(h.expires_at_ms for h in holds)
            await self._redis.zadd(ACTIVE_KEY, {session_id: expiry}, lt=True)
        return holds

    async def snapshot(self, session_id: str, *, now_ms: int, seats: bool = True) -> Snapshot:
        reply = await self._call("snapshot", session_id, now_ms, "1" if seats else "0")
        flat = reply["s"]
        return Snapshot(
            session_id=session_id,
            version=int(reply["v"]),
            available={t: int(n) for t, n in reply["a"].items()},
            seats={flat[i]: SeatState(flat[i + 1]) for i in range(0, len(flat), 2)},
        )

    async def set_quota(self, session_id: str, tier_id: str, channel: str, units: int) -> int:
        reply = await self._call("quota", session_id, tier_id, channel, units)
        return int(reply["v"])

    async def counts(self, session_id: str) -> dict[str, TierCounts]:
        raw = await self._scripts["counts"](keys=[prefix(session_id)], args=[])
        data: dict[str, list[int]] = orjson.loads(raw)
        return {
            t: TierCounts(
                free=int(v[0]),
                held=int(v[1]),
                sold=int(v[2]),
                blocked=int(v[3]),
                set_aside=int(v[4]),
            )
            for t, v in data.items()
        }

    async def forget(self, session_id: str) -> None:
        await self._scripts["forget"](keys=[prefix(session_id)], args=[])
        await self._redis.zrem(ACTIVE_KEY, session_id)
