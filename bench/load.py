"""Ten minutes at the edge of one node: ingestion and authorization together, at the rates
the benchmarks measured, against gunicorn, a Celery worker and beat.

    python -m bench.load [--minutes 10] [--ingest-rate N] [--authorize-rate N]

On a scratch PostgreSQL database (BENCH_DATABASE_NAME, default cg_bench_load; dropped at
the end, also on an error or Ctrl-C) and a Redis database of its own (BENCH_REDIS_URL,
default db 9): 10,000 background tenants × 3 channels for the sweep to read (as
bench.workers), gunicorn (4 sync workers) with a Celery worker and beat doing the real
work — evaluations asked for by ingestion, the sweep every 5 minutes, reservations
expired. Client processes offer the rates of docs/BENCHMARKS.md, "Ingestion" (batches of
1000 events, one tenant per client, as bench.ingest) and "Authorization" (one SMS unit,
8 tenants, as bench.authorize), each paced to its share of the rate; a client that falls
behind sends back to back (the offered rate is then not kept: the achieved one is shown).

Every ``--interval`` seconds (10) it records: events ingested and authorizations per
second, authorization p50/p99 and batch p99 (by the clients, as the request completed),
answers other than 200 by status, the evaluation lag and pending balances as /metrics
reports them, the age of the oldest unevaluated balance version (polled every second:
the /metrics lag is the time since the oldest waiting balance last *moved*, which a
balance under steady load keeps near zero however long it waits), the Celery queue
depth, the load average, CPU by process group and PostgreSQL's active backends by what
they wait for. After the load, the time the worker takes to catch up, and the check that
nothing was lost: events accepted = events stored = usage booked in the ledger.

Writes docs/benchmarks/load.png and the section "Ten minutes at the edge of one node" of
docs/BENCHMARKS.md (``--no-write``: print only). ``--save FILE`` keeps the raw figures as
JSON; ``--from FILE`` writes the plot and the section again from them without a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg2

from bench.authorize import AUTHORIZE_BODY, spread_tenants
from bench.common import (
    DOC,
    ROOT,
    gunicorn,
    scratch_database,
    server_env,
    setup_django,
    write_section,
)
from bench.ingest import BATCH, http_client, make_batches, percentile, tenants_with_keys
from bench.workers import celery_beat, celery_worker, drain_pending, populate

SECTION = "Ten minutes at the edge of one node"
PLOT = ROOT / "docs" / "benchmarks" / "load.png"
DEFAULT_DATABASE = "cg_bench_load"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"
# When docs/BENCHMARKS.md has no figure to read (its sections were renamed).
FALLBACK_RATES = (34_129.0, 457.0)

INGEST, AUTHORIZE = 0, 1
# Client records: (kind, completed at (epoch s), latency s, status, units). Status 0: no
# answer (connection failed); -1: 200 but not every event of the batch accepted.
Record = tuple[int, float, float, int, int]
# Every event of make_batches' batch has quantity 1 + i % 5: a batch books this much.
BATCH_QUANTITY = sum(1 + i % 5 for i in range(BATCH))
GROUPS = ("postgres (this database)", "postgres (others)", "web", "worker", "clients", "redis")


@dataclass
class Sample:
    """One interval, ending ``t`` seconds after the load started."""

    t: float
    events_per_s: float
    authorizations_per_s: float
    authorize_p50_ms: float | None
    authorize_p99_ms: float | None
    batch_p50_ms: float | None
    batch_p99_ms: float | None
    errors: dict[str, int]
    denied: int
    lag_seconds: float | None  # /metrics creditguard_evaluation_lag_seconds
    pending_balances: int | None  # /metrics creditguard_evaluation_pending_balances
    oldest_unevaluated_seconds: float  # the poller's, max over the interval
    queue_depth: int | None  # /metrics creditguard_celery_queue_length, all queues
    evaluations: int | None  # evaluate_pending tasks finished in the interval
    load1: float
    cores_busy: float  # the whole machine's CPU, in cores
    cpu: dict[str, float]  # cores by process group
    db_active: dict[str, float]  # this database's active backends by wait class (mean)
    # Mean run time of the evaluate_pending tasks finished in the interval.
    evaluation_seconds: float | None = None
    # /readyz: its status (503 when the worker heartbeat is older than its limit) and the
    # heartbeat's age (beat sends the heartbeat task through the same queue).
    ready_status: int | None = None
    heartbeat_age_seconds: float | None = None


@dataclass
class LoadRun:
    seconds: float
    interval: float
    ingest_rate: float
    authorize_rate: float
    ingest_clients: int
    authorize_clients: int
    web_workers: int
    worker_concurrency: int
    background_tenants: int
    load_before: float
    started_at: str
    code: str  # the commit the run's working tree was at, and whether it had changes
    samples: list[Sample] = field(default_factory=list)
    minutes: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)


def benchmark_rates() -> tuple[float, float]:
    """The rates docs/BENCHMARKS.md measured for one node: events/s of ``POST
    /api/v1/usage-events`` over HTTP ("Ingestion") and requests/s of ``POST
    /api/v1/authorizations`` over several tenants ("Authorization")."""
    text = DOC.read_text() if DOC.exists() else ""
    found = [
        re.search(r"^\| `POST /api/v1/usage-events` over HTTP \| ([\d,]+) \|", text, re.M),
        re.search(r"^\| `POST /api/v1/authorizations`, \d+ tenants \| ([\d,]+) \|", text, re.M),
    ]
    return tuple(  # type: ignore[return-value]
        float(match.group(1).replace(",", "")) if match else fallback
        for match, fallback in zip(found, FALLBACK_RATES, strict=True)
    )


def code_version() -> str:
    """The commit the code under test is at ("4f3a0c9"), "+ changes" when files git
    tracks differ from it (helpers share a working tree)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return f"{commit or 'unknown'}{' + changes' if changed else ''}"


