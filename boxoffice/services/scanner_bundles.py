"""The scanner bundle: what a gate downloads to check a session's tickets without a network.

It holds the public keys that verify tickets now (the current one and earlier ones whose
tickets are still valid), the session's revoked serial numbers and the revocation ``version``.
The version is read before the list, so a bundle never claims a version newer than its list
(a revocation committing in between shows up in the list early, never late).
"""

from __future__ import annotations

from boxoffice.clock import utcnow
from boxoffice.errors import NotFound
from boxoffice.models.events import EventSession
from boxoffice.services.check_ins import authorize_gate_staff, require_gate_staff
from boxoffice.services.ticket_revocations import revocation_version, revoked_sns
from boxoffice.services.ticket_signing import ScannerBundle, scanner_bundle
from boxoffice.services.tickets import TicketDeps
from boxoffice.services.viewer import Viewer


async def bundle_for_session(*, deps: TicketDeps, viewer: Viewer, session_id: str) -> ScannerBundle:
    """The bundle of ``session_id`` for its tenant's CHECKIN and ORGANIZER staff (and
    OPERATORs). Raises ``Forbidden`` and ``NotFound`` (field ``sessionId``)."""
    require_gate_staff(viewer)
    async with deps.db.read() as session:
        performance = await session.get(EventSession, session_id)
        if performance is None:
            raise NotFound("No such session.", field="sessionId")
        authorize_gate_staff(viewer, performance.tenant_id, "session", "sessionId")
        version = await revocation_version(session, session_id)
        revoked = await revoked_sns(session, session_id)
    ring = await deps.keys.keyring()
    now = utcnow()
    return scanner_bundle(
        session_id=session_id,
        public_keys=ring.public_keys(now=now),
        revoked=revoked,
        version=version,
        now=now,
    )
