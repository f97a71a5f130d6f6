"""The billing export: time and the web worker's memory for 10,000 tenants × 3 channels.

    python -m bench.export [--reuse] [--repeat N] [--no-write]

One closed period (last month) for 10,000 tenants with a balance on three channels each,
included credits, a finalised overage charge on every third balance (some decided) and a
top-up on every tenth. Exports it with a platform key, against one gunicorn worker: CSV
in one streamed response, and JSON page by page (1000 rows a page), ``--repeat`` times
each (the median). The floor, taken between the CSV runs, is a bare
``COPY (SELECT …) TO STDOUT`` of the export's statement (billing/sql.py); beside it the
same COPY of the ORM's statement, which PostgreSQL ran before. The worker's peak memory
(VmHWM is not reset, so its RSS is sampled every 10 ms) is compared with its RSS when
idle, after one warm-up request. A page deep in the export is explained. Writes
docs/BENCHMARKS.md. ``--reuse`` exports again the data an earlier run loaded (in
``BENCH_DATABASE_NAME``, default ``creditguard_bench_export``).
"""

from __future__ import annotations

import argparse
import io
import os
import threading
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    bench_database_url,
    gunicorn,
    recreate_database,
    setup_django,
    write_section,
)

TENANTS = 10_000


def seed() -> tuple[str, str]:
    """The period's label and a platform key."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from metering.models import Balance, BillingPeriod, Channel, Grant
    from metering.services.periods import month_bounds
    from policies.models import OverageCharge, TopUp, TopUpOffer, TopUpPack
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
    bought = balances[::10]  # a 50-unit pack for 5.00 on every tenth balance
    packs = {
        c.pk: TopUpPack.objects.create(channel=c, units=50, price=Decimal("5.00")) for c in channels
    }
    offers = TopUpOffer.objects.bulk_create(
        [
            TopUpOffer(
                public_id=uuid.uuid4(),
                tenant_id=b.tenant_id,
                channel=b.channel,
                pack=packs[b.channel.pk],
                balance=b,
                units=50,
                price=Decimal("5.00"),
                currency="EUR",
                status="accepted",
                created_at=bounds.starts_at,
                expires_at=bounds.ends_at,
                accepted_at=bounds.starts_at,
            )
            for b in bought
        ],
        batch_size=5000,
    )
    purchased = Grant.objects.bulk_create(
        [
            Grant(
                tenant_id=b.tenant_id,
                balance=b,
                kind="purchased",
                units=50,
                priority=200,
                created_at=bounds.starts_at,
            )
            for b in bought
        ],
        batch_size=5000,
    )
    TopUp.objects.bulk_create(
        [
            TopUp(
                tenant_id=b.tenant_id,
                channel=b.channel,
                period=b.period,
                offer=o,
                grant=g,
                units=50,
                price=Decimal("5.00"),
                currency="EUR",
                created_at=bounds.starts_at,
            )
            for b, o, g in zip(bought, offers, purchased, strict=True)
        ],
        batch_size=5000,
    )
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


def loaded() -> tuple[str, str]:
    """The period an earlier run loaded and a new platform key (``--reuse``)."""
    from metering.models import BillingPeriod
    from tenants.models import Tenant
    from tenants.services import api_key_create

    assert Tenant.objects.filter(slug__startswith="b").count() == TENANTS, "run without --reuse"
    label = BillingPeriod.objects.get(tenant__slug="b0").label
    return label, api_key_create(tenant=None, name="bench", scopes=["billing:read"]).raw_key


def copy_seconds(sql: str, params: list[Any]) -> tuple[float, int]:
    """Seconds and bytes of a bare ``COPY (statement) TO STDOUT``."""
    from django.db import connection

    sink = io.BytesIO()
    with connection.cursor() as cursor:
        statement = cursor.mogrify(sql, params).decode()
        started = time.perf_counter()
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH CSV HEADER", sink)
        elapsed = time.perf_counter() - started
    return elapsed, sink.tell()


def floor(period: str) -> tuple[float, int]:
    """The floor: a bare COPY of the export's statement (billing/sql.py)."""
    from billing.sql import export_statement

    return copy_seconds(*export_statement(period=period))


def before(period: str) -> tuple[float, int]:
    """A bare COPY of the ORM's statement (six correlated subqueries a row): what
    PostgreSQL ran before billing/sql.py, and SQLite's path now."""
    from billing.selectors import export_rows_orm

    sql, params = export_rows_orm(period=period).query.sql_with_params()
    return copy_seconds(sql, list(params))