# --- the clients --------------------------------------------------------------------------


def client(
    kind: int, name: str, port: int, keys: list[str], rate: float, start_at: float,
    stop_at: float, out: Any,
) -> None:  # fmt: skip
    """Offer ``rate`` requests/s from ``start_at`` to ``stop_at`` on one keep-alive
    connection; send the records to ``out`` every half second."""
    path = "/api/v1/usage-events" if kind == INGEST else "/api/v1/authorizations"
    interval = 1.0 / rate
    conn: http.client.HTTPConnection | None = None
    records: list[Record] = []
    flushed = next_at = start_at
    sent = 0
    while (now := time.time()) < stop_at:
        if now < next_at:
            time.sleep(min(next_at - now, stop_at - now))
            continue
        # More than a second behind: send back to back from now on, rather than a burst.
        next_at = max(next_at, now - 1.0) + interval
        key = keys[sent % len(keys)]
        if kind == INGEST:
            batch = make_batches(f"{name}-{sent}", 1, datetime.now(UTC))[0]
            body = orjson.dumps({"events": batch})
        else:
            body = AUTHORIZE_BODY
        sent += 1
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status, payload = 0, b""
            if conn is not None:
                conn.close()
            conn = None
        latency = time.perf_counter() - started
        units = 0
        if status == 200:
            data = orjson.loads(payload)
            if kind == INGEST:
                units = data["accepted"]
                status = 200 if units == BATCH else -1
            else:
                units = 0 if data["decision"] == "deny" else 1
        records.append((kind, time.time(), latency, status, units))
        if time.time() - flushed >= 0.5:
            out.put(records)
            records, flushed = [], time.time()
    out.put(records)
    if conn is not None:
        conn.close()


# --- what the harness watches -------------------------------------------------------------


class Poller(threading.Thread):
    """Every second, on a connection of its own: the balances waiting for evaluation
    (the age of the oldest unevaluated version: since the poll that first saw a version
    above the balance's evaluated one) and this database's active backends by what they
    wait for ('CPU' when they wait for nothing: running or runnable)."""

    def __init__(self, database_url: str, database_name: str) -> None:
        super().__init__(daemon=True)
        self.database_url = database_url
        self.database_name = database_name
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seen: dict[int, list[tuple[float, int]]] = {}  # balance: (polled at, version)
        self.oldest = 0.0  # age of the oldest unevaluated version at the last poll
        self.pending = 0
        self.window_oldest = 0.0  # the max since the last take()
        self.window_active: Counter[str] = Counter()
        self.window_polls = 0

    def run(self) -> None:
        conn = psycopg2.connect(self.database_url)
        conn.autocommit = True
        try:
            while not self.stop.is_set():
                self.poll(conn)
                self.stop.wait(1.0)
        finally:
            conn.close()

    def poll(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT id, version, evaluated_version FROM metering_balance "
                "WHERE version > evaluated_version"
            )
            waiting = cursor.fetchall()
            cursor.execute(
                "SELECT coalesce(wait_event_type, 'CPU'), count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid() "
                "GROUP BY 1",
                [self.database_name],
            )
            active = cursor.fetchall()
        now = time.time()
        oldest = 0.0
        seen: dict[int, list[tuple[float, int]]] = {}
        for balance, version, evaluated in waiting:
            history = [(at, v) for at, v in self.seen.get(balance, []) if v > evaluated]
            if not history or history[-1][1] != version:
                history.append((now, version))
            seen[balance] = history
            oldest = max(oldest, now - history[0][0])
        with self.lock:
            self.seen = seen
            self.oldest, self.pending = oldest, len(waiting)
            self.window_oldest = max(self.window_oldest, oldest)
            self.window_active.update({wait: count for wait, count in active})
            self.window_polls += 1

    def take(self) -> tuple[float, dict[str, float]]:
        """The oldest unevaluated version's age (max) and the mean active backends by
        wait class since the last take."""
        with self.lock:
            polls = max(self.window_polls, 1)
            active = {wait: count / polls for wait, count in self.window_active.items()}
            oldest = self.window_oldest
            self.window_oldest, self.window_active, self.window_polls = self.oldest, Counter(), 0
        return oldest, active


