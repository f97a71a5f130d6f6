"""The workers: an evaluation sweep over 10,000 tenants × 3 channels, and warning latency.

    python -m bench.workers [--tenants 10000] [--crossings 200] [--ingest-seconds 20]

Sweep: 10,000 tenants with a balance on three channels (a share of them past 50 or
80 %), swept twice — first when the warnings are new, then in the steady state — with
wall time and SQL statements per batch. The floor, taken in the same run, is a bare
read of the same 30,000 balances with what the sweep joins.

Ingestion while a sweep runs: the rate into balances being swept, with no sweep and
with sweeps running back to back beside it.

Latency: a real Celery worker on Redis, a local webhook receiver, and tenants whose
usage crosses 80 % one after another; from the committed ingestion to the signed
webhook's arrival, p50 and p99. Writes docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import ROOT, recreate_database, server_env, write_section

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def setup(url: str) -> None:
    os.environ.update(server_env(url))
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] = "true"
    import django

    django.setup()


def populate(tenants: int) -> None:
    """Tenants, periods, rules and balances in bulk (the bench measures the sweep)."""
    from django.utils import timezone

    from metering.models import Balance, BillingPeriod, Channel
    from metering.services.periods import period_bounds
    from policies.models import LimitRule
    from tenants.models import Tenant

    now = timezone.now()
    channels = list(Channel.objects.filter(code__in=["email", "sms", "call"]))
    Tenant.objects.bulk_create(
        [Tenant(slug=f"t{n}", name=f"Tenant {n}", time_zone="UTC", contact_email="")
         for n in range(tenants)], batch_size=2000,
    )  # fmt: skip
    all_tenants = list(Tenant.objects.filter(slug__startswith="t"))
    bounds = period_bounds(tenant=all_tenants[0], at=now)
    BillingPeriod.objects.bulk_create(
        [
            BillingPeriod(
                tenant=t, starts_at=bounds.starts_at, ends_at=bounds.ends_at, label=bounds.label
            )
            for t in all_tenants
        ],
        batch_size=2000,
    )  # fmt: skip
    periods = {p.tenant_id: p for p in BillingPeriod.objects.all()}
    rules, balances = [], []
    for index, tenant in enumerate(all_tenants):
        for channel in channels:
            rules.append(LimitRule(
                tenant=tenant, channel=channel, version=1, included_units=1000,
                effective_from=bounds.starts_at, reason="bench", created_at=now,
            ))  # fmt: skip
            used = (300, 600, 850)[index % 3] if index % 5 == 0 else 100
            balances.append(Balance(tenant=tenant, channel=channel, period=periods[tenant.pk],
                                    available=1000, used=used, version=1))  # fmt: skip
    LimitRule.objects.bulk_create(rules, batch_size=5000)
    Balance.objects.bulk_create(balances, batch_size=5000)


def sweep_bench(tenants: int) -> str:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metering.models import Balance
    from policies.services.evaluate import BATCH, evaluate_sweep

    populate(tenants)
    started = time.perf_counter()
    rows = list(
        Balance.objects.select_related("tenant", "channel", "period").order_by("pk")
        .values_list("pk", "used", "available", "tenant__slug", "channel__code", "period__label")
    )  # fmt: skip
    floor = time.perf_counter() - started

    results = []
    for label in ("first sweep (warnings new)", "steady-state sweep"):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            result = evaluate_sweep()
            elapsed = time.perf_counter() - started
        results.append((label, elapsed, len(queries), result))
    lines = [
        f"{len(rows):,} balances ({tenants:,} tenants × 3 channels; one tenant in five past 30, "
        f"60 or 85 % of its credits), batches of {BATCH}.",
        "",
        "| run | wall time | balances | batches | notifications | SQL statements | per batch |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| floor: read the balances with what the sweep joins | {floor:.2f} s | {len(rows):,} "
        "| | | 1 | |",
    ]
    for label, elapsed, count, result in results:
        lines.append(
            f"| {label} | {elapsed:.2f} s | {result.balances:,} | {result.batches} | "
            f"{result.notifications:,} | {count:,} | {count / max(result.batches, 1):.1f} |"
        )
    steady = results[1]
    lines += [
        "",
        f"Goal ≤ 5 s: first sweep {results[0][1]:.2f} s, steady state {steady[1]:.2f} s "
        f"({steady[1] / floor:.1f}× the floor). Statements grow with batches, not tenants.",
    ]
    return "\n".join(lines)


def ingest_during_sweep_bench(tenants: int, seconds: float, threads: int = 4) -> str:
    """Ingestion into balances that sweeps evaluate: events/s with no sweep running, then
    with sweeps running back to back. A tenth of the tenants are over their credits, so
    each sweep refreshes their overage charges (the side effects that once ran under the
    batch's balance locks); ingestion goes to those tenants only."""
    from django.db import connection
    from django.db.models import F

    from metering.models import Balance
    from metering.services.ingest import usage_record_batch
    from policies.services.evaluate import evaluate_sweep
    from tenants.models import Tenant

    hot = list(Tenant.objects.filter(slug__startswith="t").order_by("pk")[: max(tenants // 10, 1)])
    Balance.objects.filter(tenant__in=hot).update(used=F("available") + 500)

    def measure(with_sweep: bool) -> tuple[float, float, int]:
        """(events/s, p99 seconds of one batch, sweeps completed)."""
        stop = threading.Event()
        latencies: list[float] = []
        sweeps = 0
        lock = threading.Lock()

        def ingest(worker: int) -> None:
            mine = hot[worker::threads] or hot
            sent = 0
            try:
                while not stop.is_set():
                    tenant = mine[sent % len(mine)]
                    now = datetime.now(UTC).isoformat()
                    events = [
                        {"id": f"w{worker}-{sent}-{n}-{with_sweep}", "channel": "sms",
                         "quantity": 1, "occurred_at": now}
                        for n in range(10)
                    ]  # fmt: skip
                    started = time.perf_counter()
                    usage_record_batch(tenant=tenant, payload={"events": events})
                    with lock:
                        latencies.append(time.perf_counter() - started)
                    sent += 1
            finally:
                connection.close()

        def sweep() -> None:
            nonlocal sweeps
            try:
                while not stop.is_set():
                    evaluate_sweep()
                    sweeps += 1
            finally:
                connection.close()

        workers = [threading.Thread(target=ingest, args=(n,)) for n in range(threads)]
        if with_sweep:
            workers.append(threading.Thread(target=sweep))
        for worker in workers:
            worker.start()
        time.sleep(seconds)
        stop.set()
        for worker in workers:
            worker.join()
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
        return len(latencies) * 10 / seconds, p99, sweeps

    quiet = measure(with_sweep=False)
    swept = measure(with_sweep=True)
    return (
        f"{threads} threads ingest batches of 10 events into {len(hot):,} tenants over their "
        f"credits (their sms balances, among the {tenants * 3:,} swept), {seconds:.0f} s "
        "each; the service called directly, no HTTP. Sweeps refresh these tenants' overage "
        "charges one balance at a time after each batch has committed.\n\n"
        "| | events/s | p99 per batch | sweeps completed |\n|---|---:|---:|---:|\n"
        f"| no sweep running | {quiet[0]:,.0f} | {quiet[1] * 1000:.1f} ms | |\n"
        f"| sweeps running back to back | {swept[0]:,.0f} | {swept[1] * 1000:.1f} ms | "
        f"{swept[2]} |\n\n"
        f"While sweeping: {swept[0] / max(quiet[0], 1):.0%} of the quiet rate (the sweep "
        "shares the machine's cores; waits on its locks would show in the p99)."
    )


@contextmanager
def celery_worker(
    env: dict[str, str], *, concurrency: int, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker (prefork, ``concurrency`` processes) on the broker of ``env`` until
    the block ends, its output in ``log`` if given; a few seconds to connect first."""
    output = log.open("ab") if log else subprocess.DEVNULL
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "creditguard", "worker", "--concurrency",
         str(concurrency), "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(4)  # let the worker connect
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        if log:
            output.close()


@contextmanager
def celery_beat(env: dict[str, str], directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Celery beat with the settings' schedule (CELERY_BEAT_SCHEDULE) until the block
    ends; its schedule file and its output (beat.log) in ``directory``, not var/celery."""
    with (directory / "beat.log").open("ab") as output:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "creditguard", "beat", "-l", "WARNING",
             "--schedule", str(directory / "beat-schedule")],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield beat
        finally:
            beat.terminate()
            beat.wait(timeout=30)


class Arrivals:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> Any:
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["type"] == "threshold_warning" and body["data"].get("threshold") == 80:
                    arrivals.times.setdefault(body["data"]["tenant"], time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def latency_bench(crossings: int) -> str:
    from celery import current_app
    from django.conf import settings

    from metering.services.ingest import usage_record_batch
    from notifications.services.webhooks import webhook_endpoint_create
    from policies.models import Action
    from policies.services.rules import limit_rule_set
    from tenants.services import tenant_create

    # The bench's tenants are set up, not changed: their terms apply at once.
    settings.LIMIT_NOTICE_DAYS = 0
    arrivals = Arrivals()
    tenants = []
    for n in range(crossings):
        tenant = tenant_create(slug=f"lat-{n}", name=f"Latency {n}", time_zone="UTC")
        from metering.models import Channel

        limit_rule_set(tenant=tenant, channel=Channel.objects.get(code="sms"), included_units=100,
                       warning_thresholds=[80], action=Action.NOTIFY_ONLY, reason="bench",
                       actor=None)  # fmt: skip
        webhook_endpoint_create(tenant=tenant, url=arrivals.url)
        tenants.append(tenant)
    current_app.control.purge()
    sent: dict[str, float] = {}
    try:
        with celery_worker(dict(os.environ), concurrency=2):
            for tenant in tenants:
                event = {"id": "cross", "channel": "sms", "quantity": 85,
                         "occurred_at": datetime.now(UTC).isoformat()}  # fmt: skip
                usage_record_batch(tenant=tenant, payload={"events": [event]})
                sent[tenant.slug] = time.time()  # committed: on_commit has run
                time.sleep(0.05)
            deadline = time.time() + 60
            while len(arrivals.times) < len(tenants) and time.time() < deadline:
                time.sleep(0.2)
    finally:
        arrivals.server.shutdown()
    latencies = sorted(arrivals.times[slug] - sent[slug] for slug in sent if slug in arrivals.times)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return (
        f"{len(tenants)} tenants cross 80 % one after another (20 a second); a Celery worker "
        f"(prefork, 2 processes) on Redis; a local HTTP receiver.\n\n"
        f"| | crossings | received | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n"
        f"| ingestion committed → signed webhook received | {len(tenants)} | {len(latencies)} | "
        f"{quantiles[49]:.2f} s | {quantiles[98]:.2f} s | {max(latencies):.2f} s |\n\n"
        f"Goal p99 ≤ 5 s: {'met' if quantiles[98] <= 5 and len(latencies) == len(tenants) else 'not met'}. "  # noqa: E501
        f"Evaluation requests are coalesced for {settings.EVALUATION_COALESCE_SECONDS} s "
        "(`EVALUATION_COALESCE_SECONDS`), which sets the floor of this latency."
    )


def drain_pending() -> None:
    from django.db.models import F

    from metering.models import Balance
    from policies.services.evaluate import evaluate_pending

    while Balance.objects.filter(version__gt=F("evaluated_version")).exists():
        evaluate_pending()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--crossings", type=int, default=200)
    parser.add_argument("--ingest-seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    url = recreate_database()
    setup(url)
    sweep = sweep_bench(args.tenants)
    print(sweep)
    during_sweep = ingest_during_sweep_bench(args.tenants, args.ingest_seconds)
    print(during_sweep)
    # What the ingestion above left marked is evaluated first, so that the latency run
    # measures its own crossings, not the backlog of the previous run.
    drain_pending()
    latency = latency_bench(args.crossings)
    print(latency)
    if not args.no_write:
        write_section("Evaluation sweep", sweep)
        write_section("Ingestion while a sweep runs", during_sweep)
        write_section("Warning latency", latency)


if __name__ == "__main__":
    main()
