"""QR images of ticket payloads: the SVG draws exactly the payload's QR matrix, scalably."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import segno

from boxoffice.services.ticket_qr import QUIET_ZONE_MODULES, qr_svg
from tests.signed_tickets import keyring, sign_sample

SVG_NS = "{http://www.w3.org/2000/svg}"


def dark_modules(svg: str) -> tuple[int, set[tuple[int, int]]]:
    """Read back the (size, dark cells) a segno path draws: ``M``/``m`` moves, ``h`` runs."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    size = int(root.attrib["viewBox"].split()[2])
    [path] = [p for p in root.iter(f"{SVG_NS}path") if p.attrib.get("stroke")]
    x = y = 0.0
    cells: set[tuple[int, int]] = set()
    for command, args in re.findall(r"([Mmh])([-\d.\s]+)", path.attrib["d"]):
        numbers = [float(n) for n in re.findall(r"-?[\d.]+", args)]
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        else:
            cells.update((int(x) + i, int(y)) for i in range(int(numbers[0])))
            x += numbers[0]
    return size, cells


def test_the_svg_draws_the_payloads_qr_code_with_a_quiet_zone():
    # given a real signed ticket
    payload = sign_sample(keyring())
    # when
    svg = qr_svg(payload)
    size, cells = dark_modules(svg)
    # then the drawn cells are the QR matrix of the payload (level M or better), shifted by the
    # quiet zone, in a size-less scalable image with a background
    code = segno.make(payload, error="m", micro=False)
    assert code.error in {"M", "Q", "H"}
    expected = {
        (x + QUIET_ZONE_MODULES, y + QUIET_ZONE_MODULES)
        for y, row in enumerate(code.matrix)
        for x, dark in enumerate(row)
        if dark
    }
    assert cells == expected
    assert size == len(code.matrix) + 2 * QUIET_ZONE_MODULES
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == f"{SVG_NS}svg"
    assert "width" not in root.attrib and "height" not in root.attrib
    assert any(p.attrib.get("fill") == "#fff" for p in root.iter(f"{SVG_NS}path"))
    assert not svg.startswith("<?xml") and "\n" not in svg


def test_different_payloads_draw_different_images():
    ring = keyring()
    first, second = sign_sample(ring, sn="T-1"), sign_sample(ring, sn="T-2")
    assert dark_modules(qr_svg(first))[1] != dark_modules(qr_svg(second))[1]