def scrape(port: int) -> dict[str, float]:
    """The figures of interest in one /metrics scrape (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    figures: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (
                "creditguard_evaluation_lag_seconds",
                "creditguard_evaluation_pending_balances",
                "creditguard_celery_queue_length",
            ):
                figures[sample.name] += sample.value
            elif sample.name == "creditguard_celery_tasks_total":
                if sample.labels.get("state") == "SUCCESS":
                    figures[f"tasks:{sample.labels['task']}"] += sample.value
            elif sample.name == "creditguard_celery_task_duration_seconds_sum":
                figures[f"task_seconds:{sample.labels['task']}"] += sample.value
    return dict(figures)


CLOCK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, int, str]]:
    """Every process: pid → (parent pid, CPU ticks used, command line)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), cmdline)
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the machine since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values[:8]) - idle, sum(values[:8])


class CpuWatch:
    """CPU by process group between two looks: the web server's and the worker's process
    trees, the clients (this harness with its client processes), PostgreSQL's backends of
    the scratch database and the rest of PostgreSQL (other databases, its own processes),
    Redis; in cores."""

    def __init__(self, roots: dict[str, list[int]], database_name: str) -> None:
        self.roots = roots
        self.database_name = database_name
        self.last = processes()
        self.last_machine = machine_ticks()
        self.last_at = time.monotonic()

    def group(self, pid: int, table: dict[int, tuple[int, int, str]]) -> str | None:
        cmdline = table[pid][2]
        if cmdline.startswith(("postgres", "/usr/lib/postgresql")):
            return (
                "postgres (this database)"
                if f" {self.database_name} " in cmdline
                else "postgres (others)"
            )
        if cmdline.startswith("redis-server"):
            return "redis"
        seen = 0
        while pid in table and seen < 64:
            for name, pids in self.roots.items():
                if pid in pids:
                    return name
            pid, seen = table[pid][0], seen + 1
        return None

    def take(self) -> tuple[float, dict[str, float]]:
        now_table, now_machine, now = processes(), machine_ticks(), time.monotonic()
        elapsed = max(now - self.last_at, 1e-6)
        groups: dict[str, float] = dict.fromkeys(GROUPS, 0.0)
        for pid, (_, ticks, _) in now_table.items():
            name = self.group(pid, now_table)
            if name is None:
                continue
            before = self.last.get(pid)
            groups[name] += ticks - (before[1] if before else 0)
        busy = (now_machine[0] - self.last_machine[0]) / CLOCK / elapsed
        cpu = {name: ticks / CLOCK / elapsed for name, ticks in groups.items()}
        cpu["other"] = max(busy - sum(cpu.values()), 0.0)
        self.last, self.last_machine, self.last_at = now_table, now_machine, now
        return busy, cpu


# --- the run ------------------------------------------------------------------------------


def window_figures(records: list[Record], seconds: float) -> dict[str, Any]:
    ingest = [r for r in records if r[0] == INGEST]
    authorize = [r for r in records if r[0] == AUTHORIZE]
    errors: Counter[str] = Counter()
    for kind, _, _, status, _ in records:
        if status != 200:
            label = {0: "no answer", -1: "partial batch"}.get(status, str(status))
            errors[f"{'ingest' if kind == INGEST else 'authorize'} {label}"] += 1
    answered_auth = [r[2] * 1000 for r in authorize if r[3] == 200]
    answered_batch = [r[2] * 1000 for r in ingest if r[3] == 200]
    return {
        "events_per_s": sum(r[4] for r in ingest if r[3] == 200) / seconds,
        "authorizations_per_s": len(answered_auth) / seconds,
        "authorize_p50_ms": percentile(answered_auth, 50) if answered_auth else None,
        "authorize_p99_ms": percentile(answered_auth, 99) if answered_auth else None,
        "batch_p50_ms": percentile(answered_batch, 50) if answered_batch else None,
        "batch_p99_ms": percentile(answered_batch, 99) if answered_batch else None,
        "errors": dict(errors),
        "denied": sum(1 for r in authorize if r[3] == 200 and r[4] == 0),
    }


@contextmanager
def client_processes(
    port: int, ingest_keys: list[str], authorize_keys: list[str], run: LoadRun,
    start_at: float, out: Any,
) -> Iterator[list[Any]]:  # fmt: skip
    from django.db import connections

    connections.close_all()  # a forked client must not share the harness's connections
    ctx = multiprocessing.get_context("fork")
    stop_at = start_at + run.seconds
    processes_ = [
        ctx.Process(
            target=client,
            args=(
                INGEST,
                f"load{n}",
                port,
                [ingest_keys[n % len(ingest_keys)]],
                run.ingest_rate / BATCH / run.ingest_clients,
                start_at,
                stop_at,
                out,
            ),
        )
        for n in range(run.ingest_clients)
    ] + [
        ctx.Process(
            target=client,
            args=(
                AUTHORIZE,
                f"auth{n}",
                port,
                authorize_keys[n:] + authorize_keys[:n],
                run.authorize_rate / run.authorize_clients,
                start_at,
                stop_at,
                out,
            ),
        )
        for n in range(run.authorize_clients)
    ]
    for process in processes_:
        process.start()
    try:
        yield processes_
    finally:
        for process in processes_:
            process.join(timeout=90)
            if process.is_alive():
                process.kill()


