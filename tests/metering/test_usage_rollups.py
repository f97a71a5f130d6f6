"""Usage rollups: every path that records usage keeps them equal to the events, and usage
read from them equals usage summed from the events, in any time zone (DST, offsets of
30 and 45 minutes, zones that changed at hh:01), for any range and granularity, on
PostgreSQL's statement and on the portable path."""

from __future__ import annotations

import bisect
import uuid
from datetime import UTC, datetime, timedelta

from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering import sql as metering_sql
from metering.models import BillingPeriod, Channel, UsageEvent, UsageRollup
from metering.services.ingest import usage_record_batch
from metering.services.rollups import (
    SLOT_SECONDS,
    SLOT_SIZES,
    slot_floor,
    usage_rollups_rebuild,
)
from metering.usage import GRANULARITIES, _bucket_starts, usage_totals
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory

# Whole hours with DST, half and three-quarter hours (Lord Howe shifts by 30 minutes),
# and zones that changed their offset at hh:01 (St. John's and Goose Bay until 2011).
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Eucla",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "America/Goose_Bay",
]
# Instants near offset changes of those zones, and one ordinary one.
AROUND = [
    datetime(2005, 4, 3, 3, 31, tzinfo=UTC),  # St. John's at 00:01 local
    datetime(2005, 10, 30, 2, 31, tzinfo=UTC),
    datetime(2008, 3, 9, 4, 1, tzinfo=UTC),  # Goose Bay at 00:01 local
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # Berlin
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),  # Lord Howe, 30 minutes back
    datetime(2026, 9, 26, 14, 0, tzinfo=UTC),  # Chatham
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # New York
    datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
]
DAYS = 4 * 86400


def raw_totals(
    *, tenant: Tenant, start: datetime, end: datetime, granularity: str, channels: list[Channel]
) -> dict[tuple[int, datetime], int]:
    """The reference: each event in [start, end) counted in the bucket whose span of
    instants holds it, summed here from the events themselves."""
    starts = _bucket_starts(start, end, granularity, tenant)
    totals: dict[tuple[int, datetime], int] = {}
    for channel_id, occurred_at, quantity in (
        UsageEvent.objects.for_tenant(tenant)
        .filter(occurred_at__gte=start, occurred_at__lt=end, channel__in=channels)
        .values_list("channel_id", "occurred_at", "quantity")
    ):
        key = (channel_id, starts[bisect.bisect_right(starts, occurred_at) - 1])
        totals[key] = totals.get(key, 0) + quantity
    return totals


def rollup_rows(tenant: Tenant) -> dict[tuple[int, int, datetime], tuple[int, int]]:
    return {
        (r.channel_id, r.slot_seconds, r.slot_start): (r.quantity, r.event_count)
        for r in UsageRollup.objects.for_tenant(tenant)
    }


def events_create(tenant: Tenant, rows: list[tuple[str, int, datetime]]) -> None:
    """Events written straight into the table (reads are under test, not ingestion)."""
    period = BillingPeriod.objects.create(
        tenant=tenant, starts_at=AROUND[0], ends_at=AROUND[-1], label="2000-01"
    )
    channels = {c.code: c for c in Channel.objects.all()}
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                tenant=tenant,
                channel=channels[code],
                period=period,
                client_event_id=f"e{n}",
                quantity=quantity,
                occurred_at=moment,
                content_hash="0" * 64,
                batch_id=uuid.uuid4(),
                received_at=moment,
            )
            for n, (code, quantity, moment) in enumerate(rows)
        ]
    )


