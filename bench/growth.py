"""Growth: every figure of the other benches on an empty database, then with 10 and 50
million usage events of history over three years and 10,000 tenants.

    python -m bench.growth [--sizes 10000000,50000000] [--tenants 10000] [--rounds 3]
                           [--reuse | --drop] [--no-write]

On a scratch PostgreSQL database (``BENCH_DATABASE_NAME``, default ``cg_bench_growth``):
the tenants, their rules, three years of periods and their balances first (size 0, "the
empty database": no usage yet), then the history grown to each size by SQL
(``bench.growth_load``: events, their ledger entries, balances, grants and rollups as
ingestion writes them). At each size, the same tenants — the heavy one (a tenth of all
events) and typical ones — are measured by the other benches' functions: ingestion over
HTTP (``bench.ingest``), authorization p50/p99 (``bench.authorize``), ``GET /balances``
and ``GET /usage`` (``bench.usage``), the evaluation sweep, the billing export as CSV
(``bench.export``), the staff changelist and start page (``bench.console``) and the
portal's overview (``bench.portal``); each the median of ``--rounds``, with the load
average beside it. Free disk is checked before each load, and the load stops at the size
the disk allows. Writes a table, docs/benchmarks/growth.png and an extrapolation to a
billion events into docs/BENCHMARKS.md. The database is dropped at the end (also on an
error or Ctrl-C) unless ``--reuse``, which keeps it and grows it on the next run;
``--drop`` drops it.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg2

from bench.common import (
    ADMIN_URL,
    DOC,
    ROOT,
    bench_database_name,
    bench_database_url,
    drop_database,
    gunicorn,
    recreate_database,
    server_env,
    write_section,
)

SECTION = "Growth: 10 and 50 million events"
PNG = DOC.parent / "benchmarks" / "growth.png"
RATIO_GOAL = 1.5
INGEST_GOAL = 0.8
DISK_RESERVE = 10 * 1024**3  # left free for the others on the machine
FIRST_ESTIMATE = 700  # bytes an event takes with its share of ledger, rollups, indexes
BILLION = 1_000_000_000


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str  # "ms", "s" or "events/s"
    higher_is_better: bool = False

    @property
    def goal(self) -> float:
        return INGEST_GOAL if self.higher_is_better else RATIO_GOAL


FIGURES = [
    Figure("ingest", "ingestion, `POST /usage-events` (4 clients × 1000-event batches)",
           "events/s", True),
    Figure("auth_p50", "authorization p50 (8 clients, 4 tenants)", "ms"),
    Figure("auth_p99", "authorization p99", "ms"),
    Figure("balances_heavy", "`GET /balances`, heavy tenant", "ms"),
    Figure("balances_typical", "`GET /balances`, typical tenant", "ms"),
    Figure("usage_month_heavy", "`GET /usage` last month by day, heavy", "ms"),
    Figure("usage_month_typical", "`GET /usage` last month by day, typical", "ms"),
    Figure("usage_year_heavy", "`GET /usage` twelve months by month, heavy", "ms"),
    Figure("usage_year_typical", "`GET /usage` twelve months by month, typical", "ms"),
    Figure("sweep", "evaluation sweep (every open balance)", "s"),
    Figure("export", "billing export, CSV, last month", "s"),
    Figure("changelist", "staff: tenant changelist", "ms"),
    Figure("start", "staff: start page", "ms"),
    Figure("overview_heavy", "portal overview `/dashboard/`, heavy", "ms"),
    Figure("overview_typical", "portal overview `/dashboard/`, typical", "ms"),
]  # fmt: skip


@dataclass
class Measured:
    events: int
    values: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    database_bytes: int = 0
    load_seconds: float | None = None
    settle_seconds: float = 0.0  # waited for autovacuum to finish before measuring


# ------------------------------------------------------------------ the scratch database


def database_exists() -> bool:
    conn = psycopg2.connect(ADMIN_URL)
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [bench_database_name()])
        found = cursor.fetchone() is not None
    conn.close()
    return found


def database_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def autovacuum_settle(timeout: float = 600) -> float:
    """Wait, at most ``timeout`` seconds, until no autovacuum worker runs: a load leaves
    work for autovacuum, which would otherwise share the two cores with the measurements
    and be counted as a cost of the history. The seconds waited."""
    from django.db import connection

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            )
            if cursor.fetchone()[0] == 0:
                break
        time.sleep(2)
    return time.monotonic() - started


def free_disk() -> int:
    """Free bytes where PostgreSQL keeps its data (the root file system if unreadable)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        directory = cursor.fetchone()[0]
    for path in (directory, os.path.dirname(directory), "/"):
        try:
            return shutil.disk_usage(path).free
        except OSError:
            continue
    raise RuntimeError("no disk to measure")


