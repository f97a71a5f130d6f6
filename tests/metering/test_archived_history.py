"""What outlives the events retention archives: the rollups of their months, and the
final overage charges of their closed periods (PostgreSQL: only it partitions)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection  # noqa: F401 - the skip condition reads it
from django.db.models import Sum

from metering.models import Balance, BillingPeriod, Channel, LedgerEntry, UsageEvent, UsageRollup
from metering.services.ingest import usage_record_batch
from metering.services.partitions import partitions_archive, partitions_ensure
from metering.services.rollups import usage_rollups_rebuild
from policies.models import OverageCharge
from policies.services.close import periods_close_due
from policies.services.fees import (
    fee_schedule_create,
    fee_schedule_notify,
    fee_spans,
    overage_fee,
)
from policies.services.overage import overage_charge_refresh
from tenants.models import Tenant
from tests.conftest import Api, event, issue
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'"),
]

JANUARY, MARCH = datetime(2029, 1, 10, tzinfo=UTC), datetime(2029, 3, 10, tzinfo=UTC)
NOW = datetime(2029, 3, 15, tzinfo=UTC)  # January is past one month of retention


def record(tenant: Tenant, client_id: str, quantity: int, at: datetime) -> None:
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event(client_id, quantity=quantity, occurred_at=at.isoformat())]},
        now=at,
    )


def units_by_month(tenant: Tenant) -> dict[tuple[int, str], int]:
    """Units of the tenant's rollups per (slot size, month)."""
    totals: dict[tuple[int, str], int] = {}
    for size, start, quantity in UsageRollup.objects.filter(tenant=tenant).values_list(
        "slot_seconds", "slot_start", "quantity"
    ):
        key = (size, f"{start:%Y-%m}")
        totals[key] = totals.get(key, 0) + quantity
    return totals


def archive_january(settings) -> None:
    settings.USAGE_RETENTION_MONTHS = 1
    periods_close_due(now=datetime(2029, 2, 2, tzinfo=UTC))
    assert "metering_usageevent_p2029_01" in partitions_archive(now=NOW)


def test_a_rebuild_after_archiving_keeps_the_archived_months_rollups(settings, capsys):
    partitions_ensure(start=JANUARY, end=datetime(2029, 4, 1, tzinfo=UTC))
    tenant = TenantFactory.create(slug="history", time_zone="UTC")
    record(tenant, "jan-1", 4, JANUARY)
    record(tenant, "mar-1", 5, MARCH)
    before = units_by_month(tenant)
    assert before[(86400, "2029-01")] == 4 and before[(900, "2029-03")] == 5
    archive_january(settings)
    assert list(UsageEvent.objects.filter(tenant=tenant).values_list("quantity", flat=True)) == [5]

    usage_rollups_rebuild()
    assert units_by_month(tenant) == before
    usage_rollups_rebuild(tenant=tenant)
    assert units_by_month(tenant) == before
    call_command("usage_rollups_rebuild")
    out = capsys.readouterr().out
    assert "of the" in out and "months with attached events" in out and "kept" in out
    assert units_by_month(tenant) == before

    # An attached month is rebuilt from its events: a rollup written around them is redone.
    UsageRollup.objects.filter(tenant=tenant, slot_start__gte=MARCH).update(quantity=999)
    usage_rollups_rebuild(tenant=tenant)
    assert units_by_month(tenant) == before


