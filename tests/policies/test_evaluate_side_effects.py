"""Evaluation decides, side effects follow: a batch records its notifications and commits;
overage charges and automatic top-ups then run per balance in short transactions of their
own, so no batch holds hot balance rows. Real threads against PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from metering.models import Balance
from metering.services.ingest import usage_record_batch
from notifications.models import Notification
from policies.models import OverageCharge
from policies.services.evaluate import evaluate_pending
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import balance_of, set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
WAIT_SECONDS = 10


class InThread:
    """``work`` in a thread on a connection of its own, with its backend pid."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.pid: int | None = None
        self.finished_at: float | None = None
        started = threading.Event()

        def run() -> None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.pid = cursor.fetchone()[0]
                started.set()
                self.result = self.work()
            except BaseException as exc:  # noqa: BLE001 - the test asserts on it
                self.error = exc
            finally:
                self.finished_at = time.monotonic()
                connection.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(WAIT_SECONDS)

    def join(self, timeout: float = WAIT_SECONDS) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


def waits_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def over_the_credits(slug: str) -> Any:
    tenant = TenantFactory.create(slug=slug)
    set_rule(tenant, "sms", included_units=100)
    usage_record_batch(tenant=tenant, payload={"events": [event("a", quantity=150)]})
    return tenant


def test_ingestion_into_a_balance_being_evaluated_does_not_wait_for_the_batchs_side_effects():
    hot, other = over_the_credits("hot"), over_the_credits("other")
    assert balance_of(hot).pk < balance_of(other).pk  # the batch refreshes the hot one first
    other_balance = balance_of(other).pk
    held, release = threading.Event(), threading.Event()

    def hold_the_other_balance() -> None:
        with transaction.atomic():
            Balance.objects.select_for_update().get(pk=other_balance)
            held.set()
            release.wait(WAIT_SECONDS * 3)

    holder = InThread(hold_the_other_balance)
    ingestion: InThread | None = None
    try:
        assert held.wait(WAIT_SECONDS)
        evaluation = InThread(evaluate_pending)
        # The batch has decided and reached the other tenant's charge, which waits.
        pid = evaluation.pid
        assert pid is not None
        until(lambda: waits_on_a_lock(pid), "the evaluation to wait on the lock")
        ingestion = InThread(
            lambda: usage_record_batch(tenant=hot, payload={"events": [event("b", quantity=5)]})
        )
        assert ingestion.join(5), "ingestion waited for the evaluation's side effects"
        assert ingestion.error is None, ingestion.error
        assert evaluation.thread.is_alive()  # still held up by the other balance
    finally:
        release.set()
        holder.join()
        if ingestion is not None:
            ingestion.join()
    assert evaluation.join()
    assert evaluation.error is None, evaluation.error
    # The batch's decisions and every side effect landed.
    assert Notification.objects.filter(kind="overage_fee_notice").count() == 2
    assert sorted(OverageCharge.objects.values_list("units", flat=True)) == [50, 50]
    assert balance_of(other).evaluated_version == balance_of(other).version
    # The hot balance moved after the batch read it: it waits for the next evaluation.
    hot_balance = balance_of(hot)
    assert hot_balance.used == 155
    assert hot_balance.evaluated_version < hot_balance.version


def test_a_side_effect_that_cannot_run_leaves_only_its_balance_for_the_next_evaluation():
    hot, other = over_the_credits("hot"), over_the_credits("other")
    other_balance = balance_of(other).pk
    held, release = threading.Event(), threading.Event()

    def hold_the_other_balance() -> None:
        with transaction.atomic():
            Balance.objects.select_for_update().get(pk=other_balance)
            held.set()
            release.wait(WAIT_SECONDS * 3)

    holder = InThread(hold_the_other_balance)
    try:
        assert held.wait(WAIT_SECONDS)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")  # as a worker's session gives up
        evaluate_pending()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        release.set()
        holder.join()
    # Both balances' decisions were recorded; only the other one's charge is missing.
    assert Notification.objects.filter(kind="overage_fee_notice").count() == 2
    assert list(OverageCharge.objects.values_list("tenant__slug", flat=True)) == ["hot"]
    assert balance_of(hot).evaluated_version == balance_of(hot).version
    assert balance_of(other).evaluated_version < balance_of(other).version
    # The next evaluation takes up the other balance alone and notifies nothing twice.
    assert evaluate_pending().balances == 1
    assert sorted(OverageCharge.objects.values_list("tenant__slug", flat=True)) == [
        "hot",
        "other",
    ]
    assert Notification.objects.filter(kind="overage_fee_notice").count() == 2