def affordable(target: int, loaded: int, per_event: float) -> tuple[int, str]:
    """The size the free disk allows (in whole millions), and what was decided."""
    free = free_disk()
    need = (target - loaded) * per_event
    if need <= free - DISK_RESERVE:
        return target, ""
    fits = max(int((free - DISK_RESERVE) / per_event), 0)
    capped = loaded + fits // 1_000_000 * 1_000_000
    note = (
        f"{target:,} events would need about {need / 1e9:.1f} GB more ({per_event:.0f} bytes "
        f"an event) and {free / 1e9:.1f} GB are free (keeping {DISK_RESERVE / 1e9:.0f} GB "
        f"for the others): the load stopped at {capped:,}."
    )
    return capped, note


# ------------------------------------------------------------------ the measured tenants


@dataclass
class Probes:
    tenants: list[Any]
    keys: list[str]  # usage:write and usage:read, one per tenant
    platform_key: str
    owners: list[Any]  # Django test clients logged in as each probe tenant's owner
    staff: Any
    api: list[Any]  # Django test clients with each probe tenant's key
    period: str  # last month's label (the export's)
    now: datetime


def probes_prepare(now: datetime) -> Probes:
    from django.contrib.auth.models import User
    from django.test import Client

    from bench.growth_load import probe_tenants
    from metering.services.periods import period_bounds
    from tenants.models import Membership, Scope
    from tenants.services import api_key_create, membership_add

    tenants = probe_tenants()
    keys = [
        api_key_create(
            tenant=t, name="growth", scopes=[Scope.USAGE_WRITE, Scope.USAGE_READ]
        ).raw_key
        for t in tenants
    ]
    owners = []
    for tenant in tenants[:2]:
        user, _ = User.objects.get_or_create(username=f"growth-{tenant.slug}")
        if not Membership.objects.for_tenant(tenant).filter(user=user).exists():
            membership_add(tenant=tenant, user=user, role=Membership.Role.OWNER, actor=None)
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        owners.append(client)
    staff_user = User.objects.filter(username="growth-staff").first()
    if staff_user is None:
        staff_user = User.objects.create_superuser("growth-staff", "g@example.com", "x")
    staff = Client()
    staff.force_login(staff_user, backend="django.contrib.auth.backends.ModelBackend")
    api = [Client(headers={"authorization": f"Bearer {key}"}) for key in keys[:2]]
    this_month = period_bounds(tenant=tenants[0], at=now)
    last = period_bounds(tenant=tenants[0], at=this_month.starts_at - timedelta(days=1))
    platform_key = api_key_create(tenant=None, name="growth", scopes=["billing:read"]).raw_key
    return Probes(tenants, keys, platform_key, owners, staff, api, last.label, now)


