"""The client address behind trusted proxies: what the login lockout (and any per-address
limit) counts by. Only a peer in FORWARDED_ALLOW_IPS — the list gunicorn trusts with
X-Forwarded-Proto — may name the client in X-Forwarded-For."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from creditguard.client_address import client_address


def request_from(peer: str, forwarded_for: str | None = None):
    extra: dict[str, Any] = {"REMOTE_ADDR": peer}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/", **extra)


def test_without_a_trusted_proxy_the_peer_is_the_client(settings):
    settings.TRUSTED_PROXIES = []
    assert client_address(request_from("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_a_client_cannot_name_itself_by_sending_x_forwarded_for(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(request_from("203.0.113.7", "10.0.0.5")) == "203.0.113.7"


def test_a_trusted_proxy_names_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    assert client_address(request_from("10.0.0.2", "203.0.113.7")) == "203.0.113.7"


def test_the_right_most_untrusted_hop_is_the_client_not_what_it_claimed(settings):
    # The client sent "X-Forwarded-For: 192.0.2.99"; the proxy appended the real peer.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = request_from("10.0.0.2", "192.0.2.99, 203.0.113.7, 10.0.0.3")
    assert client_address(request) == "203.0.113.7"


@pytest.mark.parametrize("forwarded_for", ["", "not-an-address", " , "])
def test_an_unusable_forwarded_for_falls_back_to_the_peer(settings, forwarded_for):
    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    assert client_address(request_from("10.0.0.2", forwarded_for)) == "10.0.0.2"


def test_ipv6_proxies_and_clients(settings):
    settings.TRUSTED_PROXIES = ["::1", "fd00::/8"]
    assert client_address(request_from("::1", "2001:db8::7, fd00::3")) == "2001:db8::7"
