"""The billing export: time and the web worker's memory for 10,000 tenants × 3 channels.

    python -m bench.export

One closed period (last month) for 10,000 tenants with a balance on three channels each,
included credits, and a finalised overage charge on every third balance (some decided).
Exports it with a platform key, against one gunicorn worker: CSV in one streamed response,
and JSON page by page (1000 rows a page). The floor, in the same run, is a bare
``COPY (SELECT …) TO STDOUT`` of the same statement. The worker's peak memory (VmHWM is
not reset, so its RSS is sampled every 10 ms) is compared with its RSS when idle, after
one warm-up request. Writes docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

from bench.common import gunicorn, recreate_database, setup_django, write_section

TENANTS = 10_000


def seed() -> tuple[str, str]:
    """The period's label and a platform key."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from metering.models import Balance, BillingPeriod, Channel, Grant
    from metering.services.periods import month_bounds
    from policies.models import OverageCharge
    from tenants.models import Tenant
    from tenants.services import api_key_create

    now = timezone.now()
    last = (now.replace(day=1) - timedelta(days=1)).date()
    channels = list(Channel.objects.filter(active=True)[:3])
    assert len(channels) == 3, channels
    tenants = Tenant.objects.bulk_create(
        [Tenant(slug=f"b{n}", name=f"Bench {n}, GmbH", time_zone="UTC") for n in range(TENANTS)],
        batch_size=2000,
    )
    bounds = month_bounds(last.year, last.month, tenants[0].tzinfo)
    periods = BillingPeriod.objects.bulk_create(
        [BillingPeriod(tenant=t, starts_at=bounds.starts_at, ends_at=bounds.ends_at,
                       label=bounds.label, status="closed", closed_at=now) for t in tenants],
        batch_size=5000,
    )  # fmt: skip
    balances = Balance.objects.bulk_create(
        [Balance(tenant_id=p.tenant_id, channel=c, period=p, available=1000,
                 used=(p.pk * 37 + c.pk) % 1500) for p in periods for c in channels],
        batch_size=5000,
    )  # fmt: skip
    Grant.objects.bulk_create(
        [Grant(tenant_id=b.tenant_id, balance=b, kind="included", units=1000,
               created_at=bounds.starts_at) for b in balances],
        batch_size=5000,
    )  # fmt: skip
    OverageCharge.objects.bulk_create(
        [OverageCharge(tenant_id=b.tenant_id, channel=b.channel, period=b.period,
                       action="charge_overage", units=b.used - 1000,
                       amount=Decimal(b.used - 1000) * Decimal("0.04"), finalized_at=now,
                       status="billed" if n % 2 else "pending",
                       billed_amount=Decimal(b.used - 1000) * Decimal("0.04") if n % 2 else 0,
                       decided_at=now if n % 2 else None, updated_at=now)
         for n, b in enumerate(balances) if b.used > 1000],
        batch_size=5000,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would after a load; else the plans are blind
    return bounds.label, api_key_create(tenant=None, name="bench", scopes=["billing:read"]).raw_key


def floor(period: str) -> tuple[float, int]:
    """Seconds and bytes of a bare COPY of the export's statement."""
    from django.db import connection

    from billing.selectors import export_rows

    sql, params = export_rows(period=period).query.sql_with_params()
    sink = io.BytesIO()
    with connection.cursor() as cursor:
        statement = cursor.mogrify(sql, params).decode()
        started = time.perf_counter()
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH CSV HEADER", sink)
        elapsed = time.perf_counter() - started
    return elapsed, sink.tell()


def worker_pid(port: int) -> int:
    """The gunicorn worker serving ``port``: the process whose parent serves it too."""
    serving = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if f"127.0.0.1:{port}".encode() in cmdline:
            serving[int(proc.name)] = parent
    (worker,) = [pid for pid, parent in serving.items() if parent in serving]
    return worker


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(pid)


class PeakRss:
    """The highest RSS of ``pid`` while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))


def fetch(url: str, key: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return bytes(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_DATABASE_NAME", "creditguard_bench_export")
    url = recreate_database()
    setup_django(url)
    period, key = seed()
    floor_seconds, floor_bytes = floor(period)
    import json

    with gunicorn(url, workers=1) as port:
        base = f"http://127.0.0.1:{port}/api/v1/billing/export?period={period}"
        fetch(f"{base}&tenant=b0", key)  # warm up: imports, connection, first query
        pid = worker_pid(port)
        idle = rss_kib(pid)
        with PeakRss(pid) as csv_peak:
            started = time.perf_counter()
            body = fetch(f"{base}&format=csv", key)
            csv_seconds = time.perf_counter() - started
        csv_rows = body.count(b"\r\n") - 1
        with PeakRss(pid) as json_peak:
            started, json_rows, pages = time.perf_counter(), 0, 0
            next_url: str | None = f"{base}&page_size=1000"
            while next_url:
                page = json.loads(fetch(next_url, key))
                json_rows, pages, next_url = (
                    json_rows + len(page["results"]),
                    pages + 1,
                    page["next"],
                )
            json_seconds = time.perf_counter() - started
    assert csv_rows == json_rows == TENANTS * 3, (csv_rows, json_rows)
    text = "\n".join([
        f"{TENANTS:,} tenants × 3 channels = {TENANTS * 3:,} rows of one closed period, a "
        "third with an overage charge; one gunicorn worker (sync), a platform key.",
        "",
        "| | time | rows | worker memory, peak − idle |",
        "|---|---:|---:|---:|",
        f"| floor: `COPY (SELECT …) TO STDOUT` of the same statement | {floor_seconds:.2f} s "
        f"| {TENANTS * 3:,} ({floor_bytes / 1e6:.1f} MB) | — |",
        f"| CSV, one streamed response | {csv_seconds:.2f} s | {csv_rows:,} "
        f"({len(body) / 1e6:.1f} MB) | {(csv_peak.peak - idle) / 1024:.1f} MB |",
        f"| JSON, {pages} pages of 1000 | {json_seconds:.2f} s | {json_rows:,} "
        f"| {(json_peak.peak - idle) / 1024:.1f} MB |",
        "",
        f"Idle worker: {idle / 1024:.1f} MB RSS after one warm-up request. The goal is the "
        "whole export in 10 s or less with the worker's memory within a few MB of idle: CSV "
        "rows are read 2000 at a time from a server-side cursor and written as they come, "
        "JSON holds one page.",
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        write_section("Billing export", text)


if __name__ == "__main__":
    main()
