"""Usage racing the close of its billing period, with real threads against PostgreSQL.

A booking and the close of its period serialize on the period row: whichever takes it
first finishes first. Usage is never booked into a period whose charge is final.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction

from creditguard.errors import Unprocessable
from metering.models import Balance, BillingPeriod, Channel, UsageEvent, UsageEventKey
from metering.services.ingest import usage_record_batch
from policies.models import OverageCharge
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# A UTC tenant's November ends at 1 Dec 00:00; with one hour of grace it closes at 01:00.
INSIDE_GRACE = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
CLOSING_TIME = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
WAIT_SECONDS = 10


class InThread:
    """Run ``work`` in a thread on a database connection of its own; keep its result
    or its exception, and the id of its PostgreSQL backend to watch its lock waits."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.pid: int | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._started.wait(WAIT_SECONDS)

    def _run(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self._started.set()
            self.result = self.work()
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc
        finally:
            self._started.set()
            connection.close()

    def waits_for_a_lock(self) -> bool:
        """Wait until the thread is blocked on a lock (True) or has finished (False)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                return False
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [self.pid]
                )
                row = cursor.fetchone()
            if row is not None and row[0] == "Lock":
                return True
            time.sleep(0.01)
        raise AssertionError("the thread neither waited for a lock nor finished")

    def join(self) -> Any:
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "the thread is still running"
        return self.result


class Held:
    """A transaction in its own thread that takes some locks with ``take`` and keeps
    them until ``release()``; then it commits, or rolls back with ``roll_back``."""

    def __init__(self, take: Callable[[], None], *, roll_back: bool = False) -> None:
        self._taken = threading.Event()
        self._release = threading.Event()

        def hold() -> None:
            with transaction.atomic():
                take()
                self._taken.set()
                self._release.wait(WAIT_SECONDS)
                if roll_back:
                    transaction.set_rollback(True)

        self.holder = InThread(hold)
        assert self._taken.wait(WAIT_SECONDS), self.holder.error

    def release(self) -> None:
        self._release.set()
        self.holder.join()
        assert self.holder.error is None, self.holder.error


@pytest.fixture(autouse=True)
def _release_held_locks(monkeypatch) -> Any:
    """A test that fails before it releases its locks must not leave them held while the
    database is flushed for the next test."""
    held: list[Held] = []
    original = Held.__init__

    def remember(self: Held, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        held.append(self)

    monkeypatch.setattr(Held, "__init__", remember)
    yield
    for each in held:
        each._release.set()
        each.holder.thread.join(WAIT_SECONDS)


def november_with_overage(slug: str) -> Tenant:
    """A tenant 30 SMS over its 100 included in November 2026, at 1.00 a unit."""
    sms = Channel.objects.get(code="sms")
    tenant = TenantFactory.create(slug=slug, time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, action="charge_overage",
             now=datetime(2026, 11, 2, tzinfo=UTC))  # fmt: skip
    fee_schedule_notify(
        schedule=fee_schedule_create(
            channel=sms, name="SMS", tiers=[(None, "1.00")], now=datetime(2026, 10, 1, tzinfo=UTC)
        ),
        now=datetime(2026, 10, 1, tzinfo=UTC),  # in effect from 15 October, FEE_NOTICE_DAYS on
    )
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("early", quantity=130, occurred_at="2026-11-10T00:00:00Z")]},
        now=datetime(2026, 11, 10, 1, tzinfo=UTC),
    )
    return tenant


def november_sms(tenant: Tenant) -> Balance:
    return Balance.objects.get(tenant=tenant, channel__code="sms", period__label="2026-11")


def lock_november_sms(tenant: Tenant) -> Callable[[], None]:
    def take() -> None:
        Balance.objects.select_for_update().get(pk=november_sms(tenant).pk)

    return take


def late_batch() -> dict[str, Any]:
    return {"events": [event("late", quantity=100, occurred_at="2026-11-30T23:00:00Z")]}


def charge_of(tenant: Tenant) -> tuple[int, Decimal, bool]:
    charge = OverageCharge.objects.get(tenant=tenant, period__label="2026-11")
    return charge.units, charge.amount, charge.finalized_at is not None


def test_ingestion_waiting_behind_a_close_is_refused_and_records_nothing():
    tenant = november_with_overage("refused")
    # The close flips the period's status, then waits for the balance to finalise its charge.
    blocker = Held(lock_november_sms(tenant))
    close = InThread(lambda: periods_close_due(now=CLOSING_TIME))
    assert close.waits_for_a_lock()
    # A late batch still inside the grace window arrives while the close is under way.
    ingestion = InThread(
        lambda: usage_record_batch(tenant=tenant, payload=late_batch(), now=INSIDE_GRACE)
    )
    assert ingestion.waits_for_a_lock()
    blocker.release()

    assert close.join() == 1
    ingestion.join()
    assert isinstance(ingestion.error, Unprocessable), ingestion.error
    assert ingestion.error.extra == {"code": "period_closed"}
    assert not UsageEvent.objects.filter(tenant=tenant, client_event_id="late").exists()
    assert november_sms(tenant).used == 130
    assert charge_of(tenant) == (30, Decimal("30.00"), True)


def test_ingestion_that_took_the_period_first_is_counted_in_the_final_charge():
    tenant = november_with_overage("counted")
    november = BillingPeriod.objects.get(tenant=tenant, label="2026-11")

    def insert_the_same_id() -> None:
        # Ingestion claims an id in the keys table before it writes the event.
        UsageEventKey.objects.create(
            tenant=tenant, period=november, client_event_id="late", content_hash="x" * 64,
            received_at=INSIDE_GRACE,
        )  # fmt: skip

    # An uncommitted insert of the same event id makes the batch wait inside its insert,
    # after it has checked the period and before it books.
    blocker = Held(insert_the_same_id, roll_back=True)
    ingestion = InThread(
        lambda: usage_record_batch(tenant=tenant, payload=late_batch(), now=INSIDE_GRACE)
    )
    assert ingestion.waits_for_a_lock()
    close = InThread(lambda: periods_close_due(now=CLOSING_TIME))
    assert close.waits_for_a_lock(), "the close must wait for the booking"
    blocker.release()

    assert ingestion.join() is not None, ingestion.error
    assert ingestion.result.accepted == 1
    assert close.join() == 1, close.error
    assert november_sms(tenant).used == 230
    assert charge_of(tenant) == (130, Decimal("130.00"), True)


def test_a_period_whose_lock_cannot_be_had_is_left_for_the_next_run_the_others_close():
    busy = november_with_overage("busy")
    free = november_with_overage("free")
    busy_november = BillingPeriod.objects.get(tenant=busy, label="2026-11")

    # A booking holds the busy tenant's period, as ingestion does, longer than a worker's
    # lock_timeout.
    def share_the_period() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {BillingPeriod._meta.db_table} WHERE id = %s FOR SHARE",
                [busy_november.pk],
            )

    blocker = Held(share_the_period)

    def close_as_a_worker() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        return periods_close_due(now=CLOSING_TIME)

    try:
        close = InThread(close_as_a_worker)
        assert close.join() == 1, close.error
    finally:
        blocker.release()
    assert BillingPeriod.objects.get(pk=busy_november.pk).status == BillingPeriod.Status.OPEN
    assert charge_of(free) == (30, Decimal("30.00"), True)
    # The next run closes it.
    assert periods_close_due(now=CLOSING_TIME) == 1
    assert charge_of(busy) == (30, Decimal("30.00"), True)