def load_run(
    *,
    database_url: str,
    redis_url: str,
    seconds: float,
    ingest_rate: float,
    authorize_rate: float,
    interval: float = 10.0,
    ingest_clients: int = 4,
    authorize_clients: int = 16,
    authorize_tenants: int = 8,
    web_workers: int = 4,
    worker_concurrency: int = 2,
    background_tenants: int = 10_000,
    drain_timeout: float = 300.0,
    progress: bool = True,
) -> LoadRun:
    """Run the load against a migrated database whose URL Django is already set up on
    (the harness's scratch one, or a test's), with the Redis database ``redis_url`` of
    its own (the broker and the cache: its queues are emptied first). The result holds
    the samples, the per-minute figures and the totals checked after the load."""
    from celery import current_app
    from django.db.models import Count, Sum

    from metering.models import Authorization, Balance, LedgerEntry, UsageEvent

    database_name = database_url.rsplit("/", 1)[1]
    run = LoadRun(
        seconds=seconds, interval=interval, ingest_rate=ingest_rate,
        authorize_rate=authorize_rate, ingest_clients=ingest_clients,
        authorize_clients=authorize_clients, web_workers=web_workers,
        worker_concurrency=worker_concurrency, background_tenants=background_tenants,
        load_before=os.getloadavg()[0], started_at=datetime.now(UTC).isoformat(),
        code=code_version(),
    )  # fmt: skip
    if background_tenants:
        populate(background_tenants)
    ingest_tenants, ingest_keys = tenants_with_keys(ingest_clients, prefix="load-i")
    authorize_keys = spread_tenants(authorize_tenants, prefix="load-a")
    drain_pending()  # the setup's balances are evaluated before the clock starts
    current_app.control.purge()

    scratch = Path(tempfile.mkdtemp(prefix="creditguard-load-"))
    try:
        env = {
            **server_env(database_url),
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
            "METRICS_ALLOWED_NETWORKS": "127.0.0.1/32",
        }
        out: Any = multiprocessing.get_context("fork").Queue()
        records: list[Record] = []

        def collect() -> None:
            while True:
                batch = out.get()
                if batch is None:
                    return
                records.extend(batch)

        collector = threading.Thread(target=collect, daemon=True)
        with (
            gunicorn(database_url, workers=web_workers, env=env) as port,
            celery_worker(
                env, concurrency=worker_concurrency, log=scratch / "worker.log"
            ) as worker,
            celery_beat(env, scratch) as beat,
        ):
            # Every web worker warmed (imports, connections) before the clock starts.
            warm_batches = make_batches("warm", web_workers * 2, datetime.now(UTC))
            warm = [orjson.dumps({"events": batch}) for batch in warm_batches]
            http_client(port, ingest_keys[0], warm)
            before = scrape(port)
            start_at = time.time() + 2.0
            with client_processes(port, ingest_keys, authorize_keys, run, start_at, out) as clients:
                collector.start()
                poller = Poller(database_url, database_name)
                poller.start()
                cpu = CpuWatch(
                    {
                        "web": [
                            p for p, (_, _, c) in processes().items() if f"127.0.0.1:{port}" in c
                        ],
                        "worker": [worker.pid, beat.pid],
                        "clients": [os.getpid(), *(c.pid for c in clients)],
                    },
                    database_name,
                )
                time.sleep(max(start_at - time.time(), 0))
                poller.take()
                cpu.take()
                last = before
                consumed, carried = 0, list[Record]()
                for n in range(1, int(seconds // interval) + 1):
                    window_end = start_at + n * interval
                    # The clients send their records every half second: wait for them.
                    time.sleep(max(window_end + 0.7 - time.time(), 0))
                    arrived = len(records)
                    pool = carried + records[consumed:arrived]
                    consumed = arrived
                    window = [r for r in pool if r[1] <= window_end]
                    carried = [r for r in pool if r[1] > window_end]
                    sample, last = sample_take(
                        n * interval, window_figures(window, interval), port, last, poller, cpu
                    )
                    run.samples.append(sample)
                    if progress:
                        print(sample_line(sample), flush=True)
            # The clients have ended: what is left of their records, then the catch-up.
            out.put(None)
            collector.join(timeout=30)
            # The catch-up: every balance evaluated, then the queue empty (the tasks the
            # load left waiting, evaluations asked for once a second and beat's).
            stopped = time.time()
            deadline = stopped + drain_timeout
            drained: float | None = None
            queue_drained: float | None = None
            depth: int | None = None
            while time.time() < deadline and (drained is None or queue_drained is None):
                if drained is None and not poller.pending:
                    drained = time.time() - stopped
                if queue_drained is None:
                    try:
                        depth = int(scrape(port).get("creditguard_celery_queue_length", 0))
                    except OSError:
                        depth = None
                    if depth == 0:
                        queue_drained = time.time() - stopped
                time.sleep(1.0)
            poller.stop.set()
            poller.join(timeout=10)
            after = scrape(port)
            worker_log = (scratch / "worker.log").read_text()[-2000:]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ingest_ids = [t.pk for t in ingest_tenants]
    accepted = sum(r[4] for r in records if r[0] == INGEST and r[3] == 200) + len(warm) * BATCH
    events = UsageEvent.objects.filter(tenant_id__in=ingest_ids).aggregate(
        count=Count("id"), quantity=Sum("quantity")
    )  # fmt: skip
    booked = LedgerEntry.objects.filter(tenant_id__in=ingest_ids, kind="usage").aggregate(
        used=Sum("used_delta")
    )["used"]
    balances_used = Balance.objects.filter(tenant_id__in=ingest_ids).aggregate(used=Sum("used"))[
        "used"
    ]
    allowed = sum(r[4] for r in records if r[0] == AUTHORIZE and r[3] == 200)
    overall = window_figures(records, seconds)
    run.totals = {
        "events_accepted": accepted,
        "events_stored": events["count"] or 0,
        "quantity_sent": accepted // BATCH * BATCH_QUANTITY,
        "quantity_stored": events["quantity"] or 0,
        "usage_booked": booked or 0,
        "balances_used": balances_used or 0,
        "authorizations_allowed": allowed,
        "authorizations_stored": Authorization.objects.filter(
            tenant__slug__startswith="load-a"
        ).count(),
        "errors": overall["errors"],
        "denied": overall["denied"],
        "events_per_s": overall["events_per_s"],
        "authorizations_per_s": overall["authorizations_per_s"],
        "authorize_p99_ms": overall["authorize_p99_ms"],
        "batch_p99_ms": overall["batch_p99_ms"],
        "drain_seconds": drained,
        "pending_after": poller.pending,
        "queue_drain_seconds": queue_drained,
        "queue_after": depth,
        "sweeps": int(after.get("tasks:policies.evaluate_sweep", 0)),
        "sweep_seconds": after.get("task_seconds:policies.evaluate_sweep", 0.0),
        "evaluations": int(after.get("tasks:policies.evaluate_pending", 0)),
        "evaluation_seconds": after.get("task_seconds:policies.evaluate_pending", 0.0),
        "expirations": int(after.get("tasks:policies.expire_authorizations", 0)),
        "worker_log": worker_log,
    }
    run.minutes = per_minute(run, records, start_at)
    return run


def sample_take(
    t: float,
    figures: dict[str, Any],
    port: int,
    last: dict[str, float],
    poller: Poller,
    cpu: CpuWatch,
) -> tuple[Sample, dict[str, float]]:
    """The interval's sample: the clients' figures, a /metrics scrape (the last one
    returned, to count the tasks in between), the poller's and the CPU's."""
    try:
        metrics: dict[str, float] = scrape(port)
        scraped = True
    except OSError:
        metrics, scraped = {}, False
    oldest, active = poller.take()
    busy, groups = cpu.take()
    key = "tasks:policies.evaluate_pending"

    def gauge(name: str) -> float | None:
        return metrics.get(f"creditguard_{name}", 0.0) if scraped else None

    pending, depth = gauge("evaluation_pending_balances"), gauge("celery_queue_length")
    done = metrics.get(key, 0) - last.get(key, 0)
    seconds_key = "task_seconds:policies.evaluate_pending"
    took = metrics.get(seconds_key, 0) - last.get(seconds_key, 0)
    ready_status, heartbeat_age = readiness(port)
    sample = Sample(
        t=t,
        **figures,
        lag_seconds=gauge("evaluation_lag_seconds"),
        pending_balances=None if pending is None else int(pending),
        oldest_unevaluated_seconds=oldest,
        queue_depth=None if depth is None else int(depth),
        evaluations=int(done) if scraped else None,
        load1=os.getloadavg()[0],
        cores_busy=busy,
        cpu=groups,
        db_active=active,
        evaluation_seconds=took / done if scraped and done else None,
        ready_status=ready_status,
        heartbeat_age_seconds=heartbeat_age,
    )
    return sample, metrics if scraped else last


def readiness(port: int) -> tuple[int | None, float | None]:
    """/readyz's status and the worker heartbeat's age it reports."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except OSError:
        return None, None
    try:
        age = orjson.loads(body)["checks"]["worker"]["heartbeat_age_seconds"]
    except (ValueError, KeyError, TypeError):
        age = None
    return status, age


def per_minute(run: LoadRun, records: list[Record], start_at: float) -> list[dict[str, Any]]:
    minutes = []
    span = min(60.0, run.seconds)
    for m in range(max(int(run.seconds // span), 1)):
        low, high = start_at + m * span, start_at + (m + 1) * span
        samples = [s for s in run.samples if m * span < s.t <= (m + 1) * span]
        figures = window_figures([r for r in records if low < r[1] <= high], span)

        def most(values: list[float | int | None]) -> float | None:
            present = [v for v in values if v is not None]
            return max(present) if present else None

        minutes.append(
            {
                "minute": m + 1,
                **figures,
                "lag_seconds": most([s.lag_seconds for s in samples]),
                "oldest_unevaluated_seconds": most([s.oldest_unevaluated_seconds for s in samples]),
                "queue_depth": most([s.queue_depth for s in samples]),
                "load1": samples[-1].load1 if samples else None,
                "cores_busy": sum(s.cores_busy for s in samples) / max(len(samples), 1),
                "ready_status": most([s.ready_status for s in samples]),
                "heartbeat_age_seconds": most([s.heartbeat_age_seconds for s in samples]),
                "evaluation_seconds": most([s.evaluation_seconds for s in samples]),
            }
        )
    return minutes


# --- the report ---------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def seconds_text(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f} s"


def ready_text(minute: dict[str, Any]) -> str:
    status, age = minute.get("ready_status"), minute.get("heartbeat_age_seconds")
    if status is None:
        return "–"
    return f"{status}" + (f" (heartbeat {age:.0f} s)" if age is not None else "")


def errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{label} ×{count}" for label, count in sorted(errors.items())) or "0"


def sample_line(s: Sample) -> str:
    return (
        f"{s.t:5.0f} s  {s.events_per_s:8,.0f} ev/s  {s.authorizations_per_s:5.0f} auth/s  "
        f"auth p99 {ms(s.authorize_p99_ms)}  batch p99 {ms(s.batch_p99_ms)}  "
        f"errors {errors_text(s.errors)}  lag {s.lag_seconds} s (oldest "
        f"{s.oldest_unevaluated_seconds:.0f} s, pending {s.pending_balances})  "
        f"queue {s.queue_depth}  evaluation {seconds_text(s.evaluation_seconds, 1)}  "
        f"readyz {s.ready_status} (heartbeat {s.heartbeat_age_seconds} s)  "
        f"load {s.load1:.1f}  busy {s.cores_busy:.2f} cores"
    )


OURS = ("postgres (this database)", "web", "worker", "clients")


def plot(runs: list[LoadRun], path: Path) -> None:
    """Throughput, latency, evaluation lag and CPU over time; several runs overlaid (the
    first solid, then dashed, dotted), each named by its commit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    twins = [axes[0].twinx(), None, axes[2].twinx(), axes[3].twinx()]
    styles = ["-", "--", ":", "-."]
    for index, run in enumerate(runs):
        t = [s.t / 60 for s in run.samples]
        style = styles[index % len(styles)]
        name = f" ({run.code})" if len(runs) > 1 else ""

        def series(ax: Any, values: list[Any], label: str, color: str) -> None:
            ax.plot(t, values, color=color, linestyle=style, label=label + name)  # noqa: B023

        series(axes[0], [s.events_per_s for s in run.samples], "events/s", "tab:blue")
        series(twins[0], [s.authorizations_per_s for s in run.samples], "authorizations/s",
               "tab:orange")  # fmt: skip
        series(axes[1], [s.authorize_p99_ms for s in run.samples], "authorization p99",
               "tab:orange")  # fmt: skip
        series(axes[1], [s.batch_p99_ms for s in run.samples],
               "ingestion batch p99 (1000 events)", "tab:blue")  # fmt: skip
        series(axes[2], [s.oldest_unevaluated_seconds for s in run.samples],
               "oldest unevaluated balance version (polled)", "tab:red")  # fmt: skip
        series(axes[2], [s.lag_seconds for s in run.samples],
               "/metrics evaluation_lag_seconds", "tab:pink")  # fmt: skip
        series(twins[2], [s.queue_depth for s in run.samples], "Celery queue depth", "tab:gray")
        series(axes[3], [sum(s.cpu.get(g, 0.0) for g in OURS) for s in run.samples],
               "CreditGuard: its database, web, worker, clients", "tab:green")  # fmt: skip
        series(axes[3], [sum(v for g, v in s.cpu.items() if g not in OURS) for s in run.samples],
               "everything else on the machine", "tab:purple")  # fmt: skip
        series(twins[3], [s.load1 for s in run.samples], "load average (1 min)", "black")
    run = runs[0]
    axes[0].axhline(run.ingest_rate, color="tab:blue", linewidth=0.8)
    axes[0].annotate(f"offered {run.ingest_rate:,.0f} events/s and "
                     f"{run.authorize_rate:,.0f} authorizations/s (off the scale)",
                     xy=(0.01, 0.92), xycoords="axes fraction", fontsize=8)  # fmt: skip
    top = max(s.events_per_s for r in runs for s in r.samples) * 1.3 or 1
    axes[0].set_ylim(0, top)
    twins[0].set_ylim(0, max(s.authorizations_per_s for r in runs for s in r.samples) * 1.3 or 1)
    axes[0].set_ylabel("events ingested / s")
    twins[0].set_ylabel("authorizations / s")
    axes[0].set_title("Throughput achieved")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("ms")
    axes[1].set_title("p99 per 10 s, as the clients saw it")
    axes[2].set_ylabel("seconds")
    axes[2].set_ylim(bottom=0)
    twins[2].set_ylabel("tasks waiting")
    twins[2].set_ylim(bottom=0)
    axes[2].set_title("Evaluation lag and the Celery queue")
    axes[3].axhline(os.cpu_count() or 1, color="black", linewidth=0.5)
    axes[3].set_ylim(0, (os.cpu_count() or 1) * 1.2)
    axes[3].set_ylabel("cores busy")
    twins[3].set_ylabel("load average")
    twins[3].set_ylim(bottom=0)
    axes[3].set_title("CPU of the machine's cores, load average")
    axes[3].set_xlabel("minutes")
    for ax, twin in zip(axes, twins, strict=True):
        handles, labels = ax.get_legend_handles_labels()
        if twin is not None:
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, loc="best", fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def report(runs: list[LoadRun]) -> str:
    """The section's text: the plot, and each run's figures (newest first when several)."""
    image = "![Throughput, p99, evaluation lag and CPU over the run](benchmarks/load.png)"
    if len(runs) == 1:
        return section(runs[0]) + "\n" + image + "\n"
    parts = [f"{len(runs)} runs, overlaid in the plot (solid: the first below).\n\n{image}\n"]
    for run in runs:
        started = run.started_at[:16].replace("T", " ")
        parts.append(f"### Run of {started} UTC, commit {run.code}\n{section(run)}")
    return "\n".join(parts)


def section(run: LoadRun) -> str:
    totals = run.totals
    rows = [
        "| minute | events/s | authorizations/s | auth p50 | auth p99 | batch p99 | errors "
        "| lag (/metrics, max) | oldest unevaluated (max) | queue (max) "
        "| evaluation task (max) | /readyz (worst) | load avg |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in run.minutes:
        rows.append(
            f"| {m['minute']} | {m['events_per_s']:,.0f} | {m['authorizations_per_s']:,.0f} | "
            f"{ms(m['authorize_p50_ms'])} | {ms(m['authorize_p99_ms'])} | "
            f"{ms(m['batch_p99_ms'])} | {errors_text(m['errors'])} | "
            f"{seconds_text(m['lag_seconds'], 1)} | "
            f"{seconds_text(m['oldest_unevaluated_seconds'], 0)} | {m['queue_depth']} | "
            f"{seconds_text(m.get('evaluation_seconds'), 1)} | {ready_text(m)} | "
            f"{'–' if m['load1'] is None else format(m['load1'], '.1f')} |"
        )
    samples = run.samples
    count = max(len(samples), 1)
    cpu = {name: sum(s.cpu.get(name, 0.0) for s in samples) / count for name in [*GROUPS, "other"]}
    busy = sum(s.cores_busy for s in samples) / count
    waits: dict[str, float] = defaultdict(float)
    for s in samples:
        for wait, mean in s.db_active.items():
            waits[wait] += mean / count
    half = len(samples) // 2
    first = max((s.oldest_unevaluated_seconds for s in samples[:half]), default=0.0)
    second = max((s.oldest_unevaluated_seconds for s in samples[half:]), default=0.0)
    cores = os.cpu_count() or 1
    lost = (
        totals["events_accepted"] == totals["events_stored"]
        and totals["quantity_sent"] == totals["quantity_stored"] == totals["usage_booked"]
        == totals["balances_used"]
        and totals["authorizations_allowed"] == totals["authorizations_stored"]
    )  # fmt: skip
    cpu_text = ", ".join(f"{name} {value:.2f}" for name, value in cpu.items())
    wait_text = ", ".join(f"{w} {v:.1f}" for w, v in sorted(waits.items(), key=lambda i: -i[1]))
    drain = totals["drain_seconds"]
    caught_up = (
        seconds_text(drain, 0)
        if drain is not None
        else f"more than the wait ({totals['pending_after']} balances still pending)"
    )
    each = (
        f" ({totals['evaluation_seconds'] / totals['evaluations']:.1f} s each on average)"
        if totals.get("evaluation_seconds") and totals["evaluations"]
        else ""
    )
    queue_drain = totals.get("queue_drain_seconds")
    queue_text = (
        ""
        if "queue_drain_seconds" not in totals  # a run saved before this was measured
        else f"; its queue was empty after {seconds_text(queue_drain, 0)}"
        if queue_drain is not None
        else f"; its queue still held {totals.get('queue_after')} tasks when the wait ended"
    )
    return f"""
{run.seconds / 60:.0f} minutes offering the rates of "Ingestion" and "Authorization" above
together: **{run.ingest_rate:,.0f} events/s** (batches of {BATCH}, {run.ingest_clients} client
processes with a tenant each) and **{run.authorize_rate:,.0f} authorizations/s** (one SMS unit,
{run.authorize_clients} client processes over 8 tenants), paced, on gunicorn ({run.web_workers}
sync workers), a Celery worker (prefork, {run.worker_concurrency}) and beat (the sweep every
5 minutes over {run.background_tenants:,} more tenants × 3 channels, reservations expired every
30 s), PostgreSQL and Redis — all on this machine, clients included. Run started
{run.started_at[:16].replace("T", " ")} UTC on commit {run.code}; load average before it:
{run.load_before:.1f} (the machine is shared: "other" below is everyone else's CPU).

| | offered | achieved | of offered |
|---|---:|---:|---:|
| events ingested / s | {run.ingest_rate:,.0f} | {totals["events_per_s"]:,.0f} | {totals["events_per_s"] / run.ingest_rate:.0%} |
| authorizations / s | {run.authorize_rate:,.0f} | {totals["authorizations_per_s"]:,.0f} | {totals["authorizations_per_s"] / run.authorize_rate:.0%} |

Per minute (latencies by the clients, from sending to the whole answer; the lag columns as
described below):

{chr(10).join(rows)}

**Nothing lost:** {totals["events_accepted"]:,} events accepted, {totals["events_stored"]:,}
stored; their {totals["quantity_sent"]:,} units = {totals["quantity_stored"]:,} stored =
{totals["usage_booked"]:,} booked as usage in the ledger = {totals["balances_used"]:,} on the
balances; {totals["authorizations_allowed"]:,} authorizations allowed,
{totals["authorizations_stored"]:,} stored ({"all equal" if lost else "**not equal**"}).
Errors (answers other than 200): {errors_text(totals["errors"])}; denied: {totals["denied"]}.

**Where the edge is:** the machine's {cores} cores were {busy / cores:.0%} busy on average
({busy:.2f} cores); by process group, in cores: {cpu_text}. This database's active backends
(mean, by what they waited for; CPU = running or runnable): {wait_text or "none"}.

**Evaluation lag:** the oldest unevaluated balance version was at most {first:.0f} s old in
the first half and {second:.0f} s in the second. The worker finished
{totals["evaluations"]:,} evaluation tasks{each}, {totals["sweeps"]} sweeps
({totals["sweep_seconds"]:.1f} s of work in all) and {totals["expirations"]} reservation
expiries (beat sends one every 30 s: {run.seconds / 30:.0f} in the run). After the load stopped the worker caught up
in {caught_up} (every balance evaluated){queue_text}.
The /metrics gauge `creditguard_evaluation_lag_seconds` is the age of the oldest waiting
balance's *last move*: under steady load every waiting balance keeps moving, so it stays
near zero even when evaluation falls behind; the polled column — how long ago a version
above the balance's evaluated one was first seen, polled every second — is the lag.
"""  # noqa: E501


# --- the command --------------------------------------------------------------------------


def run_to_json(run: LoadRun) -> str:
    return json.dumps(dataclasses.asdict(run), indent=1)


def run_from_json(text: str) -> LoadRun:
    data = json.loads(text)
    samples = [Sample(**s) for s in data.pop("samples")]
    return LoadRun(samples=samples, **data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="instead of --minutes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds per sample")
    parser.add_argument("--ingest-rate", type=float, help="events/s (default: BENCHMARKS.md)")
    parser.add_argument("--authorize-rate", type=float, help="requests/s (default: ditto)")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--tenants", type=int, default=10_000, help="background tenants")
    parser.add_argument("--save", type=Path, help="write the raw figures to this JSON file")
    parser.add_argument("--from", dest="sources", type=Path, action="append",
                        help="report a saved run (repeat: several runs, newest first)")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args()
    # SIGTERM (timeout, kill) ends the run as Ctrl-C does: the processes stopped and the
    # scratch database dropped by the blocks' finally clauses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.sources:
        runs = [run_from_json(source.read_text()) for source in args.sources]
    else:
        os.environ.setdefault("BENCH_DATABASE_NAME", DEFAULT_DATABASE)
        redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
        os.environ["BENCH_REDIS_URL"] = redis_url
        ingest_rate, authorize_rate = benchmark_rates()
        with scratch_database() as url:
            setup_django(url)
            run = load_run(
                database_url=url,
                redis_url=redis_url,
                seconds=args.seconds or args.minutes * 60,
                interval=args.interval,
                ingest_rate=args.ingest_rate or ingest_rate,
                authorize_rate=args.authorize_rate or authorize_rate,
                web_workers=args.web_workers,
                worker_concurrency=args.worker_concurrency,
                background_tenants=args.tenants,
            )
        if args.save:
            args.save.write_text(run_to_json(run))
        runs = [run]
    body = report(runs)
    print(body)
    if not args.no_write:
        plot(runs, PLOT)
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