def test_an_archived_periods_final_charge_is_never_recomputed_from_its_missing_entries(
    settings,
):
    """The fee of overage is priced from the ledger when the schedule changed during the
    period. Once the period's entries are archived, that price can no longer be computed
    — and nothing computes it again: the close finalised the charge, and a refresh of a
    finalised charge returns it as it is."""
    partitions_ensure(start=JANUARY, end=datetime(2029, 4, 1, tzinfo=UTC))
    tenant = TenantFactory.create(slug="fees", time_zone="UTC")
    sms = Channel.objects.get(code="sms")
    set_rule(tenant, "sms", included_units=100, action="charge_overage",
             now=datetime(2028, 12, 1, tzinfo=UTC))  # fmt: skip
    for price, notified in (("1.00", datetime(2028, 12, 1, tzinfo=UTC)),
                            ("3.00", datetime(2029, 1, 1, tzinfo=UTC))):  # fmt: skip
        fee_schedule_notify(
            schedule=fee_schedule_create(
                channel=sms, name=f"SMS {price}", tiers=[(None, price)], now=notified
            ),
            now=notified,  # in effect FEE_NOTICE_DAYS on: 15 Dec, then 15 Jan
        )
    record(tenant, "early", 110, JANUARY)  # 10 over at 1.00
    record(tenant, "late", 10, datetime(2029, 1, 20, tzinfo=UTC))  # 10 over at 3.00
    archive_january(settings)
    january = BillingPeriod.objects.get(tenant=tenant, label="2029-01")
    charge = OverageCharge.objects.get(tenant=tenant, period=january)
    assert charge.finalized_at is not None
    assert (charge.units, charge.amount) == (20, Decimal("40.00"))

    # Priced now, the archived entries would be missing.
    balance = Balance.objects.get(tenant=tenant, period=january, channel=sms)
    assert not LedgerEntry.objects.filter(balance=balance).exists()
    assert balance.used == 120
    spans = fee_spans(tenant=tenant, channel=sms, until=january.ends_at)
    repriced = overage_fee(balance=balance, units=20, spans=spans, currency="EUR",
                           period_start=january.starts_at)  # fmt: skip
    assert repriced.amount != Decimal("40.00")
    # What could price it again does not.
    again = overage_charge_refresh(tenant=tenant, channel=sms, period=january, now=NOW)
    assert again is not None and (again.units, again.amount) == (20, Decimal("40.00"))
    periods_close_due(now=NOW)
    charge.refresh_from_db()
    assert (charge.units, charge.amount) == (20, Decimal("40.00"))
    assert Balance.objects.filter(pk=balance.pk).aggregate(u=Sum("used"))["u"] == 120


def test_a_usage_read_cutting_an_archived_quarter_hour_is_refused_not_answered_short(settings):
    """Inside a quarter hour, a read's edge sums the events; an archived month has only its
    rollups left, so an edge there must lie on a quarter hour — else a 400 naming it, never
    a total without the cut part. Whole quarter hours read the rollups as before."""
    partitions_ensure(start=JANUARY, end=datetime(2029, 4, 1, tzinfo=UTC))
    tenant = TenantFactory.create(slug="edges", time_zone="UTC")
    record(tenant, "jan-early", 4, datetime(2029, 1, 10, 10, 5, tzinfo=UTC))
    record(tenant, "jan-late", 3, datetime(2029, 1, 10, 10, 10, tzinfo=UTC))
    record(tenant, "mar-early", 5, datetime(2029, 3, 10, 10, 5, tzinfo=UTC))
    record(tenant, "mar-late", 6, datetime(2029, 3, 10, 10, 10, tzinfo=UTC))
    archive_january(settings)
    api = Api(issue(tenant).raw_key)

    def total(start: str, end: str) -> tuple[int, object]:
        with time_machine.travel(NOW, tick=False):
            answer = api.get(
                "/api/v1/usage",
                {"from": start, "to": end, "granularity": "month", "channel": "sms"},
            )
        body = answer.json()
        return answer.status_code, body["series"][0]["total"] if answer.status_code == 200 else body

    # Whole quarter hours of the archived month: its rollups, exact.
    assert total("2029-01-10T10:00:00Z", "2029-01-10T10:15:00Z") == (200, 7)
    assert total("2029-01-01T00:00:00Z", "2029-03-10T10:15:00Z")[0] == 200
    # Cut inside an archived quarter hour: refused, naming the parameter and the month.
    status, problem = total("2029-01-10T10:07:00Z", "2029-01-10T10:15:00Z")
    assert status == 400 and "2029-01" in str(problem) and "from" in str(problem)
    status, problem = total("2029-01-10T10:00:00Z", "2029-01-10T10:07:00Z")
    assert status == 400 and "2029-01" in str(problem) and "to" in str(problem)
    # The same cut in a month whose events are still attached reads them, as before.
    assert total("2029-03-10T10:07:00Z", "2029-03-10T10:15:00Z") == (200, 6)
