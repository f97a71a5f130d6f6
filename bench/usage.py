"""GET /api/v1/usage over ten million events of history for one tenant, against the same
requests on an empty database in the same run.

    python -m bench.usage [--events 10000000] [--repeat 15]

On a scratch PostgreSQL database: times ``GET /api/v1/usage`` for last month by day and
for the last twelve months by month (the Django test client in-process, so server time)
first on the empty database (the floor), then after loading the history by SQL
(``generate_series``: a year of events, three channels, in the tenant's periods) and its
rollups (``usage_rollups_rebuild``, timed: the backfill). For comparison, the same totals
summed from the events, as GET /usage did before rollups. Writes docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import bench_database_url, recreate_database, server_env, write_section


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and worst of ``repeat`` calls, in milliseconds, after one warm-up call."""
    call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def usage_queries(tenant: Any, now: datetime) -> dict[str, dict[str, str]]:
    """The parameters of ``GET /api/v1/usage`` this bench times: last month by day and the
    last twelve months by month, in the tenant's periods (also used by ``bench.growth``)."""
    from metering.services.periods import period_bounds

    this_month = period_bounds(tenant=tenant, at=now)
    last_month = period_bounds(tenant=tenant, at=this_month.starts_at - timedelta(days=1))
    year_ago = period_bounds(tenant=tenant, at=now - timedelta(days=365)).starts_at
    return {
        "last month by day": {
            "granularity": "day",
            "from": last_month.starts_at.isoformat(),
            "to": last_month.ends_at.isoformat(),
        },
        "twelve months by month": {"granularity": "month", "from": year_ago.isoformat()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time again on the history an earlier run loaded (the floor: a tenant without "
        "events in the same database, not an empty database)",
    )
    args = parser.parse_args()
    url = bench_database_url() if args.reuse else recreate_database()
    os.environ.update(server_env(url))
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()  # the app's modules import only once Django is configured
    from django.db.models import Sum
    from django.db.models.functions import TruncDay, TruncMonth
    from django.test import Client

    from bench.history import HISTORY_SLUG, load_history, loaded_before
    from metering.models import Channel, UsageEvent
    from tenants.models import Scope, Tenant
    from tenants.services import api_key_create, tenant_create

    if args.reuse:
        tenant = Tenant.objects.get(slug=HISTORY_SLUG)
        floor_tenant = tenant_create(
            slug=f"empty-{int(time.time())}", name="Empty", time_zone="Europe/Berlin"
        )
    else:
        tenant = floor_tenant = tenant_create(
            slug=HISTORY_SLUG, name="History", time_zone="Europe/Berlin"
        )
    key = api_key_create(tenant=tenant, name="bench", scopes=[Scope.USAGE_READ]).raw_key
    client = Client(headers={"authorization": f"Bearer {key}"})
    floor_key = api_key_create(tenant=floor_tenant, name="bench", scopes=[Scope.USAGE_READ])
    floor_client = Client(headers={"authorization": f"Bearer {floor_key.raw_key}"})
    now = datetime.now(UTC)
    queries = usage_queries(tenant, now)

    def get(params: dict[str, str], on: Any = client) -> Callable[[], Any]:
        def call() -> Any:
            response = on.get("/api/v1/usage", params)
            assert response.status_code == 200, response.content
            return response.json()

        return call

    channels = list(Channel.objects.filter(active=True))

    def from_events(params: dict[str, str]) -> Callable[[], Any]:
        """The same totals summed from the events: GET /usage's query before rollups."""
        start = datetime.fromisoformat(params["from"])
        end = datetime.fromisoformat(params["to"]) if "to" in params else datetime.now(UTC)

        def call() -> Any:
            return list(
                UsageEvent.objects.for_tenant(tenant)
                .filter(occurred_at__gte=start, occurred_at__lt=end, channel__in=channels)
                .annotate(
                    bucket={"day": TruncDay, "month": TruncMonth}[params["granularity"]](
                        "occurred_at", tzinfo=tenant.tzinfo
                    )
                )
                .values("channel_id", "bucket")
                .annotate(quantity=Sum("quantity"))
            )

        return call

    floor = {
        name: timed(get(params, floor_client), args.repeat) for name, params in queries.items()
    }
    history = loaded_before(tenant) if args.reuse else load_history(tenant, args.events, now)
    loaded, slots = history.events, history.rollups
    load_seconds, backfill_seconds = history.load_seconds, history.backfill_seconds

    loaded_times = {name: timed(get(params), args.repeat) for name, params in queries.items()}
    raw_times = {name: timed(from_events(params), 3) for name, params in queries.items()}
    load = os.getloadavg()

    rows = "\n".join(
        f"| {name} | {floor[name][0]:.1f} ms | {loaded_times[name][0]:.1f} ms "
        f"(worst {loaded_times[name][1]:.1f}) | **{loaded_times[name][0] / floor[name][0]:.2f}×** "
        f"| {raw_times[name][0]:.0f} ms |"
        for name in queries
    )
    how = (
        f"loaded by SQL in {load_seconds:.0f} s), their rollups rebuilt by "
        f"`usage_rollups_rebuild` in {backfill_seconds:.1f} s ({slots:,} rows of quarter hours, "
        "hours and days; the backfill an existing installation runs once in migration "
        "`metering` 0009)"
        if load_seconds is not None and backfill_seconds is not None
        else f"loaded by an earlier run, `--reuse`; {slots:,} rollup rows)"
    )
    floor_is = (
        "a tenant without events in the same database (`--reuse`)"
        if args.reuse
        else "the empty database"
    )
    body = f"""
`python -m bench.usage`: one tenant (Europe/Berlin) with {loaded:,} events over the last
year (three channels; {how}. `GET /api/v1/usage` through the Django test client (server
time, authentication included), median of {args.repeat} after a warm-up; the floor is the same
requests on {floor_is}, in the same run. The last column sums the same totals from the
events, as GET /usage did before rollups.

| request | floor | {loaded:,} events | ratio | from the events |
|---|---:|---:|---:|---:|
{rows}

Load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (other work on the
machine).
"""
    print(body)
    if not args.no_write:
        write_section("Usage rollups: GET /usage", body)


if __name__ == "__main__":
    main()
