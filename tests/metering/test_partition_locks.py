"""Partition maintenance against other sessions, with real threads on PostgreSQL: it gives
up on a table lock instead of queueing ingestion behind a long reader, and two runs at
once serialize instead of both creating the same month."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from metering import sql as metering_sql
from metering import tasks
from metering.services.partitions import (
    PartitionsBusy,
    partition_name,
    partitions_archive,
    partitions_ensure,
)
from tests.metering.test_closed_period_races import Held, InThread

pytestmark = pytest.mark.skipif("connection.vendor != 'postgresql'")

EVENTS, LEDGER = "metering_usageevent", "metering_ledgerentry"


def read_for_long(table: str) -> Held:
    """A reader in another session, in the middle of a long transaction on ``table``."""

    def take() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")

    return Held(take)


@pytest.mark.django_db
def test_maintenance_gives_up_behind_a_long_reader_and_leaves_nothing_half_done(
    settings, caplog, monkeypatch
):
    settings.PARTITION_LOCK_TIMEOUT_SECONDS = 0.3
    january, march = datetime(2091, 1, 1, tzinfo=UTC), datetime(2091, 3, 1, tzinfo=UTC)
    # The ledger is locked, the events are not: the events' partitions of the run would
    # be created first, and must go with the rest.
    reader = read_for_long(LEDGER)
    try:
        with pytest.raises(PartitionsBusy, match="PARTITION_LOCK_TIMEOUT_SECONDS"):
            partitions_ensure(start=january, end=march)
        for table in (EVENTS, LEDGER):
            assert not metering_sql.partition_exists(partition_name(table, january))

        with pytest.raises(CommandError, match="Gave up, nothing changed"):
            call_command("partitions", "--ensure", "--from", "2091-01")
        assert not metering_sql.partition_exists(partition_name(EVENTS, january))

        # The beat task logs it and leaves the month for its next run.
        monkeypatch.setattr(
            tasks, "partitions_ensure_ahead", lambda: partitions_ensure(start=january, end=march)
        )
        with caplog.at_level(logging.WARNING, logger="metering.tasks"):
            assert tasks.partitions_maintain() == {"created": [], "archived": []}
        assert "left for the next run" in caplog.text
    finally:
        reader.release()
    # The reader gone, the same run goes through.
    assert partitions_ensure(start=january, end=march) == [
        partition_name(EVENTS, january),
        partition_name(EVENTS, datetime(2091, 2, 1, tzinfo=UTC)),
        partition_name(LEDGER, january),
        partition_name(LEDGER, datetime(2091, 2, 1, tzinfo=UTC)),
    ]


@pytest.mark.django_db
def test_archiving_gives_up_behind_a_long_reader(settings):
    settings.USAGE_RETENTION_MONTHS = 1
    settings.PARTITION_LOCK_TIMEOUT_SECONDS = 0.3
    # Far enough ahead that the months the migration created are all past retention (and
    # no period is open in them): no partition to create, so the test's own transaction
    # holds no lock the reader would wait for.
    now = datetime(2093, 6, 1, tzinfo=UTC)
    planned = partitions_archive(now=now, dry_run=True)
    assert any(name.startswith(EVENTS) for name in planned)
    assert any(name.startswith(LEDGER) for name in planned)
    reader = read_for_long(LEDGER)
    try:
        with pytest.raises(PartitionsBusy):
            partitions_archive(now=now)
    finally:
        reader.release()
    # All still attached: the events' detaches went back with the rest.
    for name in planned:
        assert metering_sql.partition_exists(name)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_runs_at_once_create_each_month_once(settings):
    settings.PARTITION_LOCK_TIMEOUT_SECONDS = 10
    start, end = datetime(2092, 1, 1, tzinfo=UTC), datetime(2092, 3, 1, tzinfo=UTC)
    names = [
        partition_name(table, datetime(2092, month, 1, tzinfo=UTC))
        for table in (EVENTS, LEDGER)
        for month in (1, 2)
    ]
    # A reader holds the events table, so both runs are under way at once: each has
    # read which months exist before either could create one.
    reader = read_for_long(EVENTS)
    try:
        first = InThread(lambda: partitions_ensure(start=start, end=end))
        assert first.waits_for_a_lock()
        second = InThread(lambda: partitions_ensure(start=start, end=end))
        assert second.waits_for_a_lock()
        reader.release()
        results = [first.join(), second.join()]
        assert (first.error, second.error) == (None, None)
        assert sorted(results, key=len) == [[], names]
    finally:
        reader.release()
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
