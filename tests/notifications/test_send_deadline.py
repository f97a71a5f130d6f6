"""One webhook send has a total deadline (WEBHOOK_SEND_DEADLINE_SECONDS), well inside the
delivery lease, over connecting (to at most WEBHOOK_CONNECT_ADDRESSES of the vetted
addresses), the TLS handshake, sending and reading the answer: a receiver that trickles
its answer or a name with many addresses that never answer cannot keep a send going
past its lease, when another worker could claim and send the same delivery."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Delivery
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from tests.conftest import World
from tests.notifications.network import FakeNetwork
from tests.notifications.receiver import Receiver
from tests.test_settings import manage

# Public addresses (vetted as such), routed by the fake network to local sockets.
ADDRESSES = [f"93.184.215.{n}" for n in range(10, 16)]


@dataclass
class TricklingReceiver:
    """Reads a request, then answers one byte every ``interval`` seconds, as long as the
    client listens: a receiver too slow to finish its answer."""

    interval: float = 0.2
    sent_at_once: bytes = b""
    answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: " + b"x" * 60 + b"\r\n\r\n"
    requests: int = 0
    bytes_sent: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> TricklingReceiver:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                request += chunk
            head, _, body = request.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += connection.recv(65536)
            self.requests += 1
            connection.sendall(self.sent_at_once)
            sent = 0
            for byte in self.answer:
                if self.stopping.wait(self.interval):
                    break
                try:
                    connection.sendall(bytes([byte]))
                except OSError:  # the client gave up
                    break
                sent += 1
            self.bytes_sent.append(sent)

    def stop(self) -> None:
        self.stopping.set()
        self.server.close()


@pytest.fixture
def trickling() -> Iterator[TricklingReceiver]:
    receiver = TricklingReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts a TCP connection and then never says anything."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose connections never complete: its accept queue (length 0) is held full,
    so the kernel drops further SYNs, as a firewall that drops packets does."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    holder = socket.create_connection(("127.0.0.1", port))
    yield port
    holder.close()
    server.close()


def endpoint_on(world: World, network: FakeNetwork, url: str, addresses: list[str]) -> None:
    network.answers["hooks.example.com"] = [addresses]
    webhook_endpoint_create(tenant=world.alpha, url=url)
    world.alpha.contact_email = ""  # webhook only
    world.alpha.save()
    notify(tenant=world.alpha, kind="limit_reached", dedupe_key="k", payload={"channel": "sms"})
    network.connections.clear()  # only the send's own connections count


def attempt() -> tuple[Delivery, float]:
    [delivery_id] = deliveries_due()
    started = time.monotonic()
    delivery_attempt(delivery_id=delivery_id)
    return Delivery.objects.get(pk=delivery_id), time.monotonic() - started


def assert_pending_with_backoff(delivery: Delivery) -> None:
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.lease_until is None
    assert delivery.attempts == 1
    # The first delay of the schedule (5 s ± 20 %), as for any failure.
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=3)


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline(
    world: World, network: FakeNetwork, trickling: TricklingReceiver, settings
):
    settings.WEBHOOK_SEND_DEADLINE_SECONDS = 1.0
    settings.WEBHOOK_TIMEOUT_SECONDS = 10.0  # each byte comes well within the step timeout
    endpoint_on(world, network, "http://hooks.example.com/hook", ADDRESSES[:1])
    network.routes[(ADDRESSES[0], 80)] = ("127.0.0.1", trickling.port)

    delivery, elapsed = attempt()

    assert 0.9 <= elapsed < 2.5, elapsed
    assert trickling.requests == 1
    assert "receiver too slow: no complete answer within 1 s" in delivery.last_error
    assert_pending_with_backoff(delivery)


def test_a_receiver_trickling_its_body_is_cut_off_at_the_deadline(
    world: World, network: FakeNetwork, trickling: TricklingReceiver, settings
):
    settings.WEBHOOK_SEND_DEADLINE_SECONDS = 1.0
    settings.WEBHOOK_TIMEOUT_SECONDS = 10.0
    trickling.sent_at_once = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    trickling.answer = b"x" * 100
    endpoint_on(world, network, "http://hooks.example.com/hook", ADDRESSES[:1])
    network.routes[(ADDRESSES[0], 80)] = ("127.0.0.1", trickling.port)

    delivery, elapsed = attempt()

    assert 0.9 <= elapsed < 2.5, elapsed
    assert "receiver too slow: no complete answer within 1 s" in delivery.last_error
    assert_pending_with_backoff(delivery)


def test_a_tls_handshake_that_never_completes_ends_at_the_deadline(
    world: World, network: FakeNetwork, silent_port: int, settings
):
    settings.WEBHOOK_SEND_DEADLINE_SECONDS = 1.0
    settings.WEBHOOK_TIMEOUT_SECONDS = 10.0
    endpoint_on(world, network, "https://hooks.example.com/hook", ADDRESSES[:1])
    network.routes[(ADDRESSES[0], 443)] = ("127.0.0.1", silent_port)

    delivery, elapsed = attempt()

    assert 0.9 <= elapsed < 2.5, elapsed
    assert "receiver too slow: no complete answer within 1 s" in delivery.last_error
    assert_pending_with_backoff(delivery)


def test_a_name_with_many_refusing_addresses_tries_only_the_first_few(
    world: World, network: FakeNetwork, settings
):
    settings.WEBHOOK_CONNECT_ADDRESSES = 3
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    endpoint_on(world, network, "http://hooks.example.com/hook", ADDRESSES)
    for address in ADDRESSES:
        network.routes[(address, 80)] = ("127.0.0.1", closed_port)

    delivery, _ = attempt()

    assert network.connections == [(address, 80) for address in ADDRESSES[:3]]
    assert "ConnectionRefusedError" in delivery.last_error
    assert_pending_with_backoff(delivery)


def test_addresses_that_never_answer_are_tried_a_few_times_each_within_the_step_timeout(
    world: World, network: FakeNetwork, unanswered_port: int, settings
):
    settings.WEBHOOK_CONNECT_ADDRESSES = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    settings.WEBHOOK_SEND_DEADLINE_SECONDS = 10.0
    endpoint_on(world, network, "http://hooks.example.com/hook", ADDRESSES)
    for address in ADDRESSES:
        network.routes[(address, 80)] = ("127.0.0.1", unanswered_port)

    delivery, elapsed = attempt()

    assert network.connections == [(address, 80) for address in ADDRESSES[:3]]
    assert 0.8 <= elapsed < 2.5, elapsed
    assert "timed out" in delivery.last_error
    assert_pending_with_backoff(delivery)


def test_connecting_to_addresses_that_never_answer_stops_at_the_deadline(
    world: World, network: FakeNetwork, unanswered_port: int, settings
):
    settings.WEBHOOK_CONNECT_ADDRESSES = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 10.0
    settings.WEBHOOK_SEND_DEADLINE_SECONDS = 1.0
    endpoint_on(world, network, "http://hooks.example.com/hook", ADDRESSES)
    for address in ADDRESSES:
        network.routes[(address, 80)] = ("127.0.0.1", unanswered_port)

    delivery, elapsed = attempt()

    assert 0.9 <= elapsed < 2.5, elapsed
    assert network.connections == [(ADDRESSES[0], 80)]
    assert "receiver too slow: no complete answer within 1 s" in delivery.last_error
    assert_pending_with_backoff(delivery)


def test_a_prompt_receiver_is_delivered_under_the_deadline(
    world: World, network: FakeNetwork, settings
):
    settings.WEBHOOK_SEND_DEADLINE_SECONDS = 1.0
    receiver = Receiver().start()
    try:
        endpoint_on(world, network, "http://hooks.example.com/hook", ADDRESSES[:1])
        network.routes[(ADDRESSES[0], 80)] = ("127.0.0.1", receiver.port)

        delivery, _ = attempt()

        assert (delivery.status, delivery.last_error) == (Delivery.Status.DELIVERED, "")
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    "env",
    [
        {"WEBHOOK_SEND_DEADLINE_SECONDS": "61"},  # more than half the default lease (120 s)
        {"WEBHOOK_SEND_DEADLINE_SECONDS": "30", "DELIVERY_LEASE_SECONDS": "40"},
        {"WEBHOOK_SEND_DEADLINE_SECONDS": "0"},
        {"WEBHOOK_CONNECT_ADDRESSES": "0"},
    ],
)
def test_a_send_deadline_not_well_inside_the_lease_refuses_to_start(env):
    result = manage("check", **env)
    assert result.returncode != 0
    [line] = result.stderr.splitlines()
    assert line.startswith("CreditGuard will not start: ")
    assert next(iter(env)) in line


def test_the_default_deadline_is_half_a_short_lease():
    result = manage(
        "shell", "-c",
        "from django.conf import settings; print(settings.WEBHOOK_SEND_DEADLINE_SECONDS)",
        DELIVERY_LEASE_SECONDS="2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1.0"
