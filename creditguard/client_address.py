"""The address of the client behind the request, for anything that counts per address.

``REMOTE_ADDR`` is the peer that connected to gunicorn. Only when that peer is a trusted
proxy (``settings.TRUSTED_PROXIES``, read from ``FORWARDED_ALLOW_IPS`` — the same variable
gunicorn reads to decide whose ``X-Forwarded-Proto`` it believes) does ``X-Forwarded-For``
count, and then only its right-most hop that is not itself a trusted proxy: everything left
of it was written by the client and proves nothing.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[bool, tuple[Network, ...]]:
    """(everyone trusted, the trusted networks) of a FORWARDED_ALLOW_IPS list."""
    return "*" in trusted, tuple(
        ipaddress.ip_network(entry, strict=False) for entry in trusted if entry != "*"
    )


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def _is_trusted(address: str) -> bool:
    everyone, networks = _networks(tuple(settings.TRUSTED_PROXIES))
    parsed = _parse(address)
    return parsed is not None and (
        everyone or any(parsed.version == net.version and parsed in net for net in networks)
    )


def client_address(request: HttpRequest) -> str:
    """The client's IP address: the peer, or what a trusted proxy says the peer was."""
    peer = str(request.META.get("REMOTE_ADDR", ""))
    if not _is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if _parse(hop) is None:
            # Our proxy appends well-formed addresses; garbage came from the client.
            return peer
        if not _is_trusted(hop):
            return hop
    # Every hop is a trusted proxy: the first one saw the client.
    return hops[0] if hops else peer
