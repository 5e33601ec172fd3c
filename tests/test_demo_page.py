"""The live seat map page: how it is served, that it never renders data as HTML, and two real
browsers (Debian's Chromium through Playwright) competing for a seat over the real server.

The browser test skips where Chromium is not installed, except under ``CI=true`` (``.ci/run``
installs it) where it must run. Screenshots land in ``test-artifacts/`` (not committed).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette

from boxoffice.clock import utcnow
from boxoffice.demo_routes import PAGE_DIRECTORY
from boxoffice.models.identity import User
from boxoffice.models.orders import Order, OrderStatus
from boxoffice.runtime import Runtime
from tests.conftest import LiveServer
from tests.helpers import PASSWORD, make_user
from tests.order_factories import OnSale, hold_for, on_sale
from tests.services import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--headless",
    # this machine blocks Chromium's own traffic to Google: keep it from trying
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT_MS = 10_000  # an upper bound for the page to react, never a measurement


@pytest.mark.parametrize("backend", ["embedded"])
async def test_the_page_is_served_under_a_strict_content_security_policy(
    client: httpx.AsyncClient,
):
    # when a browser asks for /demo
    redirect = await client.get("/demo")
    page = await client.get("/demo/")
    script = await client.get("/demo/demo.js")
    # then it is sent to the page, which comes with its headers
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/demo/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'src="demo.js"' in page.text
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["content-security-policy"] == csp


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(env="prod")
async def test_the_page_is_off_in_prod(client: httpx.AsyncClient):
    assert (await client.get("/demo/")).status_code == 404


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(env="prod", demo_page=True)
async def test_the_page_can_be_enabled_in_prod(client: httpx.AsyncClient):
    assert (await client.get("/demo/")).status_code == 200


def test_the_page_never_parses_data_as_html():
    # every file of the page: no inline script or handler (the CSP would block it anyway),
    # and the script has no HTML sinks: API data goes through textContent and setAttribute
    html = (PAGE_DIRECTORY / "index.html").read_text()
    script = (PAGE_DIRECTORY / "demo.js").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert re.findall(r"\son[a-z]+=", html) == []
    sinks = r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    assert re.findall(sinks, script) == []


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def script_errors(message: Any) -> list[str]:
    """A console error of the page's own, not a refused connection while a server is away."""
    if message.type != "error" or "WebSocket connection to" in message.text:
        return []
    return [message.text]


async def open_session(browser: Any, server: LiveServer, user: User, sale: OnSale) -> Any:
    """A browser window of its own (no shared storage) signed in as ``user`` on the session's
    seat map, with page errors collected in ``page.problems``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 760})
    page = await context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: page.problems.extend(script_errors(message)))
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{server.http_url}/demo")
    await page.fill("#email", user.email or "")
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    event = page.locator("li.event", has_text=sale.event.title)
    await event.locator(f'button[data-session-id="{sale.session.id}"]').click()
    await page.wait_for_selector('#link[data-state="live"]')
    await page.wait_for_selector("#seat-map circle[data-status=AVAILABLE]")
    return page


async def seat_state(page: Any, seat_id: str) -> dict[str, str | None]:
    node = page.locator(f'#seat-map [data-seat-id="{seat_id}"]')
    return {
        "status": await node.get_attribute("data-status"),
        "mark": await node.get_attribute("data-mark"),
    }


@pytest.mark.parametrize("backend", ["embedded"])
async def test_two_browsers_see_each_others_holds_and_sales_live(
    live_server: LiveServer, rt: Runtime, chromium: Any
):
    # given a session on sale and two buyers, each in a browser window of their own
    sale = await on_sale(rt)
    alice = await make_user(rt, "alice@example.com")
    bob = await make_user(rt, "bob@example.com")
    seat = sale.seat_ids[3]
    mine = await open_session(chromium, live_server, alice, sale)
    theirs = await open_session(chromium, live_server, bob, sale)
    assert (await seat_state(theirs, seat))["status"] == "AVAILABLE"

    # when Alice picks the seat and holds it
    await mine.click(f'#seat-map [data-seat-id="{seat}"]')
    await mine.wait_for_selector(f'#seat-map [data-seat-id="{seat}"][data-mark="selected"]')
    await mine.click("#hold-button")

    # then Bob's map shows it HELD, pushed over his WebSocket, and Alice's shows it hers
    await theirs.wait_for_selector(f'#seat-map [data-seat-id="{seat}"][data-status="HELD"]')
    await mine.wait_for_selector(f'#seat-map [data-seat-id="{seat}"][data-mark="mine"]')
    assert await mine.text_content("#hold-total") == "¥380.00"
    assert re.fullmatch(r"[0-2]:\d\d", await mine.text_content("#hold-countdown") or "")
    # and the server agrees: the ledger holds that seat, for Alice
    ledger = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert ledger.seats[seat].value == "H"
    # and Bob cannot pick it
    await theirs.click(f'#seat-map [data-seat-id="{seat}"]')
    assert "is held" in (await theirs.text_content("#map-message") or "")
    assert await theirs.locator("#selection li").count() == 0
    assert await theirs.is_disabled("#hold-button")
    ARTIFACTS.mkdir(exist_ok=True)
    await theirs.screenshot(path=str(ARTIFACTS / "demo-seat-held-seen-by-bob.png"))

    # when Alice orders and pays in the sandbox
    await mine.click("#order-button")
    await mine.click("#pay-button")

    # then her order turns PAID (orderUpdates) and Bob sees the seat SOLD
    await mine.wait_for_selector('#order-status[data-status="PAID"]')
    await theirs.wait_for_selector(f'#seat-map [data-seat-id="{seat}"][data-status="SOLD"]')
    async with rt.db.read() as session:
        orders = (await session.exec(select(Order).where(Order.user_id == alice.id))).all()
    assert [o.status for o in orders] == [OrderStatus.PAID]
    # and she sees her tickets, or that they are being issued (never a made-up QR code)
    await mine.wait_for_selector("#tickets-pending, #tickets .ticket")
    await mine.screenshot(path=str(ARTIFACTS / "demo-paid-alice.png"))
    assert mine.problems == [] and theirs.problems == []


@pytest.mark.parametrize("backend", ["embedded"])
async def test_a_window_that_lost_its_connection_catches_up_from_a_new_snapshot(
    app: Starlette, live_server: LiveServer, rt: Runtime, chromium: Any
):
    # given Bob watching a session
    sale = await on_sale(rt)
    alice = await make_user(rt, "alice@example.com")
    bob = await make_user(rt, "bob@example.com")
    page = await open_session(chromium, live_server, bob, sale)
    seat = sale.seat_ids[7]
    # when the server goes away (closing his WebSocket), a seat is held meanwhile,
    # and the server comes back on the same address
    await live_server.stop()
    await page.wait_for_selector('#link[data-state="reconnecting"]')
    await hold_for(rt, alice, sale.session, seat_ids=[seat])
    assert (await seat_state(page, seat))["status"] == "AVAILABLE"
    again = LiveServer(app, live_server.port)
    await again.start()
    try:
        # then his page reconnects by itself and the new snapshot shows the hold
        await page.wait_for_selector(f'#seat-map [data-seat-id="{seat}"][data-status="HELD"]')
        await page.wait_for_selector('#link[data-state="live"]')
    finally:
        await again.stop()
    assert page.problems == []
