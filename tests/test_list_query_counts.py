"""Every list endpoint, and ingestion, costs a number of queries that does not grow with
the rows: 1 row or 20, the same statements."""

from __future__ import annotations

import socket
from collections.abc import Callable
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import Channel
from notifications.models import Notification
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from policies.models import TopUpPack
from policies.services.topups import topup_offer_create
from tests.conftest import World, event, issue

pytestmark = pytest.mark.usefixtures("frozen_clock")
INGEST_QUERIES = 12  # one of them the usage rollups' upsert


def notifications(world: World, count: int) -> None:
    for index in range(count):
        notify(
            tenant=world.alpha,
            kind=Notification.Kind.THRESHOLD_WARNING,
            dedupe_key=f"count:{index}",
            payload={"channel": "sms", "threshold": 50},
        )


def offers(world: World, count: int) -> None:
    # A balance has one open offer of a pack: a pack per offer.
    sms = Channel.objects.get(code="sms")
    for index in range(count):
        pack = TopUpPack.objects.create(channel=sms, units=100 + index, price=Decimal("9.00"))
        topup_offer_create(tenant=world.alpha, pack=pack)


def endpoints(world: World, count: int) -> None:
    # Webhook hosts are not looked up (DNS is the outside world): a public address.
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]
    with mock.patch("socket.getaddrinfo", return_value=public):
        _endpoints(world, count)


def _endpoints(world: World, count: int) -> None:
    for index in range(count):
        webhook_endpoint_create(tenant=world.alpha, url=f"https://hooks.example/{index}")


def usage(world: World, count: int) -> None:
    world.alice_api.ingest([event(f"u-{index}") for index in range(count)])


def nothing(world: World, count: int) -> None:
    """/key lists one key's figures: other keys of the tenant must not cost anything."""
    for _ in range(count):
        issue(world.alpha)


# path, rows made, then the queries of the answer: key + tenant, then the list's own
# (a page and nothing per row; balances: period, balances, grant totals, channels, rules,
# overage charges, top-ups).
LISTS: list[tuple[str, Callable[[World, int], None], int, int]] = [
    ("/api/v1/notifications", notifications, 20, 2),
    ("/api/v1/topup-offers", offers, 20, 2),
    ("/api/v1/webhook-endpoints", endpoints, 10, 2),  # at most 10 per tenant
    ("/api/v1/balances", usage, 20, 8),
    ("/api/v1/usage", usage, 20, 3),
    ("/api/v1/key", nothing, 20, 1),
]


def queries_of(world: World, path: str) -> list[str]:
    world.alice_api.get(path)  # the key's last_used_at is fresh: no write in the count
    with CaptureQueriesContext(connection) as queries:
        response = world.alice_api.get(path)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in queries]


@pytest.mark.parametrize(("path", "make", "rows", "pinned"), LISTS, ids=[p for p, *_ in LISTS])
def test_a_list_takes_a_pinned_number_of_queries_whatever_its_rows(
    world: World, path: str, make: Callable[[World, int], None], rows: int, pinned: int
):
    make(world, 1)
    one = queries_of(world, path)
    make(world, rows - 1)
    many = queries_of(world, path)
    assert len(one) == pinned, one
    assert len(many) == pinned, many


def test_ingestion_takes_a_pinned_number_of_queries_whatever_the_batch_size(world: World):
    world.alice_api.ingest([event("warm-up")])  # period, balance and key opened once

    def ingest(ids: list[str]) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert world.alice_api.ingest([event(i) for i in ids]).status_code in (200, 201)
        return [query["sql"] for query in queries]

    one = ingest(["one"])
    twenty = ingest([f"twenty-{index}" for index in range(20)])
    assert len(one) == INGEST_QUERIES, one
    assert len(twenty) == INGEST_QUERIES, twenty
