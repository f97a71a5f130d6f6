"""SSRF: only globally routable addresses receive webhooks, and the connection goes to the
address that was vetted (resolved once, pinned), with the URL's name for Host, SNI and
the certificate check."""

from __future__ import annotations

import socket

import pytest

from creditguard.errors import InvalidInput
from notifications.models import Delivery, WebhookEndpoint
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.notify import notify
from notifications.services.webhooks import validate_webhook_url, webhook_endpoint_create
from tests.conftest import World
from tests.notifications.network import FakeNetwork, tls_server_context
from tests.notifications.receiver import Receiver

PUBLIC = "93.184.215.14"
PUBLIC_TOO = "93.184.215.15"


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def webhook_only(world: World) -> None:
    world.alpha.contact_email = ""
    world.alpha.save()


def send_one(world: World) -> Delivery:
    notify(tenant=world.alpha, kind="limit_reached", dedupe_key="k", payload={"channel": "sms"})
    [delivery_id] = deliveries_due()
    delivery_attempt(delivery_id=delivery_id)
    return Delivery.objects.get(pk=delivery_id)


@pytest.mark.parametrize(
    "url",
    [
        "https://100.64.0.1/",  # carrier-grade NAT
        "https://100.100.100.200/",  # a cloud metadata service, in the CGNAT range
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
        "https://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
        "https://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "https://[::ffff:10.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "https://[::a9fe:a9fe]/",  # IPv4-compatible (deprecated) 169.254.169.254
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "https://192.0.2.10/",  # documentation
        "https://198.18.0.1/",  # benchmarking
        "https://0.0.0.0/",
        "https://224.0.0.1/",  # multicast
        "https://233.252.0.1/",  # global multicast, still not a receiver
        "https://[ff0e::1]/",
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://255.255.255.255/",
    ],
)
def test_addresses_that_are_not_globally_routable_are_refused(url):
    with pytest.raises(InvalidInput, match="non-public"):
        validate_webhook_url(url)


@pytest.mark.parametrize("url", ["https://100.64.0.1/", "https://100.100.100.200/latest"])
def test_the_api_refuses_a_carrier_grade_nat_address(world: World, url):
    response = world.alice_api.post("/api/v1/webhook-endpoints", {"url": url})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "non-public" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_a_name_with_one_private_address_among_public_ones_is_refused(
    world: World, network: FakeNetwork
):
    network.answers["hooks.example.com"] = [[PUBLIC, "100.100.100.200"]]
    response = world.alice_api.post(
        "/api/v1/webhook-endpoints", {"url": "https://hooks.example.com/"}
    )
    assert response.status_code == 400, response.content
    assert "100.100.100.200" in response.content.decode()


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/x", f"https://{PUBLIC}/x", "https://[2606:4700::1111]/"]
)
def test_public_addresses_are_accepted(network: FakeNetwork, url):
    network.answers["hooks.example.com"] = [[PUBLIC, "2606:4700::1111"]]
    assert validate_webhook_url(url) == url


@pytest.mark.parametrize("url", ["https://1.1.1.1:99999/", "https://1.1.1.1:0/"])
def test_a_port_out_of_range_is_refused(url):
    with pytest.raises(InvalidInput, match="port"):
        validate_webhook_url(url)


@pytest.mark.parametrize("url", ["https://[zz]/", "https://[::1/", "http://[v1.x]:80/"])
def test_a_malformed_host_is_refused_not_a_crash(url):
    with pytest.raises(InvalidInput):
        validate_webhook_url(url)


def test_the_connection_goes_to_the_vetted_address_not_to_a_rebound_one(
    world: World, network: FakeNetwork, receiver: Receiver
):
    """DNS rebinding: the name answers a public address to the check and a private one
    to any later lookup. The delivery resolves once and connects to what it vetted."""
    network.answers["hooks.example.com"] = [[PUBLIC]]
    webhook_endpoint_create(tenant=world.alpha, url="http://hooks.example.com/hook?a=1")
    webhook_only(world)
    network.answers["hooks.example.com"] = [[PUBLIC], ["127.0.0.1"]]
    network.routes[(PUBLIC, 80)] = ("127.0.0.1", receiver.port)
    network.lookups.clear()

    delivery = send_one(world)

    assert (delivery.status, delivery.last_error) == ("delivered", "")
    assert network.lookups == ["hooks.example.com"]
    assert network.connections == [(PUBLIC, 80)]
    [received] = receiver.received
    assert received.headers["host"] == "hooks.example.com"


def test_a_name_rebound_to_a_private_address_is_refused_at_send_time(
    world: World, network: FakeNetwork, receiver: Receiver
):
    network.answers["hooks.example.com"] = [[PUBLIC]]
    webhook_endpoint_create(tenant=world.alpha, url="http://hooks.example.com/hook")
    webhook_only(world)
    network.answers["hooks.example.com"] = [["100.100.100.200"]]

    delivery = send_one(world)

    assert delivery.status == "pending"
    assert "non-public address (100.100.100.200)" in delivery.last_error
    assert network.connections == []


def test_the_next_vetted_address_is_tried_when_the_first_does_not_answer(
    world: World, network: FakeNetwork, receiver: Receiver
):
    network.answers["hooks.example.com"] = [[PUBLIC, PUBLIC_TOO]]
    webhook_endpoint_create(tenant=world.alpha, url="http://hooks.example.com/hook")
    webhook_only(world)
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    network.routes[(PUBLIC, 80)] = ("127.0.0.1", closed_port)
    network.routes[(PUBLIC_TOO, 80)] = ("127.0.0.1", receiver.port)

    assert send_one(world).status == "delivered"
    assert network.connections == [(PUBLIC, 80), (PUBLIC_TOO, 80)]


def test_https_uses_the_name_for_sni_and_the_certificate_while_connecting_to_the_vetted_ip(
    world: World, network: FakeNetwork, tmp_path, monkeypatch
):
    context, ca_file = tls_server_context(tmp_path, "hooks.example.com")
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    receiver = Receiver(tls=context).start()
    try:
        network.answers["hooks.example.com"] = [[PUBLIC], ["127.0.0.1"]]
        network.routes[(PUBLIC, 443)] = ("127.0.0.1", receiver.port)
        webhook_endpoint_create(tenant=world.alpha, url="https://hooks.example.com/hook")
        webhook_only(world)
        network.answers["hooks.example.com"] = [[PUBLIC], ["127.0.0.1"]]

        delivery = send_one(world)

        assert (delivery.status, delivery.last_error) == ("delivered", "")
        assert network.connections == [(PUBLIC, 443)]
        assert receiver.server_names == ["hooks.example.com"]
        assert [r.headers["host"] for r in receiver.received] == ["hooks.example.com"]
    finally:
        receiver.stop()


def test_a_certificate_for_another_name_is_refused(
    world: World, network: FakeNetwork, tmp_path, monkeypatch
):
    context, ca_file = tls_server_context(tmp_path, "other.example.com")
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    receiver = Receiver(tls=context).start()
    try:
        network.answers["hooks.example.com"] = [[PUBLIC]]
        network.routes[(PUBLIC, 443)] = ("127.0.0.1", receiver.port)
        webhook_endpoint_create(tenant=world.alpha, url="https://hooks.example.com/hook")
        webhook_only(world)

        delivery = send_one(world)

        assert delivery.status == "pending"
        assert "certificate" in delivery.last_error.lower()
        assert receiver.received == []
    finally:
        receiver.stop()