seconds = st.integers(min_value=-DAYS, max_value=DAYS)
# Instants often on or near quarter hours and hh:01, where slots and buckets meet.
instant_offsets = st.one_of(
    seconds,
    st.builds(
        lambda q, s: q * SLOT_SECONDS + s,
        st.integers(-384, 384),
        st.sampled_from([-1, 0, 1, 59, 60, 61]),
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    around=st.sampled_from(AROUND),
    events=st.lists(
        st.tuples(
            st.sampled_from(["sms", "email", "call"]),
            st.integers(min_value=1, max_value=1000),
            instant_offsets,
        ),
        max_size=40,
    ),
    start_offset=instant_offsets,
    length=st.one_of(st.integers(min_value=1, max_value=2 * DAYS), st.integers(1, 4 * 3600)),
    granularity=st.sampled_from(GRANULARITIES),
    one_channel=st.booleans(),
    portable=st.booleans(),
)
def test_usage_from_rollups_equals_usage_from_events(
    db, monkeypatch, zone, around, events, start_offset, length, granularity, one_channel, portable
):
    monkeypatch.setattr(metering_sql, "native", lambda: not portable)
    with transaction.atomic():
        tenant = TenantFactory.create(time_zone=zone)
        events_create(
            tenant,
            [(code, quantity, around + timedelta(seconds=at)) for code, quantity, at in events],
        )
        usage_rollups_rebuild(tenant=tenant)
        channels = list(
            Channel.objects.filter(code__in=["sms"] if one_channel else ["sms", "email", "call"])
        )
        start = around + timedelta(seconds=start_offset)
        end = start + timedelta(seconds=length)
        query = {"start": start, "end": end, "granularity": granularity, "channels": channels}
        assert usage_totals(tenant=tenant, **query) == raw_totals(tenant=tenant, **query)
        transaction.set_rollback(True)


def test_a_repeated_hour_is_two_buckets(db):
    """Berlin's clocks went back at 03:00 on 25 October 2026: 02:00-03:00 happened twice,
    once at +02:00 and once at +01:00, and each has its own usage."""
    tenant = TenantFactory.create(time_zone="Europe/Berlin")
    events_create(
        tenant,
        [
            ("sms", 3, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # 02:30 +02:00
            ("sms", 5, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),  # 02:30 +01:00
        ],
    )
    usage_rollups_rebuild(tenant=tenant)
    sms = Channel.objects.get(code="sms")
    totals = usage_totals(
        tenant=tenant,
        start=datetime(2026, 10, 24, 22, 0, tzinfo=UTC),
        end=datetime(2026, 10, 25, 4, 0, tzinfo=UTC),
        granularity="hour",
        channels=[sms],
    )
    assert totals == {
        (sms.pk, datetime(2026, 10, 25, 0, 0, tzinfo=UTC)): 3,
        (sms.pk, datetime(2026, 10, 25, 1, 0, tzinfo=UTC)): 5,
    }


def test_a_year_by_month_reads_whole_days_of_rollups(db):
    """The rollups are read in the largest slots that fit: a month in Berlin is its whole
    UTC days, and the hour before the first (local midnight is 23:00 or 22:00 UTC)."""
    tenant = TenantFactory.create(time_zone="Europe/Berlin")
    sms = Channel.objects.get(code="sms")
    with CaptureQueriesContext(connection) as queries:
        usage_totals(
            tenant=tenant,
            start=datetime(2025, 12, 31, 23, 0, tzinfo=UTC),
            end=datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
            granularity="month",
            channels=[sms],
        )
    assert len(queries) == 1
    sql = queries[0]["sql"]
    # 12 months: each its whole days and one or two hours before them, no quarter hours
    assert sql.count("86400") == 12 and "900" not in sql.split("UNION ALL")[0].split("AS s(")[0]


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    batches=st.lists(
        # Event ids; an id keeps its content, so a repeat is a duplicate, never a conflict.
        st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=15),
        min_size=1,
        max_size=5,
    ),
    commits=st.lists(st.integers(min_value=1, max_value=20), max_size=3),
    portable=st.booleans(),
)
def test_ingestion_and_commits_keep_the_rollups_equal_to_the_events(
    db, monkeypatch, zone, batches, commits, portable
):
    from policies.services.authorization_settle import authorization_commit
    from policies.services.authorize import authorization_create

    monkeypatch.setattr(metering_sql, "native", lambda: not portable)
    with transaction.atomic():
        tenant = TenantFactory.create(time_zone=zone)
        for batch in batches:
            payload = {
                "events": [
                    event(
                        f"id{key}",
                        channel=["sms", "email"][key % 2],
                        quantity=key + 1,
                        occurred_at=(NOW - timedelta(seconds=key * 7919)).isoformat(),
                    )
                    for key in batch
                ]
            }
            usage_record_batch(tenant=tenant, payload=payload, now=NOW)
        for quantity in commits:
            held = authorization_create(
                tenant=tenant, channel_code="sms", quantity=quantity, now=NOW
            )
            if held.status == held.Status.HELD:
                authorization_commit(tenant=tenant, public_id=held.public_id, now=NOW)
        kept = rollup_rows(tenant)
        assert (
            sum(quantity for (_, size, _), (quantity, _) in kept.items() if size == SLOT_SECONDS)
            == (UsageEvent.objects.for_tenant(tenant).aggregate(total=Sum("quantity"))["total"])
        )
        usage_rollups_rebuild(tenant=tenant)
        assert rollup_rows(tenant) == kept
        transaction.set_rollback(True)