def deep_page(period: str, position: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of a JSON page's two statements at ``position`` rows: the page of
    balance ids (as the cursor pagination asks for it) and the rows by those ids. Their
    times (planning and execution, the median of three) and the tables either reads by a
    sequential scan, with the rows it reads (none wanted but the channels, a handful)."""
    from django.db import connection

    from billing.selectors import export_balances
    from billing.sql import export_statement

    ids = export_balances(period=period)
    after = ids[position - 1]["id"]
    page = ids.filter(id__gt=after)[:1001]
    result: dict[str, Any] = {"seq_scans": {}}
    page_ids = [row["id"] for row in page][:1000]
    for name, (sql, params) in {
        "ids": page.query.sql_with_params(),
        "rows": export_statement(period=period, balance_ids=page_ids),
    }.items():
        times = []
        for _ in range(3):  # the median of three
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
                (plan,) = cursor.fetchone()[0]
            times.append((plan["Planning Time"] + plan["Execution Time"]) / 1000)
        result[name] = median(times)
        nodes = [plan["Plan"]]
        while nodes:
            node = nodes.pop()
            nodes += node.get("Plans", [])
            if node["Node Type"] == "Seq Scan":
                scanned = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
                result["seq_scans"][node["Relation Name"]] = scanned
    return result


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


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    parser.add_argument("--reuse", action="store_true", help="the data an earlier run loaded")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_DATABASE_NAME", "creditguard_bench_export")
    url = bench_database_url() if args.reuse else recreate_database()
    setup_django(url)
    period, key = loaded() if args.reuse else seed()
    import json

    floors, befores, csvs, jsons = [], [], [], []
    with gunicorn(url, workers=1) as port:
        base = f"http://127.0.0.1:{port}/api/v1/billing/export?period={period}"
        fetch(f"{base}&tenant=b0", key)  # warm up: imports, connection, first query
        pid = worker_pid(port)
        idle = rss_kib(pid)
        with PeakRss(pid) as csv_peak:
            for _ in range(args.repeat):
                floors.append(floor(period))  # interleaved: each run under the same load
                befores.append(before(period))
                started = time.perf_counter()
                body = fetch(f"{base}&format=csv", key)
                csvs.append(time.perf_counter() - started)
        csv_rows = body.count(b"\r\n") - 1
        with PeakRss(pid) as json_peak:
            for _ in range(args.repeat):
                started, json_rows, pages = time.perf_counter(), 0, 0
                next_url: str | None = f"{base}&page_size=1000"
                while next_url:
                    page = json.loads(fetch(next_url, key))
                    json_rows, pages, next_url = (
                        json_rows + len(page["results"]),
                        pages + 1,
                        page["next"],
                    )
                jsons.append(time.perf_counter() - started)
        after = rss_kib(pid)
    deep = deep_page(period, TENANTS * 3 * 9 // 10)
    load = os.getloadavg()
    scans = ", ".join(
        f"`{name}` ({rows:,} rows)" for name, rows in sorted(deep["seq_scans"].items())
    )
    assert csv_rows == json_rows == TENANTS * 3, (csv_rows, json_rows)
    floor_seconds, floor_bytes = median([f[0] for f in floors]), floors[0][1]
    before_seconds = median([b[0] for b in befores])
    csv_seconds, json_seconds = median(csvs), median(jsons)
    text = "\n".join([
        f"`python -m bench.export`: {TENANTS:,} tenants × 3 channels = {TENANTS * 3:,} rows "
        "of one closed period, a third with an overage charge, a tenth with a top-up; one "
        f"gunicorn worker (sync), a platform key. Median of {args.repeat} runs, the floor "
        f"taken between them; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(1 / 5 / 15 min) at the end.",
        "",
        "| | time | × floor | rows | worker memory, peak − idle |",
        "|---|---:|---:|---:|---:|",
        "| floor: `COPY (SELECT …) TO STDOUT` of the export's statement (billing/sql.py) "
        f"| {floor_seconds:.2f} s | 1 | {TENANTS * 3:,} ({floor_bytes / 1e6:.1f} MB) | — |",
        "| before: the same `COPY` of the ORM's statement (six correlated subqueries a "
        f"row; SQLite's path now) | {before_seconds:.2f} s | "
        f"{before_seconds / floor_seconds:.1f} | {TENANTS * 3:,} | — |",
        f"| CSV, one streamed response | {csv_seconds:.2f} s | "
        f"{csv_seconds / floor_seconds:.1f} | {csv_rows:,} ({len(body) / 1e6:.1f} MB) "
        f"| {(csv_peak.peak - idle) / 1024:.1f} MB |",
        f"| JSON, {pages} pages of 1000 | {json_seconds:.2f} s | "
        f"{json_seconds / floor_seconds:.1f} | {json_rows:,} "
        f"| {(json_peak.peak - idle) / 1024:.1f} MB |",
        "",
        f"Idle worker: {idle / 1024:.1f} MB RSS after one warm-up request; "
        f"{(after - idle) / 1024:+.1f} MB after {args.repeat} CSV and {args.repeat} JSON "
        "exports. One JSON page deep in the export (after "
        f"{TENANTS * 3 * 9 // 10:,} rows), `EXPLAIN ANALYZE`: the page of balance ids "
        f"{deep['ids'] * 1000:.1f} ms, its rows by those ids {deep['rows'] * 1000:.1f} ms "
        "(planning and execution); "
        f"tables read by a sequential scan: {scans or 'none'}.",
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        write_section("Billing export", text)


if __name__ == "__main__":
    main()
