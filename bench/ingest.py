"""Batched ingestion over HTTP against a bare bulk INSERT of the same rows.

    python -m bench.ingest [--clients 4] [--batches 40] [--workers 4]

Starts gunicorn on a scratch PostgreSQL database, sends batches of 1000 events
from concurrent clients (one tenant each, as real platforms do), and in the same
run measures the floor: one multi-row ``INSERT`` (no conflict clause) per
batch of identical rows (rendered before timing) with psycopg2 into the same
table, from as many connections.
Writes events/s, the ratio and batch latencies to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg2

from bench.common import gunicorn, recreate_database, setup_django, write_section

BATCH = 1000


def tenants_with_keys(count: int, prefix: str = "bench") -> tuple[list[Any], list[str]]:
    """``count`` tenants under the default terms, and an API key of each."""
    from tenants.models import Scope
    from tenants.services import api_key_create, tenant_create

    tenants = [
        tenant_create(slug=f"{prefix}-{n}", name=f"Bench {n}", time_zone="UTC")
        for n in range(count)
    ]
    keys = [
        api_key_create(tenant=tenant, name="bench", scopes=[Scope.USAGE_WRITE]).raw_key
        for tenant in tenants
    ]
    return tenants, keys


def make_batches(prefix: str, count: int, now: datetime) -> list[list[dict[str, Any]]]:
    channels = ("email", "sms", "call")
    return [
        [
            {
                "id": f"{prefix}-{b}-{i}",
                "channel": channels[i % 3],
                "quantity": 1 + i % 5,
                "occurred_at": (now - timedelta(seconds=i)).isoformat(),
                "metadata": {"campaign": "bench", "n": i},
            }
            for i in range(BATCH)
        ]
        for b in range(count)
    ]


def run_clients(jobs: list[tuple[Any, ...]], worker: Any) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs) + 1)
    errors: list[BaseException] = []

    def wrapped(*args: Any) -> None:
        try:
            barrier.wait()
            mine = worker(*args)
            with lock:
                latencies.extend(mine)
        except BaseException as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, latencies


def http_client(port: int, key: str, bodies: list[bytes]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        conn.request("POST", "/api/v1/usage-events", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200 or orjson.loads(payload)["accepted"] != BATCH:
            raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
    conn.close()
    return latencies


FLOOR_INSERT = (
    b"INSERT INTO metering_usageevent (tenant_id, channel_id, period_id, client_event_id,"
    b" quantity, occurred_at, metadata, content_hash, batch_id, received_at) VALUES "
)
# The events table is partitioned by month and has no unique index on the id (ingestion
# claims ids in metering_usageeventkey): the floor is the bare insert of the events.
FLOOR_TAIL = b""


def render_floor(dsn: str, rows_batches: list[list[tuple[Any, ...]]]) -> list[bytes]:
    """The floor's statements, rendered before the clock starts: the floor times
    only PostgreSQL's work, as the HTTP side's bodies are serialized in advance."""
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cursor:
        template = "(" + ",".join(["%s"] * 10) + ")"
        statements = [
            FLOOR_INSERT + b",".join(cursor.mogrify(template, row) for row in rows) + FLOOR_TAIL
            for rows in rows_batches
        ]
    conn.close()
    return statements


def floor_client(dsn: str, statements: list[bytes]) -> list[float]:
    conn = psycopg2.connect(dsn)
    latencies = []
    for statement in statements:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(statement)
            if cursor.rowcount != BATCH:
                raise RuntimeError(f"floor inserted {cursor.rowcount} rows")
        conn.commit()
        latencies.append(time.perf_counter() - started)
    conn.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40, help="batches per client")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()

    url = recreate_database()
    setup_django(url)
    from metering.models import BillingPeriod, Channel
    from metering.services.periods import period_bounds, period_get_or_open

    now = datetime.now(UTC)
    tenants, keys = tenants_with_keys(args.clients * 2)

    # The floor: identical rows, fresh ids, into the same table, as many connections.
    channel_ids = {c.code: c.pk for c in Channel.objects.all()}
    floor_jobs = []
    for n in range(args.clients):
        tenant = tenants[args.clients + n]
        period: BillingPeriod = period_get_or_open(
            tenant=tenant, bounds=period_bounds(tenant=tenant, at=now)
        )
        rows_batches = [
            [
                (
                    tenant.pk,
                    channel_ids[e["channel"]],
                    period.pk,
                    e["id"],
                    e["quantity"],
                    e["occurred_at"],
                    orjson.dumps(e["metadata"]).decode(),
                    "0" * 64,
                    "00000000-0000-0000-0000-000000000000",
                    now,
                )
                for e in batch
            ]
            for batch in make_batches(f"floor{n}", args.batches, now)
        ]
        floor_jobs.append((url, render_floor(url, rows_batches)))
    floor_time, floor_latencies = run_clients(floor_jobs, floor_client)
    floor_rate = args.clients * args.batches * BATCH / floor_time

    http_jobs = []
    for n in range(args.clients):
        bodies = [orjson.dumps({"events": b}) for b in make_batches(f"http{n}", args.batches, now)]
        http_jobs.append((keys[n], bodies))
    with gunicorn(url, workers=args.workers) as port:
        # Warm every worker (imports, connections) before measuring.
        warm = [orjson.dumps({"events": b}) for b in make_batches("warm", args.workers * 2, now)]
        http_client(port, keys[0], warm)
        http_time, http_latencies = run_clients(
            [(port, key, bodies) for key, bodies in http_jobs], http_client
        )
        # The hot-row case: every client sends for the same tenant, so all batches
        # lock the same balance rows.
        shared = [
            (
                port,
                keys[0],
                [orjson.dumps({"events": b}) for b in make_batches(f"hot{n}", args.batches, now)],
            )
            for n in range(args.clients)
        ]
        hot_time, hot_latencies = run_clients(shared, http_client)
    hot_rate = args.clients * args.batches * BATCH / hot_time
    http_rate = args.clients * args.batches * BATCH / http_time
    ratio = http_rate / floor_rate

    body = f"""
Batches of {BATCH} events (three channels, metadata), {args.clients} concurrent clients with
one tenant each, {args.batches} batches per client ({args.clients * args.batches * BATCH:,} events
per side); gunicorn with {args.workers} sync workers on PostgreSQL, client on the same machine.

| | events/s | batch p50 | batch p99 |
|---|---:|---:|---:|
| floor: psycopg2, one multi-row `INSERT` per batch, same table | {floor_rate:,.0f} | {percentile(floor_latencies, 50) * 1000:.1f} ms | {percentile(floor_latencies, 99) * 1000:.1f} ms |
| `POST /api/v1/usage-events` over HTTP | {http_rate:,.0f} | {percentile(http_latencies, 50) * 1000:.1f} ms | {percentile(http_latencies, 99) * 1000:.1f} ms |
| the same, all clients for one tenant (shared balance rows) | {hot_rate:,.0f} | {percentile(hot_latencies, 50) * 1000:.1f} ms | {percentile(hot_latencies, 99) * 1000:.1f} ms |

Ratio HTTP / floor: **{ratio:.0%}** (goal ≥ 50 %); HTTP rate **{http_rate:,.0f} events/s**
(goal ≥ 20,000): {"both goals met" if ratio >= 0.5 and http_rate >= 20000 else "goal not met"}.
Batches for one tenant share its balance rows, which are locked only for the booking after
the insert: a single hot tenant ingests at {hot_rate / http_rate:.0%} of the spread rate.
"""  # noqa: E501
    print(body)
    if not args.no_write:
        write_section("Ingestion", body)


if __name__ == "__main__":
    main()
