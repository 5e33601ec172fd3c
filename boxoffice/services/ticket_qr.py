"""QR images of ticket payloads for front-ends (``qrSvg``)."""

from __future__ import annotations

import io

import segno

QUIET_ZONE_MODULES = 4


def qr_svg(payload: str) -> str:
    """A compact, size-less SVG of ``payload`` (error correction M or better).

    The image has a ``viewBox`` and no width or height, so it scales with CSS; a white background
    and the standard four-module quiet zone keep it scannable on dark pages. It carries the
    namespace, so it works inline in HTML and as an ``<img>`` data URI alike.
    """
    code = segno.make(payload, error="m", micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        omitsize=True,
        border=QUIET_ZONE_MODULES,
        light="#fff",
        svgclass=None,
        lineclass=None,
    )
    return out.getvalue().decode("utf-8")
