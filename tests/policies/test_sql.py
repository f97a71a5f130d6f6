"""policies.sql: the one-statement authorization on PostgreSQL — it books through
metering's SQL (the balance moves with a hold entry, as the ledger does), names its
tables from the models and binds every enum value and reason."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import Sum

from metering.models import Authorization, Balance, LedgerEntry
from metering.services.ingest import usage_record_batch
from policies import sql as policies_sql
from policies.models import LimitRule
from policies.services.authorization_fast import Reason
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
QUOTED_WORD = re.compile(r"'[A-Za-z_]+'")


def values(tenant: Any, quantity: int, *, key: str | None = None) -> dict[str, Any]:
    return {
        "code": "sms",
        "tenant": tenant.pk,
        "now": NOW,
        "quantity": quantity,
        "public_id": uuid.uuid4(),
        "key": key,
        "expires": NOW + timedelta(minutes=10),
        "reason_overage": Reason.OVERAGE,
        "reason_suspended": Reason.CHANNEL_SUSPENDED,
        "reason_hard_limit": Reason.HARD_LIMIT_REACHED,
    }


@pytest.fixture
def tenant(db):
    """10 of 100 included sms units used this period."""
    tenant = TenantFactory.create(slug="fast-sql")
    set_rule(tenant, "sms", included_units=100, action="notify_only", hard_limit=50)
    LimitRule.objects.filter(tenant=tenant).update(effective_from=NOW - timedelta(days=30))
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("a", quantity=10, occurred_at=NOW.isoformat())]},
        now=NOW,
    )
    return tenant


def test_the_statement_names_its_tables_from_the_models_and_binds_every_value():
    sql = policies_sql.fast_authorize_sql()
    for table in (
        "metering_channel",
        "metering_billingperiod",
        "policies_limitrule",
        "metering_balance",
        "metering_authorization",
        "metering_ledgerentry",
    ):
        assert table in sql
    assert not QUOTED_WORD.findall(sql)
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(policies_sql.FAST_AUTHORIZE_PARAMETERS)


def test_a_reservation_moves_the_balance_with_its_hold_entry(tenant):
    row = policies_sql.fast_authorize(values(tenant, 30))
    assert row is not None
    authorization_id, _, balance_id, decision, reason, status, remaining, overage, _ = row
    assert (decision, reason, status, remaining, overage) == ("allow", "", "held", 60, 0)
    balance = Balance.objects.get(pk=balance_id)
    assert (balance.used, balance.reserved) == (10, 30)
    hold = LedgerEntry.objects.get(authorization_id=authorization_id)
    assert (hold.kind, hold.reserved_delta, hold.balance_id) == ("hold", 30, balance_id)
    # Booked through the ledger's SQL: the balance is still the sum of its entries.
    sums = LedgerEntry.objects.filter(balance=balance).aggregate(
        available=Sum("available_delta"), used=Sum("used_delta"), reserved=Sum("reserved_delta")
    )
    assert sums == {"available": 100, "used": 10, "reserved": 30}
    assert Authorization.objects.get(pk=authorization_id).status == "held"


def test_past_the_credits_it_allows_overage_with_the_callers_reason(tenant):
    row = policies_sql.fast_authorize(values(tenant, 120))
    assert row is not None
    assert row[3:8] == ("allow_overage", Reason.OVERAGE, "held", 0, 30)


def test_past_the_hard_limit_it_stores_a_denial_worded_by_the_caller(tenant):
    row = policies_sql.fast_authorize(values(tenant, 141))
    assert row is not None
    assert row[3:8] == ("deny", Reason.HARD_LIMIT_REACHED, "denied", 90, 0)
    assert Balance.objects.get(pk=row[2]).reserved == 0
    assert not LedgerEntry.objects.filter(authorization_id=row[0]).exists()


def test_a_suspend_rule_denies_as_channel_suspended(tenant):
    set_rule(tenant, "sms", action="suspend")
    LimitRule.objects.filter(tenant=tenant).update(effective_from=NOW - timedelta(days=30))
    row = policies_sql.fast_authorize(values(tenant, 91))
    assert row is not None
    assert row[3:6] == ("deny", Reason.CHANNEL_SUSPENDED, "denied")


def test_without_a_balance_this_period_it_leaves_the_decision_to_the_full_path(tenant):
    assert policies_sql.fast_authorize({**values(tenant, 1), "code": "email"}) is None
    assert not Authorization.objects.exists()
