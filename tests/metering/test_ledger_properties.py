"""Property tests of the ledger: whatever sequence of grants and usage,
each balance equals the sum of its entries and usage draws grants in their order
(soonest expiry first, then lowest priority, then oldest). Usage goes through the
real ingestion service and reservations through the real authorization services,
the write paths production uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.models import Balance, Channel, Grant, LedgerEntry
from metering.services.ingest import usage_record_batch
from metering.services.ledger import balance_lock, grant_create
from metering.services.periods import period_bounds, period_get_or_open
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

grant_op = st.tuples(
    st.just("grant"),
    st.sampled_from([Grant.Kind.PROMOTIONAL, Grant.Kind.PURCHASED, Grant.Kind.INCLUDED]),
    st.integers(min_value=1, max_value=500),  # units
    st.one_of(st.none(), st.integers(min_value=1, max_value=200)),  # expires in hours
    st.integers(min_value=0, max_value=3),  # priority
)
usage_op = st.tuples(st.just("usage"), st.integers(min_value=1, max_value=400))
clock_op = st.tuples(st.just("advance"), st.integers(min_value=1, max_value=48))  # hours


def usage_ingest(*, tenant: Tenant, units: int, now: datetime) -> LedgerEntry:
    """Book ``units`` of email usage the way clients do: one event through ingestion,
    occurring ``now``. Returns the usage entry the batch wrote."""
    result = usage_record_batch(
        tenant=tenant,
        payload={
            "events": [
                event(
                    uuid.uuid4().hex, channel="email", quantity=units, occurred_at=now.isoformat()
                )
            ]
        },
        now=now,
    )
    assert result.accepted == 1
    return LedgerEntry.objects.get(batch_id=result.batch_id, kind=LedgerEntry.Kind.USAGE)


@dataclass
class ModelGrant:
    pk: int
    units: int
    drawn: int
    expires_at: datetime | None
    priority: int
    created_at: datetime


def expected_draws(
    grants: list[ModelGrant], units: int, now: datetime
) -> list[tuple[int | None, int]]:
    """An independent statement of the draw order: soonest expiry (never last),
    lowest priority number, oldest."""
    live = [g for g in grants if (g.expires_at is None or g.expires_at > now) and g.drawn < g.units]
    live.sort(
        key=lambda g: (g.expires_at is None, g.expires_at or now, g.priority, g.created_at, g.pk)
    )
    draws: list[tuple[int | None, int]] = []
    for g in live:
        if units == 0:
            break
        take = min(units, g.units - g.drawn)
        g.drawn += take
        units -= take
        draws.append((g.pk, take))
    if units:
        draws.append((None, units))
    return draws


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(st.one_of(grant_op, usage_op, clock_op), min_size=1, max_size=25))
def test_balance_equals_sum_of_entries_and_draws_follow_grant_order(db, ops):
    with transaction.atomic():
        tenant = TenantFactory.create(time_zone="UTC")
        channel = Channel.objects.get(code="email")
        # This test grants explicitly: no included credits.
        set_rule(tenant, "email", included_units=0, now=START)
        period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=START))
        balance_lock(tenant=tenant, channel=channel, period=period, now=START)
        model: list[ModelGrant] = []
        now = START
        for op in ops:
            if op[0] == "advance":
                # The clock stays inside the period: ingestion books by occurred_at,
                # and an ended period takes no more events.
                now = min(now + timedelta(hours=op[1]), period.ends_at - timedelta(minutes=1))
            elif op[0] == "grant":
                _, kind, units, expires_in, priority = op
                expires_at = now + timedelta(hours=expires_in) if expires_in else None
                grant = grant_create(
                    tenant=tenant,
                    channel=channel,
                    period=period,
                    kind=kind,
                    units=units,
                    expires_at=expires_at,
                    priority=priority,
                    now=now,
                )
                model.append(ModelGrant(grant.pk, units, 0, expires_at, priority, now))
            else:
                entry = usage_ingest(tenant=tenant, units=op[1], now=now)
                expected = expected_draws(model, op[1], now)
                assert [(d["grant"], d["units"]) for d in entry.draws] == expected

        balance = Balance.objects.get(tenant=tenant, channel=channel, period=period)
        sums = LedgerEntry.objects.filter(balance=balance).aggregate(
            available=Sum("available_delta"), used=Sum("used_delta"), reserved=Sum("reserved_delta")
        )
        assert balance.available == (sums["available"] or 0)
        assert balance.used == (sums["used"] or 0)
        assert balance.reserved == (sums["reserved"] or 0)
        # Every grant's drawn units are what the usage entries say they drew.
        drawn: dict[int, int] = {}
        for entry in LedgerEntry.objects.filter(balance=balance, kind=LedgerEntry.Kind.USAGE):
            for draw in entry.draws:
                if draw["grant"] is not None:
                    drawn[draw["grant"]] = drawn.get(draw["grant"], 0) + draw["units"]
        for grant in Grant.objects.filter(balance=balance):
            assert grant.drawn_units == drawn.get(grant.pk, 0) <= grant.units
        # Nothing drawn from grants beyond what they held: available covers the drawn part.
        overage = sum(
            d["units"]
            for e in LedgerEntry.objects.filter(balance=balance, kind="usage")
            for d in e.draws
            if d["grant"] is None
        )
        assert balance.used - overage == sum(drawn.values())
        transaction.set_rollback(True)


reserve_op = st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=300))
commit_op = st.tuples(st.just("commit"), st.integers(min_value=1, max_value=100))  # percent
release_op = st.tuples(st.just("release"))
expire_op = st.tuples(st.just("expire"), st.integers(min_value=1, max_value=30))  # minutes


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    hard_limit=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
    ops=st.lists(
        st.one_of(grant_op, usage_op, reserve_op, commit_op, release_op, expire_op),
        min_size=1,
        max_size=25,
    ),
)
def test_reservations_keep_the_ledger_whole_and_never_pass_the_ceiling(db, hard_limit, ops):
    from metering.models import Authorization
    from policies.services.authorization_settle import (
        authorization_commit,
        authorization_release,
        authorizations_expire,
    )
    from policies.services.authorize import authorization_create

    with transaction.atomic():
        tenant = TenantFactory.create(time_zone="UTC")
        channel = Channel.objects.get(code="email")
        set_rule(
            tenant, "email", included_units=500, hard_limit=hard_limit, action="charge_overage",
            now=START,
        )  # fmt: skip
        period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=START))
        balance_lock(tenant=tenant, channel=channel, period=period, now=START)
        now = START
        held: list[uuid.UUID] = []
        for op in ops:
            balance = Balance.objects.get(tenant=tenant, channel=channel, period=period)
            if op[0] == "grant":
                _, kind, units, expires_in, priority = op
                grant_create(
                    tenant=tenant,
                    channel=channel,
                    period=period,
                    kind=kind,
                    units=units,
                    expires_at=now + timedelta(hours=expires_in) if expires_in else None,
                    priority=priority,
                    now=now,
                )
            elif op[0] == "usage":
                usage_ingest(tenant=tenant, units=op[1], now=now)
            elif op[0] == "reserve":
                answer = authorization_create(
                    tenant=tenant, channel_code="email", quantity=op[1], now=now
                )
                in_use = balance.used + balance.reserved
                if answer.decision != "deny":
                    held.append(answer.public_id)
                    if hard_limit is not None:
                        assert in_use + op[1] <= balance.available + hard_limit  # never past it
                elif hard_limit is not None and answer.reason == "hard_limit_reached":
                    assert in_use + op[1] > balance.available + hard_limit  # no false denial
            elif op[0] == "commit" and held:
                authorization = Authorization.objects.get(public_id=held.pop(0))
                if authorization.status == "held" and (authorization.expires_at or now) > now:
                    quantity = max(1, authorization.quantity * op[1] // 100)
                    authorization_commit(
                        tenant=tenant, public_id=authorization.public_id, quantity=quantity, now=now
                    )
            elif op[0] == "release" and held:
                authorization_release(tenant=tenant, public_id=held.pop(0), now=now)
            elif op[0] == "expire":
                now += timedelta(minutes=op[1])
                authorizations_expire(now=now)

        balance = Balance.objects.get(tenant=tenant, channel=channel, period=period)
        sums = LedgerEntry.objects.filter(balance=balance).aggregate(
            available=Sum("available_delta"), used=Sum("used_delta"), reserved=Sum("reserved_delta")
        )
        assert (balance.available, balance.used, balance.reserved) == (
            sums["available"] or 0,
            sums["used"] or 0,
            sums["reserved"] or 0,
        )
        holding = Authorization.objects.filter(tenant=tenant, status="held").aggregate(
            q=Sum("quantity")
        )["q"]
        assert balance.reserved == (holding or 0)
        transaction.set_rollback(True)
