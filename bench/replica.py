"""A read replica under a burst of ingestion, and how fast its pages leave it and return.

    python -m bench.replica [--seconds 20] [--clients 4] [--workers 2]

Starts a primary and a streaming replica of its own (tests/ops/replica_pair.py: temp
dirs, free ports, migrated by the app) and gunicorn with ``DATABASE_REPLICA_URL`` and the
default replica settings (lag at most 5 s, measured every second, a pin of 15 s). Then:

1. **Burst**: ``--clients`` threads post batches of 1000 events for ``--seconds`` while a
   person reads the dashboard in a loop; every 50 ms the replica's lag is sampled, in
   time as the router measures it and in bytes of WAL not yet replayed. Reports the
   events/s, the lag's median, p99 and maximum, the share of dashboard pages the replica
   served, and how long the replica took to catch up once the burst ended.
2. **Pages**: the dashboard's latency read from the replica and from the primary (the
   same person, pinned), p50 of 50 each, idle.
3. **Losing the replica**: stopped at once (``pg_ctl -m immediate``), the first dashboard
   page (failed on the replica, answered from the primary) and the next ones; then started
   again, the time until its pages read it again.

Prints the figures for docs/SCALING.md. Both clusters are removed at the end.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import requests

from bench.common import gunicorn, machine
from creditguard.db_router import PIN_COOKIE, LagJudge
from tests.ops import replica_pair

PASSWORD = "bench-replica-password-1"
SEED = f"""
import json
from django.contrib.auth.models import User
from tenants.models import Membership
from tenants.services import api_key_create, membership_add, tenant_create

keys = []
for n in range(8):
    tenant = tenant_create(slug=f"replica-{{n}}", name=f"Replica {{n}}", language="en",
                           time_zone="UTC")
    keys.append(api_key_create(tenant=tenant, name="bench", scopes=["usage:write"]).raw_key)
    if n == 0:
        user = User.objects.create_user("reader", "reader@example.com", "{PASSWORD}")
        membership_add(tenant=tenant, user=user, role=Membership.Role.VIEWER, actor=None)
