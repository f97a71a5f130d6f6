"""Idempotent ingestion under real concurrency, against PostgreSQL."""

from __future__ import annotations

import hashlib
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum

from metering.models import Balance, LedgerEntry, UsageEvent
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api
from tests.factories import TenantFactory

THREADS = 8
BATCHES_PER_THREAD = 6
BATCH_SIZE = 50
RETRIES = 3


def content_of(event_id: str, now: datetime) -> dict:
    """The same id always carries the same content."""
    digest = hashlib.sha256(event_id.encode()).digest()
    channel = ("sms", "email", "call")[digest[0] % 3]
    return {
        "id": event_id,
        "channel": channel,
        "quantity": digest[1] % 20 + 1,
        "occurred_at": (now - timedelta(seconds=digest[2])).isoformat(),
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_overlapping_retried_batches_store_each_event_once():
    tenant = TenantFactory.create(time_zone="UTC")
    raw_key = api_key_create(tenant=tenant, name="load", scopes=ALL_SCOPES).raw_key
    now = datetime.now(UTC)
    rng = random.Random(7)
    pool = [f"evt-{n}" for n in range(THREADS * BATCHES_PER_THREAD * BATCH_SIZE)]

    # Each thread owns a slice of the pool; ~30 % of every batch repeats ids of others.
    plans: list[list[list[dict]]] = []
    for index in range(THREADS):
        own = pool[index::THREADS]
        batches = []
        for b in range(BATCHES_PER_THREAD):
            fresh = own[b * 35 : (b + 1) * 35]
            repeated = rng.sample(pool, BATCH_SIZE - len(fresh))
            ids = list(dict.fromkeys(fresh + repeated))
            batches.append([content_of(event_id, now) for event_id in ids])
        plans.append(batches)

    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def worker(batches: list[list[dict]]) -> None:
        try:
            api = Api(raw_key)
            barrier.wait()
            for batch in batches:
                for _ in range(RETRIES):
                    statuses.append(api.ingest(batch).status_code)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    assert set(statuses) == {200}
    sent = {e["id"]: e for plan in plans for batch in plan for e in batch}
    assert UsageEvent.objects.filter(tenant=tenant).count() == len(sent)
    expected: dict[str, int] = {}
    for e in sent.values():
        expected[e["channel"]] = expected.get(e["channel"], 0) + e["quantity"]
    balances = {
        b.channel.code: b for b in Balance.objects.filter(tenant=tenant).select_related("channel")
    }
    assert {code: b.used for code, b in balances.items()} == expected
    for balance in balances.values():
        assert (
            LedgerEntry.objects.filter(balance=balance).aggregate(total=Sum("used_delta"))["total"]
            == balance.used
        )