# ------------------------------------------------------------------ one size's figures


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def measure_in_process(probes: Probes, rounds: int, out: dict[str, float]) -> None:
    from bench.console import page_timing
    from bench.portal import timed as portal_timed
    from bench.usage import timed, usage_queries
    from policies.services.evaluate import evaluate_sweep

    def get(client: Any, path: str, params: dict[str, str]) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, params)
            assert response.status_code == 200, (path, response.content[:300])
            return response

        return call

    for name, client in zip(("heavy", "typical"), probes.api, strict=True):
        out[f"balances_{name}"] = timed(get(client, "/api/v1/balances", {}), 15)[0]
        queries = usage_queries(probes.tenants[0], datetime.now(UTC))
        month, year = queries["last month by day"], queries["twelve months by month"]
        out[f"usage_month_{name}"] = timed(get(client, "/api/v1/usage", month), 15)[0]
        out[f"usage_year_{name}"] = timed(get(client, "/api/v1/usage", year), 15)[0]
    sweeps = []
    for _ in range(rounds):
        started = time.perf_counter()
        evaluate_sweep()
        sweeps.append(time.perf_counter() - started)
    out["sweep"] = median(sweeps)
    out["changelist"] = (
        median([page_timing(probes.staff, "/admin/tenants/tenant/")[1] for _ in range(rounds)])
        * 1000
    )
    out["start"] = median([page_timing(probes.staff, "/admin/")[1] for _ in range(rounds)]) * 1000
    heavy, typical = portal_timed(probes.owners, "/dashboard/", {}, 15)
    out["overview_heavy"], out["overview_typical"] = heavy.median, typical.median


def measure_http(probes: Probes, url: str, rounds: int, out: dict[str, float]) -> None:
    from bench.authorize import Call, scenario
    from bench.export import fetch
    from bench.ingest import BATCH, http_client, make_batches, run_clients

    body: bytes | None = orjson.dumps({"channel": "sms", "quantity": 1})
    stamp = int(time.time())
    with gunicorn(url, workers=4) as port:
        warm = [orjson.dumps({"events": b}) for b in make_batches(f"w{stamp}", 8, probes.now)]
        http_client(port, probes.keys[0], warm)
        auth_plans: list[list[Call]] = [
            [("POST", "/api/v1/authorizations", body, probes.keys[(c + i) % len(probes.keys)])
             for i in range(150)]
            for c in range(8)
        ]  # fmt: skip
        scenario(port, [plan[:10] for plan in auth_plans])  # warm every worker
        base = f"http://127.0.0.1:{port}/api/v1/billing/export?period={probes.period}"
        fetch(f"{base}&tenant={probes.tenants[0].slug}", probes.platform_key)
        rates, p50s, p99s, exports = [], [], [], []
        for r in range(rounds):  # interleaved, so drift on the machine hits each alike
            jobs = [
                (port, key,
                 [orjson.dumps({"events": b})
                  for b in make_batches(f"i{stamp}-{r}-{n}", 10, datetime.now(UTC))])
                for n, key in enumerate(probes.keys)
            ]  # fmt: skip
            elapsed, _ = run_clients(jobs, http_client)
            rates.append(len(jobs) * 10 * BATCH / elapsed)
            result = scenario(port, auth_plans)
            p50s.append(result["p50"])
            p99s.append(result["p99"])
            started = time.perf_counter()
            csv = fetch(f"{base}&format=csv", probes.platform_key)
            exports.append(time.perf_counter() - started)
            assert csv.count(b"\r\n") > 1, csv[:300]
    out["ingest"], out["auth_p50"], out["auth_p99"] = median(rates), median(p50s), median(p99s)
    out["export"] = median(exports)


# ------------------------------------------------------------------ fits and output


def fits(sizes: list[int], values: list[float]) -> tuple[float | None, float | None]:
    """A figure at a billion events by a straight line through every size (least squares,
    the empty database included), and by a line in log10(size) through the loaded sizes
    only (log has no zero); None where there are too few points."""
    linear = log = None
    if len(sizes) >= 2:
        mx, my = statistics.fmean(sizes), statistics.fmean(values)
        sxx = sum((x - mx) ** 2 for x in sizes)
        slope = sum((x - mx) * (y - my) for x, y in zip(sizes, values, strict=True)) / sxx
        linear = my + slope * (BILLION - mx)
    loaded = [(math.log10(x), y) for x, y in zip(sizes, values, strict=True) if x > 0]
    if len(loaded) >= 2:
        mx = statistics.fmean(x for x, _ in loaded)
        my = statistics.fmean(y for _, y in loaded)
        sxx = sum((x - mx) ** 2 for x, _ in loaded)
        slope = sum((x - mx) * (y - my) for x, y in loaded) / sxx
        log = my + slope * (9 - mx)
    return linear, log