print(json.dumps({{"keys": keys}}))
"""
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FALLBACKS = re.compile(r'^creditguard_db_replica_fallbacks_total\{reason="(\w+)"\} (\S+)$', re.M)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    token = CSRF.search(session.get(f"{base}/login/", timeout=60).text)
    assert token
    answer = session.post(
        f"{base}/login/",
        data={"username": "reader", "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{base}/login/"}, allow_redirects=False, timeout=60,
    )  # fmt: skip
    assert answer.status_code == 302, answer.status_code
    session.cookies.set(PIN_COOKIE, None)
    return session


def fallbacks(base: str) -> dict[str, float]:
    text = requests.get(f"{base}/metrics", timeout=60).text
    return {reason: float(value) for reason, value in FALLBACKS.findall(text)}


def batch(prefix: str, index: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    events = [
        {"id": f"{prefix}-{index}-{n}", "channel": "sms", "quantity": 1, "occurred_at": now}
        for n in range(1000)
    ]
    return orjson.dumps({"events": events})


class Sampler(threading.Thread):
    """The replica's lag every 50 ms: seconds (the router's measure) and bytes."""

    def __init__(self, pair: replica_pair.Pair) -> None:
        super().__init__(daemon=True)
        self.pair = pair
        self.seconds: list[float] = []
        self.bytes: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        # closing(), not ``with connection``, which psycopg2 makes one transaction: now()
        # would stand still in it.
        primary = self.pair.primary.connect()
        replica = self.pair.replica.connect()
        with closing(primary), closing(replica), primary.cursor() as p, replica.cursor() as r:
            judge = LagJudge()
            while not self.stop.wait(0.05):
                self.seconds.append(judge.measure(judge.primary_position(p), r))
                r.execute("SELECT pg_last_wal_replay_lsn()::text")
                replayed = r.fetchone()[0]
                p.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [replayed])
                self.bytes.append(float(p.fetchone()[0]))


@contextmanager
def served(pair: replica_pair.Pair, workers: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="cg-bench-replica-") as metrics:
        env = {
            "DATABASE_REPLICA_URL": pair.replica.url(),
            "PROMETHEUS_MULTIPROC_DIR": metrics,
            "METRICS_ALLOWED_NETWORKS": "127.0.0.1/32",
        }
        with gunicorn(pair.primary.url(), workers=workers, threads=2, env=env) as port:
            yield f"http://127.0.0.1:{port}"


def burst(base: str, pair: replica_pair.Pair, keys: list[str], seconds: float,
          clients: int) -> dict[str, Any]:  # fmt: skip
    reader = signed_in(base)
    before = fallbacks(base)
    sampler = Sampler(pair)
    ended = threading.Event()
    counts = [0] * clients
    pages = [0]

    def client(n: int) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {keys[n % len(keys)]}",
                   "Content-Type": "application/json"}  # fmt: skip
        index = 0
        while not ended.is_set():
            answer = session.post(f"{base}/api/v1/usage-events", data=batch(f"c{n}", index),
                                  headers=headers, timeout=60)  # fmt: skip
            assert answer.status_code in (200, 201, 207), answer.text[:300]
            counts[n] += 1000
            index += 1

    def read() -> None:
        while not ended.is_set():
            assert reader.get(f"{base}/dashboard/", timeout=30).status_code == 200
            pages[0] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    threads.append(threading.Thread(target=read))
    sampler.start()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    ended.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    catch_up = pair.wait_caught_up(timeout=120)
    sampler.stop.set()
    sampler.join()
    after = fallbacks(base)
    fell_back = sum(after.values()) - sum(before.values())
    return {
        "events_per_second": sum(counts) / elapsed,
        "lag_seconds": sampler.seconds,
        "lag_bytes": sampler.bytes,
        "pages": pages[0],
        "pages_on_primary": fell_back,
        "catch_up_seconds": catch_up,
    }


def page_latency(base: str, pinned: bool, count: int = 50) -> float:
    reader = signed_in(base)
    timings = []
    for _ in range(count):
        if pinned:
            reader.cookies.set(PIN_COOKIE, f"{time.time() + 60:.0f}")
        started = time.perf_counter()
        assert reader.get(f"{base}/dashboard/", timeout=30).status_code == 200
        timings.append(time.perf_counter() - started)
    return statistics.median(timings[5:]) * 1000


def losing(base: str, pair: replica_pair.Pair) -> dict[str, float]:
    reader = signed_in(base)
    for _ in range(3):  # every worker thread holds its replica connection
        reader.get(f"{base}/dashboard/", timeout=30)
    pair.replica.stop()
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        assert reader.get(f"{base}/dashboard/", timeout=30).status_code == 200
        timings.append((time.perf_counter() - started) * 1000)
    pair.replica.start()
    started = time.monotonic()
    while time.monotonic() - started < 60:
        before = sum(fallbacks(base).values())
        assert reader.get(f"{base}/dashboard/", timeout=30).status_code == 200
        if sum(fallbacks(base).values()) == before:
            break
        time.sleep(0.1)
    back = time.monotonic() - started
    return {"first_ms": timings[0], "next_ms": statistics.median(timings[1:]), "back_s": back}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with replica_pair.replica_pair(seed=SEED) as pair:
        keys = replica_pair.json_line(pair.seeded)["keys"]
        with served(pair, args.workers) as base:
            result = burst(base, pair, keys, args.seconds, args.clients)
            replica_ms = page_latency(base, pinned=False)
            primary_ms = page_latency(base, pinned=True)
            lost = losing(base, pair)
    lag, lag_bytes = result["lag_seconds"], [b / 1024 for b in result["lag_bytes"]]
    lines = [
        f"Machine: {machine()}",
        f"Burst: {args.clients} clients x batches of 1000 events for {args.seconds:g} s, "
        f"gunicorn {args.workers} workers x 2 threads, a dashboard reader beside them",
        f"  ingestion                  {result['events_per_second']:,.0f} events/s",
        f"  replica lag (router's)     median {statistics.median(lag):.3f} s, "
        f"p99 {percentile(lag, 0.99):.3f} s, max {max(lag):.3f} s ({len(lag)} samples)",
        f"  WAL not yet replayed       median {statistics.median(lag_bytes):,.0f} KiB, "
        f"p99 {percentile(lag_bytes, 0.99):,.0f} KiB, max {max(lag_bytes):,.0f} KiB",
        f"  dashboard pages            {result['pages']}, "
        f"{result['pages_on_primary']:.0f} read from the primary (lag > 5 s)",
        f"  caught up after the burst  {result['catch_up_seconds']:.3f} s",
        f"Dashboard p50, idle: replica {replica_ms:.1f} ms, primary (pinned) {primary_ms:.1f} ms",
        f"Replica stopped: first page {lost['first_ms']:.0f} ms (failed on the replica, "
        f"answered from the primary), next pages p50 {lost['next_ms']:.1f} ms; "
        f"started again: read again after {lost['back_s']:.1f} s",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