def test_a_committed_authorization_adds_to_its_slot(world):
    from policies.services.authorization_settle import authorization_commit
    from policies.services.authorize import authorization_create

    held = authorization_create(tenant=world.alpha, channel_code="sms", quantity=7, now=NOW)
    authorization_commit(tenant=world.alpha, public_id=held.public_id, quantity=4, now=NOW)
    sms = Channel.objects.get(code="sms")
    assert rollup_rows(world.alpha) == {
        (sms.pk, size, slot_floor(held.created_at, size)): (4, 1) for size in SLOT_SIZES
    }


def test_a_refused_batch_adds_nothing(world):
    world.alice_api.ingest([event("a", quantity=2)])
    before = rollup_rows(world.alpha)
    response = world.alice_api.ingest([event("b", quantity=3), event("a", quantity=9)])
    assert response.status_code == 409
    assert rollup_rows(world.alpha) == before
    assert sorted(q for q, _ in before.values()) == [2, 2, 2]  # a quarter hour, hour, day


def test_the_rebuild_command_fills_rollups_of_events_written_around_the_services(world):
    world.alice_api.ingest([event("a", quantity=2)])
    events_create(world.beta, [("call", 4, NOW), ("call", 6, NOW + timedelta(minutes=1))])
    call = Channel.objects.get(code="call")
    assert rollup_rows(world.beta) == {}
    call_command("usage_rollups_rebuild", "--tenant", "beta", verbosity=0)
    assert rollup_rows(world.beta) == beta_rows(call)
    alpha_before = rollup_rows(world.alpha)
    call_command("usage_rollups_rebuild", verbosity=0)
    assert rollup_rows(world.alpha) == alpha_before
    assert rollup_rows(world.beta) == beta_rows(call)


def beta_rows(call: Channel) -> dict[tuple[int, int, datetime], tuple[int, int]]:
    return {
        (call.pk, 900, NOW): (10, 2),
        (call.pk, 3600, NOW): (10, 2),
        (call.pk, 86400, datetime(2026, 11, 20, tzinfo=UTC)): (10, 2),
    }


def test_up_to_now_the_current_quarter_hour_counts_whole_from_its_rollup(world):
    """Without ``to``, the quarter hour holding now is read whole from its rollup — every
    event recorded in it, one stamped a few minutes ahead too, as the balance counts it —
    and never from the events, whose number there grows with the tenant's rate. A ``to``
    given inside it is still cut exactly, from the events."""
    import time_machine

    from metering.usage import usage_chart

    now = datetime(2026, 11, 20, 12, 7, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        answer = world.alice_api.ingest(
            [
                event("q1", quantity=3, occurred_at="2026-11-20T12:01:00+00:00"),
                event("q2", quantity=4, occurred_at="2026-11-20T12:06:00+00:00"),
                event("ahead", quantity=5, occurred_at="2026-11-20T12:10:00+00:00"),
            ]
        )
        assert answer.status_code == 200, answer.content
        with CaptureQueriesContext(connection) as queries:
            up_to_now = world.alice_api.get("/api/v1/usage", {"channel": "sms"})
        assert up_to_now.status_code == 200
        assert up_to_now.json()["series"][0]["total"] == 12
        assert not any("metering_usageevent" in q["sql"] for q in queries), queries
        cut = world.alice_api.get(
            "/api/v1/usage", {"channel": "sms", "to": "2026-11-20T12:07:00Z", "granularity": "hour"}
        )
        assert cut.json()["series"][0]["total"] == 7
        with CaptureQueriesContext(connection) as queries:
            chart = usage_chart(tenant=world.alpha, now=now)
        assert next(c for c in chart.channels if c.channel.code == "sms").total == 12
        assert not any("metering_usageevent" in q["sql"] for q in queries)
