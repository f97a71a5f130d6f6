"""Authorization and ingestion direct to PostgreSQL and through PgBouncer, in one run.

    python -m bench.pgbouncer [--clients 16] [--requests 200] [--workers 4] [--pool-size 4]
        [--ingest-clients 4] [--batches 10] [--statements 300] [--rounds 3]

Starts Debian's pgbouncer in transaction pooling (tests/ops/pgbouncer.py: its own temp
dir, a free port) in front of a scratch database, and three gunicorns on it: connected
directly with ``DATABASE_POOLER`` empty and set (the statement it runs, without the
pooler), and through the pooler with ``DATABASE_POOLER=pgbouncer-transaction``. Rounds
alternate between them: ``POST /api/v1/authorizations`` from ``--clients`` processes over
several tenants (p50, p99), then batches of 1000 events from ``--ingest-clients`` threads
with a tenant each (events/s); then the authorization statement alone from one
connection, direct and through the pooler, in each form it can take (p50, p99). Prints
the tables for docs/SCALING.md; the scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg2

from bench.authorize import Call, scenario
from bench.common import (
    ADMIN_URL,
    bench_database_name,
    gunicorn,
    machine,
    scratch_database,
    setup_django,
)
from bench.ingest import BATCH, http_client, make_batches, run_clients, tenants_with_keys
from tests.ops.pgbouncer import pgbouncer

STATEMENT_FORMS = {
    "prepared": "`EXECUTE` of a statement prepared once (`DATABASE_POOLER` empty)",
    "pooled": "`DO` block + `EXECUTE` in one query (`DATABASE_POOLER=pgbouncer-transaction`)",
    "planned": "the statement's text, planned on every call",
}
MODES = {
    "direct": "direct, `DATABASE_POOLER` empty",
    "direct-pooled": "direct, `DATABASE_POOLER=pgbouncer-transaction`",
    "pgbouncer": "through PgBouncer, `DATABASE_POOLER=pgbouncer-transaction`",
}


@contextmanager
def served(url: str, *, workers: int, pooler: str) -> Iterator[int]:
    """gunicorn on ``url``, started with ``DATABASE_POOLER=pooler``."""
    saved = os.environ.get("DATABASE_POOLER")
    os.environ["DATABASE_POOLER"] = pooler  # read by the server's environment at its start
    try:
        with gunicorn(url, workers=workers) as port:
            os.environ.pop("DATABASE_POOLER")
            yield port
    finally:
        if saved is None:
            os.environ.pop("DATABASE_POOLER", None)
        else:
            os.environ["DATABASE_POOLER"] = saved


def ingest_round(port: int, keys: list[str], prefix: str, batches: int) -> float:
    now = datetime.now(UTC)
    jobs = []
    for n, key in enumerate(keys):
        bodies = [orjson.dumps({"events": b}) for b in make_batches(f"{prefix}-{n}", batches, now)]
        jobs.append((port, key, bodies))
    elapsed, _ = run_clients(jobs, http_client)
    return len(keys) * batches * BATCH / elapsed


def statement_round(dsn: str, form: str, tenant_id: int, calls: int) -> list[float]:
    """Latencies (ms) of ``calls`` one-unit authorizations by the one statement, from one
    psycopg2 connection to ``dsn``, in ``form``: ``prepared`` (PREPARE once, then
    EXECUTE: the direct setting), ``pooled`` (the DO block and EXECUTE in one query: the
    setting behind a pooler) or ``planned`` (the statement's text, planned every time).
    Each call in a transaction rolled back after it: the statement's own time, not the
    commit's WAL flush, which on a shared disk varies more than the forms differ."""
    from policies import sql as policies_sql

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    latencies = []
    with conn.cursor() as cursor:
        if form == "prepared":
            cursor.execute(policies_sql._prepare_sql())
        conn.autocommit = False
        for _ in range(calls):
            cursor.execute("SELECT 1")  # BEGIN, and the server session held until the rollback
            now = datetime.now(UTC)
            values: dict[str, Any] = {
                **policies_sql.CONSTANTS, "code": "sms", "tenant": tenant_id, "now": now,
                "quantity": 1, "public_id": str(uuid.uuid4()), "key": None,
                "expires": now + timedelta(minutes=10), "reason_overage": "overage",
                "reason_suspended": "channel_suspended", "reason_hard_limit": "hard_limit_reached",
            }  # fmt: skip
            ordered = [values[name] for name in policies_sql.FAST_AUTHORIZE_PARAMETERS]
            started = time.perf_counter()
            if form == "prepared":
                cursor.execute(policies_sql._EXECUTE, ordered)
            elif form == "pooled":
                cursor.execute(policies_sql._pooled_execute_sql(), ordered)
            else:
                cursor.execute(policies_sql.fast_authorize_sql(), values)
            if cursor.fetchone() is None:
                raise RuntimeError("the statement answered no row")
            latencies.append((time.perf_counter() - started) * 1000)
            conn.rollback()
    conn.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="authorization clients")
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--ingest-clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10, help="batches per ingest client")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--pool-size", type=int, default=4, help="PgBouncer default_pool_size")
    parser.add_argument("--tenants", type=int, default=8, help="tenants authorizing")
    parser.add_argument("--statements", type=int, default=300, help="calls per form and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    args = parser.parse_args()

    with scratch_database() as url:
        run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    setup_django(url)
    from django.conf import settings

    from metering.models import Channel
    from policies.services.rules import limit_rule_set

    settings.LIMIT_NOTICE_DAYS = 0  # the bench's terms apply at once
    sms = Channel.objects.get(code="sms")
    tenants, keys = tenants_with_keys(args.tenants, prefix="auth")
    for tenant in tenants:
        limit_rule_set(tenant=tenant, channel=sms, included_units=10**9, reason="bench", actor=None)
    ingest_keys = {
        mode: tenants_with_keys(args.ingest_clients, prefix=f"ingest-{mode}")[1] for mode in MODES
    }
    body = orjson.dumps({"channel": "sms", "quantity": 1})
    plans: list[list[Call]] = [
        [("POST", "/api/v1/authorizations", body, keys[(c + i) % len(keys)])
         for i in range(args.requests)]
        for c in range(args.clients)
    ]  # fmt: skip
    results: dict[str, dict[str, list[Any]]] = {mode: {"auth": [], "ingest": []} for mode in MODES}
    statements: dict[tuple[str, str], list[float]] = {}
    server = ADMIN_URL.rsplit("/", 1)[0]
    with ExitStack() as stack:
        pooler = stack.enter_context(pgbouncer(server, pool_size=args.pool_size))
        ports = {
            "direct": stack.enter_context(served(url, workers=args.workers, pooler="")),
            # The statement as behind a pooler, without one: what the DO block costs.
            "direct-pooled": stack.enter_context(
                served(url, workers=args.workers, pooler="pgbouncer-transaction")
            ),
            "pgbouncer": stack.enter_context(
                served(
                    pooler.url(bench_database_name()),
                    workers=args.workers,
                    pooler="pgbouncer-transaction",
                )
            ),
        }
        for port in ports.values():  # warm every worker (imports, connections)
            scenario(port, [plan[:10] for plan in plans])
        for r in range(args.rounds):
            for mode, port in ports.items():
                results[mode]["auth"].append(scenario(port, plans))
                results[mode]["ingest"].append(
                    ingest_round(port, ingest_keys[mode], f"r{r}", args.batches)
                )
        # The statement alone, one client: what the hop and the DO block cost.
        targets = {"direct": url, "through PgBouncer": pooler.url(bench_database_name())}
        for _ in range(args.rounds):
            for (target, dsn), form in itertools.product(targets.items(), STATEMENT_FORMS):
                if form == "prepared" and target != "direct":
                    continue  # per-connection PREPARE is what breaks behind the pooler
                statements.setdefault((target, form), []).extend(
                    statement_round(dsn, form, tenants[0].pk, args.statements)
                )
        [pool] = [row for row in pooler.show("POOLS") if row["database"] == bench_database_name()]
        [stats] = [row for row in pooler.show("STATS") if row["database"] == bench_database_name()]

    def median(values: list[float]) -> float:
        return statistics.median(values)

    rows = []
    for mode in MODES:
        auth = results[mode]["auth"]
        rows.append(
            f"| {MODES[mode]} "
            f"| {median([a['p50'] for a in auth]):.1f} ms "
            f"| {median([a['p99'] for a in auth]):.1f} ms "
            f"| {median([a['rate'] for a in auth]):,.0f} "
            f"| {median(results[mode]['ingest']):,.0f} |"
        )
    statement_rows = []
    for (target, form), latencies in statements.items():
        quantiles = statistics.quantiles(latencies, n=100)
        statement_rows.append(
            f"| {target} | {STATEMENT_FORMS[form]} | {quantiles[49]:.2f} ms "
            f"| {quantiles[98]:.2f} ms |"
        )
    text = f"""
_Measured {datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {machine()}, PgBouncer 1.18 (Debian)._
`python -m bench.pgbouncer --clients {args.clients} --requests {args.requests}
--ingest-clients {args.ingest_clients} --batches {args.batches} --statements {args.statements}
--workers {args.workers} --pool-size {args.pool_size} --rounds {args.rounds}`: three gunicorns with
{args.workers} sync workers each on one scratch database: two connected directly (with the
setting off, and on: its authorization statement prepared in the query that runs it), one
through PgBouncer in transaction pooling (`default_pool_size = {args.pool_size}`); rounds
alternate between them, the median of {args.rounds} shown. Authorizations: {args.clients} client
processes × {args.requests} `POST /api/v1/authorizations` over {args.tenants} tenants.
Ingestion: {args.ingest_clients} clients, a tenant each, {args.batches} batches of {BATCH}
events.

| | authorization p50 | authorization p99 | authorizations/s | ingestion events/s |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}

The authorization statement alone, from one psycopg2 connection, {args.statements} one-unit
authorizations per form and round ({args.rounds} rounds, interleaved), each in a
transaction rolled back after it (the statement's time without the commit's WAL flush):

| connection | form | p50 | p99 |
|---|---|---:|---:|
{chr(10).join(statement_rows)}

The pooler's console after the run: {int(stats["total_xact_count"]):,} transactions and
{int(stats["total_query_count"]):,} queries through it, on at most {args.pool_size} server
sessions (`SHOW POOLS`: {pool["sv_idle"]} idle, {pool["sv_used"]} used, {pool["sv_active"]}
active at the end).
"""
    print(text)


if __name__ == "__main__":
    main()
