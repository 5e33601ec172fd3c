"""A separate process that claims one coupon for many people at once (the two-process race).

    python -m tests.coupon_claimer <database_url> <coupon_id> <user_id> [<user_id> ...]

It connects, prints ``ready``, waits for a line on stdin (so two processes start together),
runs every claim concurrently and prints one JSON line: ``{"won": n, "reasons": {...}}``.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

import orjson

from boxoffice.db import Database
from boxoffice.errors import CouponUnavailable
from boxoffice.models.identity import Role
from boxoffice.services.coupon_claims import claim_coupon
from boxoffice.services.viewer import Viewer


async def main(database_url: str, coupon_id: str, user_ids: list[str]) -> None:
    db = Database(database_url, pool_size=10)
    await db.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def claim(user_id: str) -> str:
        viewer = Viewer(user_id=user_id, roles=frozenset({Role.CUSTOMER}))
        try:
            await claim_coupon(db=db, viewer=viewer, coupon_id=coupon_id)
        except CouponUnavailable as exc:
            return str(exc.details.get("reason"))
        return "WON"

    outcomes = Counter(await asyncio.gather(*(claim(u) for u in user_ids)))
    won = outcomes.pop("WON", 0)
    print(orjson.dumps({"won": won, "reasons": dict(outcomes)}).decode(), flush=True)
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