def cell(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "events/s":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.1f} ms"


def plot(results: list[Measured]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [m.events for m in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    colors = plt.get_cmap("tab20")
    for index, figure in enumerate(FIGURES):
        values = [m.values[figure.key] for m in results]
        ratios = [v / values[0] for v in values]
        (line,) = left.plot(
            [s / 1e6 for s in sizes],
            ratios,
            marker="os^vD"[index % 5],
            color=colors(index),
            label=figure.key,
        )
        _, log = fits(sizes, values)
        if log is not None:
            loaded = [(s, v) for s, v in zip(sizes, values, strict=True) if s > 0]
            xs = [loaded[0][0], BILLION]
            lo = [loaded[0][1] / values[0], log / values[0]]
            right.plot(xs, lo, linestyle="--", color=line.get_color())
            right.plot([s for s, _ in loaded], [v / values[0] for _, v in loaded], "o",
                       color=line.get_color())  # fmt: skip
    for axis in (left, right):
        axis.axhline(RATIO_GOAL, color="red", linewidth=0.8)
        axis.axhline(INGEST_GOAL, color="red", linewidth=0.8, linestyle=":")
        axis.set_ylabel("× the empty database")
        axis.grid(alpha=0.3)
    left.set_xlabel("usage events loaded (millions)")
    left.set_title("Measured (red: goal 1.5×; dotted: ingestion ≥ 0.8×)")
    right.set_xscale("log")
    right.set_xlabel("usage events (log)")
    right.set_title("Fit in log10(events) to a billion (an assumption, see text)")
    left.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PNG, dpi=110)
    plt.close(fig)


def report(results: list[Measured], notes: list[str], tenants: int, rounds: int) -> str:
    sizes = [m.events for m in results]
    head = " | ".join(f"{s:,} events" if s else "empty" for s in sizes)
    lines = [
        f"| figure | {head} | last / empty | goal | linear → 10⁹ | log → 10⁹ |",
        "|---|" + "---:|" * len(sizes) + "---:|---|---:|---:|",
    ]
    missed = []
    for figure in FIGURES:
        values = [m.values[figure.key] for m in results]
        ratio = values[-1] / values[0]
        met = ratio >= figure.goal if figure.higher_is_better else ratio <= figure.goal
        if not met:
            missed.append(figure.label)
        linear, log = fits(sizes, values)
        # A fit that improves on every measured figure only extrapolates the noise.
        best = max(values) if figure.higher_is_better else min(values)

        def at_billion(fit: float | None, figure: Figure = figure, best: float = best) -> str:
            if fit is not None and (fit > best if figure.higher_is_better else fit < best):
                return "no fall" if figure.higher_is_better else "no rise"
            return cell(fit, figure.unit)

        goal = f"{'≥' if figure.higher_is_better else '≤'} {figure.goal}×"
        lines.append(
            f"| {figure.label} | "
            + " | ".join(cell(v, figure.unit) for v in values)
            + f" | **{ratio:.2f}×** | {goal} {'met' if met else '**not met**'} | "
            f"{at_billion(linear)} | {at_billion(log)} |"
        )
    load_rows = "; ".join(
        f"{m.events:,}: {m.load[0]:.1f} / {m.load[1]:.1f} / {m.load[2]:.1f}"
        + (f" (autovacuum waited for: {m.settle_seconds:.0f} s)" if m.settle_seconds >= 1 else "")
        for m in results
    )
    sizes_rows = "; ".join(
        f"{m.events:,}: {m.database_bytes / 1e9:.1f} GB"
        + (f" (loaded in {m.load_seconds / 60:.0f} min)" if m.load_seconds else "")
        for m in results
    )
    verdict = (
        "Every ratio is within its goal at the largest size (read with the notes below)."
        if not missed
        else "Not met at the largest size: " + "; ".join(missed) + "."
    )
    return "\n".join(
        [
            f"`python -m bench.growth`: {tenants:,} tenants (UTC), three years of monthly "
            "periods (the current one open), a limit rule and a balance per channel and "
            "period with its included grant; then usage events generated in SQL "
            "(`bench/growth_load.py`: `generate_series`, batches of 100 events a few seconds "
            "apart at hashed instants of the three years, a tenth of the batches the heavy "
            "tenant's), with what ingestion writes beside them: a usage ledger entry per "
            "batch × balance with its draws, the balances' totals and versions, the included "
            "grants' drawn units, the rollups (quarter hours, hours, days)"
            + (
                ", and the idempotency keys of the open period's events only (closed periods' "
                "keys are pruned)"
                if _has_keys()
                else ""
            )
            + ". The same tenants at every size: the heavy one (a tenth of all events) and "
            "typical ones. HTTP figures against gunicorn (4 sync workers), the others "
            "through the Django test client in-process (server time); "
            f"each the median of {rounds} rounds (pages: of 15 requests).",
            "",
            *lines,
            "",
            verdict,
            "",
            f"Load average (1 / 5 / 15 min) after each size's measurements: {load_rows}. "
            f"Database size: {sizes_rows}.",
            *[line for note in notes for line in ("", note)],
            "",
            "![Growth](benchmarks/growth.png)",
            "",
            "**Extrapolation to a billion events**, two ways, neither a measurement: "
            "*linear* is the least-squares line through every size (the empty database "
            "included) — the pessimistic reading, right for costs that scan history; "
            "*log* is a line in log10(events) through the loaded sizes only — right for "
            'costs that descend B-tree indexes, whose depth grows with the log; "no rise" '
            "where the fit falls below every measured figure (it then extrapolates noise). "
            "With two or "
            "three points per figure and a shared, noisy machine, a difference of a few "
            "milliseconds between sizes is within the noise, and the linear line then "
            "magnifies noise twenty-fold; read a figure as at risk only when both "
            "fits rise. Neither fit knows what a billion events do to the cache: the "
            "tables then outgrow memory many times over, and what is now read from shared "
            "buffers may be read from disk.",
        ]
    )


def _has_keys() -> bool:
    from bench.growth_load import key_model

    return key_model() is not None


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000000,50000000", help="events, ascending")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds a figure; the median")
    parser.add_argument("--chunk", type=int, default=5_000_000, help="events a load statement")
    parser.add_argument("--reuse", action="store_true", help="keep the database; grow it next")
    parser.add_argument("--drop", action="store_true", help="drop a kept database and stop")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    parser.add_argument(
        "--deadline",
        help="HH:MM (UTC): stop loading in time to measure and write by then (the size "
        "reached is reported)",
    )
    parser.add_argument("--results", help="a JSON file: the figures, written after each size")
    parser.add_argument(
        "--render", action="store_true", help="write the report from --results, measure nothing"
    )
    parser.add_argument("--note", action="append", help="with --render: a note to add")
    args = parser.parse_args()
    if args.render:
        os.environ.update(server_env(bench_database_url()))
        import django

        django.setup()  # the models' registry only: nothing is read from the database
        saved = orjson.loads(Path(args.results).read_bytes())
        results = [Measured(**{**m, "load": tuple(m["load"])}) for m in saved["results"]]
        text = report(results, saved["notes"] + (args.note or []), args.tenants, args.rounds)
        print(text)
        plot(results)
        write_section(SECTION, text)
        return
    os.environ.setdefault("BENCH_DATABASE_NAME", "cg_bench_growth")
    os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
    if args.drop:
        drop_database()
        print(f"dropped {bench_database_name()}")
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    url = bench_database_url()
    reusing = args.reuse and database_exists()
    try:
        if reusing:  # the history stays; the schema follows the checkout
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"],
                cwd=ROOT,
                env=server_env(url),
                check=True,
            )
        else:
            recreate_database()
        run(url, sizes, args, reusing)
    finally:
        if not args.reuse:
            from django.db import connections

            connections.close_all()
            drop_database()
            print(f"dropped {bench_database_name()}")


