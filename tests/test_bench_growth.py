"""bench.growth's loader at a tiny size: what it writes is what ingestion would have
written — every balance equal to the sum of its ledger entries, every grant's drawn units
the sum of the draws on it, the rollups the events summed (the same rows as a rebuild) —
and it grows a load without writing an event twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import Count, F, Sum

from bench import growth_load as load
from bench.growth import fits
from metering.models import Balance, BillingPeriod, Grant, LedgerEntry, UsageEvent, UsageRollup
from metering.services.rollups import SLOT_SIZES, usage_rollups_rebuild

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


def ledger_totals() -> dict[int, tuple[int, int, int]]:
    return {
        row["balance_id"]: (row["a"], row["u"], row["r"])
        for row in LedgerEntry.objects.values("balance_id").annotate(
            a=Sum("available_delta"), u=Sum("used_delta"), r=Sum("reserved_delta")
        )
    }


def test_the_loader_writes_events_ledger_balances_and_rollups_that_agree() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the loader is PostgreSQL's SQL")
    # Few included credits, so that usage also runs past them (draws without a grant).
    scaffold = load.scaffold(tenants=20, now=NOW, included=5)
    assert (scaffold.tenants, scaffold.periods, scaffold.balances) == (20, 20 * 37, 20 * 37 * 3)
    assert load.events_load(target=1200, now=NOW, chunk=500).added == 1200  # 3 chunks
    step = load.events_load(target=2000, now=NOW, chunk=500)  # grown, not loaded again
    assert (step.events, step.added) == (2000, 800)
    assert load.loaded_events() == 2000

    events = UsageEvent.objects.all()
    assert events.count() == 2000
    assert events.values("tenant_id", "client_event_id").distinct().count() == 2000
    history_start = load.history_start(NOW)
    assert not events.filter(occurred_at__lt=history_start).exists()
    assert not events.filter(occurred_at__gte=NOW).exists()
    # Each event in its tenant's period holding its instant.
    assert not events.exclude(period__tenant_id=F("tenant_id")).exists()
    assert not events.exclude(
        occurred_at__gte=F("period__starts_at"), occurred_at__lt=F("period__ends_at")
    ).exists()
    heavy = load.probe_tenants()[0]
    by_tenant = Counter(events.values_list("tenant_id", flat=True))
    assert by_tenant[heavy.pk] == max(by_tenant.values())  # a tenth of the batches: heavy

    # Every balance equals the sum of its entries; usage is the events' own.
    totals = ledger_totals()
    balances = list(Balance.objects.all())
    assert len(balances) == 20 * 37 * 3
    for balance in balances:
        assert totals[balance.pk] == (balance.available, balance.used, balance.reserved)
        assert balance.evaluated_version == balance.version
    quantity = events.aggregate(q=Sum("quantity"))["q"]
    usage = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE)
    assert usage.aggregate(u=Sum("used_delta"), n=Sum("event_count")) == {
        "u": quantity,
        "n": 2000,
    }
    # One usage entry per batch × balance, carrying the batch's id as its events do.
    assert usage.count() == events.values("batch_id", "channel_id", "period_id").distinct().count()
    per_entry = {
        (row["batch_id"], row["channel_id"], row["period_id"]): row["q"]
        for row in events.values("batch_id", "channel_id", "period_id").annotate(q=Sum("quantity"))
    }
    for entry in usage.select_related("balance"):
        key = (entry.batch_id, entry.balance.channel_id, entry.balance.period_id)
        assert per_entry[key] == entry.used_delta
        assert sum(draw["units"] for draw in entry.draws) == entry.used_delta

    # Draws: each grant's drawn units are the draws on it, within its units; overage is
    # what the grant did not cover.
    drawn: Counter[int] = Counter()
    for entry in usage:
        for draw in entry.draws:
            if draw["grant"] is not None:
                drawn[draw["grant"]] += draw["units"]
    grants = list(Grant.objects.select_related("balance"))
    assert len(grants) == len(balances)
    assert any(grant.drawn_units == grant.units for grant in grants)  # all drawn: overage
    assert any(len(entry.draws) == 2 for entry in usage)  # a grant's rest, then overage
    for grant in grants:
        assert grant.drawn_units == drawn[grant.pk] == min(grant.units, grant.balance.used)

    # Rollups: the events summed in every slot size, exactly the rows a rebuild writes.
    written = set(
        UsageRollup.objects.values_list(
            "tenant_id", "channel_id", "slot_seconds", "slot_start", "quantity", "event_count"
        )
    )
    for size in SLOT_SIZES:
        sums = UsageRollup.objects.filter(slot_seconds=size).aggregate(
            q=Sum("quantity"), n=Sum("event_count")
        )
        assert sums == {"q": quantity, "n": 2000}
    usage_rollups_rebuild()
    rebuilt = set(
        UsageRollup.objects.values_list(
            "tenant_id", "channel_id", "slot_seconds", "slot_start", "quantity", "event_count"
        )
    )
    assert written == rebuilt

    # Periods: three years, the current one open.
    assert set(
        BillingPeriod.objects.values("status").annotate(n=Count("id")).values_list("status", "n")
    ) == {("open", 20), ("closed", 20 * 36)}
    # Partitioned by month (where the checkout is): every row in its month's partition.
    stray = load.default_partition_rows()
    assert stray is None or (stray and not any(stray.values())), stray
    keys = load.key_model()
    if keys is not None:  # the idempotency keys apart: only the open period's are kept
        open_events = events.filter(period__status="open").count()
        assert keys._default_manager.count() == open_events


def test_fits_extrapolate_a_line_and_a_log() -> None:
    linear, log = fits([0, 10, 50], [1.0, 2.0, 6.0])
    assert linear == pytest.approx(1.0 + 0.1 * 1_000_000_000)
    # In log10: 2 at 10, 6 at 50 — a billion is log10 9 decades, so 2 + 4 / log10(5) * 8.
    assert log == pytest.approx(2.0 + 4.0 / 0.69897 * 8, rel=1e-4)
    assert fits([0], [1.0]) == (None, None)
