"""The SSRF guard's address policy and URL handling, and the signature format."""

from __future__ import annotations

import ipaddress
import time

import pytest

from boxoffice.errors import BadUserInput
from boxoffice.services.webhook_signatures import sign, verify
from boxoffice.services.webhook_targets import (
    TargetRefused,
    check_url,
    forbidden_reason,
    resolve_target,
)
from tests.webhook_receivers import readme_verifier


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("100.64.0.1", "not globally routable"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("198.18.0.1", "private"),
    ],
)
def test_inner_addresses_are_forbidden(address: str, reason: str):
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


async def test_a_target_keeps_the_name_and_connects_to_the_checked_address():
    target = await resolve_target("http://localhost:8081/hooks/in?x=1", allow_private=True)
    assert target.address in ("127.0.0.1", "::1")
    assert target.host_header == "localhost:8081"
    assert target.path == "/hooks/in?x=1"
    assert target.connect_url.endswith(":8081/hooks/in?x=1")
    assert target.connect_url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    default_port = await resolve_target("https://[::1]", allow_private=True)
    assert default_port.port == 443 and default_port.host_header == "[::1]"
    assert default_port.connect_url == "https://[::1]:443/"


async def test_resolution_failures_and_bad_urls_are_refused():
    with pytest.raises(TargetRefused, match="loopback"):
        await resolve_target("http://localhost/x", allow_private=False)
    with pytest.raises(TargetRefused, match="does not resolve"):
        await resolve_target("http://no-such-host.invalid/x", allow_private=True)
    for url in ("gopher://example.com/", "http:///x", "http://a:b@example.com/", "http://h:99999/"):
        with pytest.raises(TargetRefused):
            await resolve_target(url, allow_private=True)


async def test_check_url_names_the_field():
    with pytest.raises(BadUserInput) as refused:
        await check_url("http://10.1.2.3/", allow_private=False, field="url")
    assert refused.value.field == "url"
    assert "private" in refused.value.message
    assert await check_url(" http://10.1.2.3/x ", allow_private=True) == "http://10.1.2.3/x"


def test_signatures_verify_with_any_valid_secret_and_expire():
    body = b'{"id":"1"}'
    header = sign(body, ["whsec_new", "whsec_old"], timestamp=int(time.time()))
    integrator = readme_verifier()
    assert verify(header, body, "whsec_new") and verify(header, body, "whsec_old")
    assert integrator("whsec_new", header, body) and integrator("whsec_old", header, body)
    assert not verify(header, body, "whsec_other")
    assert not verify(header, body + b"x", "whsec_new")
    stale = sign(body, ["whsec_new"], timestamp=int(time.time()) - 301)
    assert not verify(stale, body, "whsec_new")
    assert not integrator("whsec_new", stale, body)
    assert not verify("v1=abc", body, "whsec_new")
    assert not integrator("whsec_new", "t=notanumber,v1=abc", body)
    with pytest.raises(ValueError, match="no signing secret"):
        sign(body, [])