def run(url: str, sizes: list[int], args: argparse.Namespace, reusing: bool) -> None:
    os.environ.update(server_env(url))
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()
    from django.conf import settings

    from bench import growth_load as load

    settings.LIMIT_NOTICE_DAYS = 0
    load.VERBOSE = True
    now = datetime.now(UTC)
    if not (reusing and load.state_get().get("tenant_ids")):
        scaffold = load.scaffold(tenants=args.tenants, now=now)
        load.analyze()
        print(f"scaffold: {scaffold}", flush=True)
    probes = probes_prepare(now)
    base_bytes = database_bytes()
    results: list[Measured] = []
    notes: list[str] = []
    per_event = float(FIRST_ESTIMATE)
    partitioned = False  # usage events and ledger entries by month, none in DEFAULT
    measure_seconds = 600.0
    deadline = None
    if args.deadline:
        hour, minute = map(int, args.deadline.split(":"))
        at = datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at <= datetime.now(UTC):  # a time of day already past: tomorrow's
            at += timedelta(days=1)
        deadline = time.monotonic() + (at - datetime.now(UTC)).total_seconds()
    loaded = load.loaded_events()
    for target in ([0] if loaded == 0 else []) + sizes:
        step_seconds = None
        if target > loaded:
            target, note = affordable(target, loaded, per_event)
            if note:
                notes.append(note)
                print(note, flush=True)
            if target <= loaded:
                break
            started = time.perf_counter()
            stop_by = None
            if deadline is not None:  # room left to analyze, measure (as last time), write
                stop_by = deadline - 1.3 * measure_seconds - 180
            step = load.events_load(target=target, now=now, chunk=args.chunk, stop_by=stop_by)
            if step.events < target:
                note = (
                    f"The load toward {target:,} events stopped at {step.events:,}: at "
                    f"the pace it reached ({step.added / step.seconds:,.0f} events/s on the "
                    "shared machine) the rest would not have been loaded and measured by "
                    f"the run's deadline ({args.deadline} UTC)."
                )
                notes.append(note)
                print(note, flush=True)
                if step.added == 0:
                    break
            load.analyze()
            step_seconds = time.perf_counter() - started
            stray = load.default_partition_rows()
            if stray is not None and any(stray.values()):
                notes.append(
                    f"Rows in the DEFAULT partitions after loading {step.events:,}: {stray} "
                    "(a wrong measurement: months without a partition)."
                )
            elif stray is not None:
                partitioned = True
            print(f"loaded: {step} ({step_seconds:.0f} s with VACUUM ANALYZE)", flush=True)
            loaded = step.events
            per_event = max((database_bytes() - base_bytes) / loaded, 100.0) * 1.15
        elif target < loaded:
            continue
        # The loader set its session up for bulk writes (``growth_load.session_for_bulk``:
        # work_mem, no synchronous commit, no triggers); measured on that session, every
        # loaded size would be read with other plans than the empty database. A new one.
        from django.db import connections

        connections.close_all()
        measured = Measured(events=loaded, load_seconds=step_seconds)
        measured.settle_seconds = autovacuum_settle()
        started = time.monotonic()
        measure_in_process(probes, args.rounds, measured.values)
        measure_http(probes, url, args.rounds, measured.values)
        measure_seconds = time.monotonic() - started
        measured.load = os.getloadavg()
        measured.database_bytes = database_bytes()
        results.append(measured)
        if args.results:  # what was measured so far, to write the report again (--render)
            Path(args.results).write_bytes(
                orjson.dumps({"results": [asdict(m) for m in results], "notes": notes})
            )
        print(f"{loaded:,}: " + ", ".join(f"{k} {v:.3g}" for k, v in measured.values.items()),
              f"load {measured.load}", flush=True)  # fmt: skip
    if partitioned:
        notes.append(
            "Usage events and ledger entries are partitioned by month (monthly partitions "
            "for the three years created by `partitions_ensure` before loading); the DEFAULT "
            "partitions held no row after any load."
        )
    if reusing:
        notes.append(
            "`--reuse`: this run measured a database an earlier run loaded; its first column "
            "is the smallest size measured in this run, not necessarily the empty database."
        )
    if len(results) < 2:
        print("fewer than two sizes measured: nothing to compare")
        return
    text = report(results, notes, args.tenants, args.rounds)
    print(text)
    if not args.no_write:
        plot(results)
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
