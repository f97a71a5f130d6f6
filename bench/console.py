"""The staff console's start page, tenant changelist and tenant page: queries and time
whatever the number of tenants.

    python -m bench.console

Renders the start page (its seven work queues, one query each), the changelist (50 a page,
usage badges per channel, pending overage) and a tenant's page (its summary of twelve
periods) with 10, 1,000 and 10,000 tenants with three months of balances and a limit
recommendation per channel each; the floor, in the same run, is the admin's page of one
app (its list of models, no queue). Writes docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from bench.common import recreate_database, server_env, write_section


def page_timing(client: Any, path: str, repeat: int = 5) -> tuple[int, float]:
    """Queries and mean seconds of ``repeat`` GETs of ``path`` after a warm-up (also used
    by ``bench.growth``)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        for _ in range(repeat):
            assert client.get(path).status_code == 200
        elapsed = (time.perf_counter() - started) / repeat
    return len(queries) // repeat, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = recreate_database()
    os.environ.update(server_env(url))
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from metering.models import Balance, BillingPeriod, Channel
    from metering.services.periods import month_bounds
    from policies.models import LimitRecommendation
    from tenants.models import Tenant

    user = User.objects.create_superuser("bench", "b@example.com", "x")
    client = Client()
    client.force_login(user)
    channels = list(Channel.objects.filter(active=True))
    now = timezone.now()

    def grow(total: int) -> None:
        have = Tenant.objects.count()
        new = Tenant.objects.bulk_create(
            [Tenant(slug=f"b{n}", name=f"Bench {n}", time_zone="UTC") for n in range(have, total)],
            batch_size=2000,
        )
        periods = []
        for tenant in new:
            for back in range(3):
                month = (now.month - back - 1) % 12 + 1
                year = now.year - (1 if now.month - back < 1 else 0)
                b = month_bounds(year, month, tenant.tzinfo)
                periods.append(
                    BillingPeriod(
                        tenant=tenant, starts_at=b.starts_at, ends_at=b.ends_at, label=b.label
                    )
                )
        BillingPeriod.objects.bulk_create(periods, batch_size=5000)
        Balance.objects.bulk_create(
            [
                Balance(
                    tenant_id=p.tenant_id,
                    channel=c,
                    period=p,
                    available=1000,
                    used=(p.pk * 37) % 1300,
                )
                for p in BillingPeriod.objects.filter(tenant__in=new)
                for c in channels
            ],
            batch_size=5000,
        )
        LimitRecommendation.objects.bulk_create(
            [
                LimitRecommendation(
                    tenant=tenant, channel=c, computed_at=now, current_included=1000,
                    suggested_included=700 + (tenant.pk * 53) % 600, suggested_hard_limit=100,
                    cohort="bench", cohort_size=total, explanation="bench",
                )
                for tenant in new
                for c in channels
            ],
            batch_size=5000,
        )  # fmt: skip
        with connection.cursor() as cursor:  # as autovacuum would after such a load
            cursor.execute("ANALYZE")

    def queues_alone() -> tuple[int, float]:
        from console.queues import work_queues

        work_queues(user=user)
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            for _ in range(5):
                work_queues(user=user)
            elapsed = (time.perf_counter() - started) / 5
        return len(queries) // 5, elapsed

    def measure(path: str) -> tuple[int, float]:
        return page_timing(client, path)

    rows = []
    for total in (10, 1_000, 10_000):
        grow(total)
        figures = [
            measure("/admin/tenants/"),
            measure("/admin/"),
            queues_alone(),
            measure("/admin/tenants/tenant/"),
            measure("/admin/tenants/tenant/?usage=near"),
            measure(f"/admin/tenants/tenant/{Tenant.objects.order_by('pk').first().pk}/change/"),
        ]
        cells = " | ".join(f"{seconds * 1000:.0f} ms ({count})" for count, seconds in figures)
        rows.append(f"| {total:,} | {cells} |")
    text = "\n".join(
        [
            "Tenants with three months of balances and a limit recommendation on every active "
            "channel; a page of 50.",
            "",
            "| tenants | floor: an app's page (queries) | start page (queries) "
            "| its seven queues alone (queries) | tenant changelist (queries) "
            "| filtered to near a limit (queries) | a tenant's page (queries) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Each page's query count stays the same whatever the number of tenants and the "
            "length of their history (also pinned by tests): the start page's seven queues "
            "are one query each over every tenant.",
        ]
    )
    print(text)
    if not args.no_write:
        write_section("Staff console", text)


if __name__ == "__main__":
    main()
