"""Management commands: create_tenant, create_api_key, seed_demo."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from metering.models import Balance, BillingPeriod, LedgerEntry, UsageEvent
from metering.services.ingest import usage_record_batch
from metering.services.periods import grace, period_bounds
from notifications.models import Delivery, Notification
from policies.models import LimitRequest, OverageCharge
from policies.services.evaluate import evaluate_pending
from tenants.models import ApiKey, Tenant
from tenants.services import tenant_create
from tests.conftest import Api, event


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_tenant_with_profile(db):
    out, _ = run(
        "create_tenant",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--industry",
        "finance",
        "--size-band",
        "250-999",
        "--language",
        "en",
    )
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.industry, tenant.size_band, tenant.language) == ("finance", "250-999", "en")
    assert "acme" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--slug", "bad slug", "--name", "X"],
        ["--slug", "x", "--name", "X", "--time-zone", "Mars/Olympus"],
    ],
)
def test_create_tenant_refuses_bad_input(db, args):
    with pytest.raises(CommandError):
        run("create_tenant", *args)
    assert not Tenant.objects.exists()


def test_create_tenant_refuses_a_taken_slug(db):
    run("create_tenant", "--slug", "acme", "--name", "Acme")
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "--slug", "acme", "--name", "Other")


def test_create_api_key_prints_a_working_key_once(db):
    run("create_tenant", "--slug", "acme", "--name", "Acme")
    out, err = run("create_api_key", "--tenant", "acme", "--scopes", "usage:read")
    raw_key = out.strip()
    assert raw_key.startswith("cg_")
    assert "shown once" in err
    assert Api(raw_key).get("/api/v1/balances").status_code == 200
    assert ApiKey.objects.get().scopes == ["usage:read"]


def test_create_api_key_without_tenant_is_a_platform_key(db):
    out, _ = run("create_api_key", "--scopes", "billing:read")
    assert ApiKey.objects.get().tenant is None
    assert out.strip().startswith("cg_")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody", "--scopes", "usage:read"], "No tenant"),
        (["--scopes", "usage:read,root"], "Unknown scopes"),
        (["--scopes", ","], "at least one scope"),
    ],
)
def test_create_api_key_refuses_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()


def test_seed_demo_is_safe_to_run_twice(db):
    out, _ = run("seed_demo")
    assert "staff / " in out and "customer / " in out
    counts = (
        Tenant.objects.count(),
        UsageEvent.objects.count(),
        LedgerEntry.objects.count(),
        Balance.objects.count(),
    )
    assert counts[0] == 12 and counts[1] > 5000
    statuses = {b.used > b.available for b in Balance.objects.filter(period__status="open")}
    assert statuses == {True, False}  # some tenants over their credits, most not
    run("seed_demo")
    assert counts == (
        Tenant.objects.count(),
        UsageEvent.objects.count(),
        LedgerEntry.objects.count(),
        Balance.objects.count(),
    )
    # One open limit request of the first tenant, in the console's queue.
    request = LimitRequest.objects.get()
    assert (request.status, request.channel.code, request.requested_by.username) == (
        "open", "sms", "customer",
    )  # fmt: skip


def test_seed_demo_finalises_the_charges_of_the_periods_it_closes(db):
    """The demo closes past months as the worker does (``periods_close_due``), not only
    their status: a demo tenant over its credits last month has that charge final."""
    tenant = tenant_create(slug="brightcart", name="BrightCart Ltd")
    last_month = period_bounds(tenant=tenant, at=timezone.now()).starts_at - timedelta(days=20)
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("past-1", quantity=99999, occurred_at=last_month.isoformat())]},
        now=last_month + timedelta(minutes=1),
    )
    over = Balance.objects.get(tenant=tenant, channel__code="sms").overage_units
    assert over > 0
    run("seed_demo")
    charge = OverageCharge.objects.get(tenant=tenant)
    assert (charge.units, charge.period.status) == (over, "closed")
    assert charge.finalized_at is not None
    assert not BillingPeriod.objects.filter(
        status="open", ends_at__lte=timezone.now() - grace()
    ).exists()


def test_the_demos_first_start_sends_at_most_one_message_per_tenant_and_channel(db):
    """Seeding records the demo's past without sending it (welcomes, back-dated fee
    notices, the closes of past months); the worker's first evaluation then sends what
    the current figures call for: one message per tenant and channel at most."""
    started = timezone.now()
    run("seed_demo")
    assert not Notification.objects.filter(covered_by="").exists()
    assert not Delivery.objects.exists()
    evaluate_pending()
    messages = Notification.objects.filter(covered_by="")
    assert messages.exists()
    per_pair = Counter((n.tenant_id, n.payload.get("channel")) for n in messages)
    assert max(per_pair.values()) == 1, per_pair
    assert all(n.created_at >= started for n in messages)
    assert not Delivery.objects.exclude(notification__in=messages).exists()
