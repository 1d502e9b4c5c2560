"""The client's address behind load balancers: which ``X-Forwarded-For`` hop to believe.

Each proxy appends the address it was connected from to ``X-Forwarded-For``, so only the last
``PORTAL_TRUSTED_PROXY_COUNT`` entries were written by proxies we run; anything to their left
came from the client and may be made up (OWASP "IP address spoofing via X-Forwarded-For").
With ``PORTAL_TRUSTED_PROXIES`` set, the header counts only on a request whose ``REMOTE_ADDR``
is one of those networks (the load balancer), never on one that reached the portal directly.
Parsing (ports, IPv6 brackets, IPv4-mapped addresses, junk) is django-ipware's.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest
from ipware import get_client_ip


@cache
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _from_trusted_proxy(remote: str) -> bool:
    entries = tuple(settings.PORTAL_TRUSTED_PROXIES)
    if not entries:
        return True
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in _networks(entries))


def client_address(request: HttpRequest) -> str:
    """The client's IP address as text (``""`` when unknown).

    ``REMOTE_ADDR`` unless ``PORTAL_TRUSTED_PROXY_COUNT`` is above 0; then the entry of
    ``X-Forwarded-For`` that many hops from the right (``REMOTE_ADDR`` is the nearest proxy
    itself), provided the request came from ``PORTAL_TRUSTED_PROXIES`` (when set). A header
    with fewer hops than configured, or none, leaves ``REMOTE_ADDR``.
    """
    remote = str(request.META.get("REMOTE_ADDR", ""))
    hops = settings.PORTAL_TRUSTED_PROXY_COUNT
    if hops < 1 or not _from_trusted_proxy(remote):
        return remote
    # ipware counts the proxies inside the header; the nearest one is REMOTE_ADDR, hence - 1.
    address, _routable = get_client_ip(
        request,
        proxy_order="left-most",
        proxy_count=hops - 1,
        request_header_order=["HTTP_X_FORWARDED_FOR"],
        strict=False,
    )
    return address or remote
