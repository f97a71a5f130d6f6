"""The sweep reads the open periods once, not in every batch: its statements and what it
evaluates do not depend on how many closed periods the tenants have (bench.growth found
each batch scanning every period ever opened)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering.models import Balance, BillingPeriod, Channel
from metering.services.periods import month_bounds
from policies.services import evaluate
from policies.services.evaluate import evaluate_sweep
from tests.conftest import NOW, event
from tests.factories import TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]


def sweep_statements() -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        evaluate_sweep()
    return [query["sql"] for query in captured.captured_queries]


def reading_periods_by_status(statements: list[str]) -> int:
    table = BillingPeriod._meta.db_table
    return sum(f'"{table}"."status" = ' in sql for sql in statements)  # in a WHERE


def test_the_sweep_reads_the_open_periods_once_whatever_the_history(monkeypatch) -> None:
    from metering.services.ingest import usage_record_batch

    monkeypatch.setattr(evaluate, "BATCH", 2)  # several batches from few balances
    monkeypatch.setattr(evaluate, "SWEEP_PERIODS", 2)
    tenants = [TenantFactory.create(slug=f"history-{n}") for n in range(3)]
    for tenant in tenants:
        usage_record_batch(
            tenant=tenant,
            payload={"events": [event(f"e-{c}", channel=c, quantity=1) for c in ("sms", "email")]},
        )
    current = set(Balance.objects.values_list("pk", flat=True))
    Balance.objects.update(version=1, evaluated_version=0)
    before = sweep_statements()
    assert reading_periods_by_status(before) == 1
    assert set(Balance.objects.filter(evaluated_version=1).values_list("pk", flat=True)) == current

    # Two years of closed periods behind each tenant, each with its balances: none is the
    # sweep's, and the sweep's statements stay the same.
    channels = list(Channel.objects.filter(code__in=["sms", "email"]))
    opened = BillingPeriod.objects.order_by("starts_at").first()
    assert opened is not None
    for tenant in tenants:
        for back in range(1, 25):
            month = opened.starts_at.year * 12 + opened.starts_at.month - 1 - back
            bounds = month_bounds(month // 12, month % 12 + 1, tenant.tzinfo)
            period = BillingPeriod.objects.create(
                tenant=tenant, starts_at=bounds.starts_at, ends_at=bounds.ends_at,
                label=bounds.label, status=BillingPeriod.Status.CLOSED, closed_at=NOW,
            )  # fmt: skip
            for channel in channels:
                Balance.objects.create(tenant=tenant, channel=channel, period=period)
    Balance.objects.update(version=1, evaluated_version=0)
    after = sweep_statements()
    assert reading_periods_by_status(after) == 1
    assert len(after) == len(before)
    evaluated = set(Balance.objects.filter(evaluated_version=1).values_list("pk", flat=True))
    assert evaluated == current  # the open periods' balances only
