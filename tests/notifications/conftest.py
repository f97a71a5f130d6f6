"""Fixtures of the notification tests."""

from __future__ import annotations

import socket

import pytest

from tests.notifications.network import FakeNetwork


@pytest.fixture
def network(monkeypatch) -> FakeNetwork:
    """Name resolution and sockets answered by a stub (DNS is the outside world)."""
    network = FakeNetwork()
    monkeypatch.setattr(socket, "getaddrinfo", network.getaddrinfo)
    monkeypatch.setattr(socket, "socket", network.socket_class())
    return network
