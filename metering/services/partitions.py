"""Monthly partitions of the usage events and the ledger (PostgreSQL only).

On PostgreSQL ``metering_usageevent`` is partitioned by ``RANGE (occurred_at)`` and
``metering_ledgerentry`` by ``RANGE (created_at)`` (migration 0012), one partition per UTC
calendar month named ``<table>_pYYYY_MM``, plus a ``<table>_default`` partition that
catches the rows of months without their own, so that nothing is ever refused. A daily
beat task (``partitions_ensure`` for the month before this one to three months ahead)
keeps the default empty in practice; when it does hold rows of a month being created they
are moved into the new partition in the same transaction.

Retention (``USAGE_RETENTION_MONTHS``, unset = keep everything): ``partitions_archive``
detaches the partitions of a month, of both tables together, once the month is older than
that and every billing period overlapping it is closed (billing records no exports, so
"closed" is the condition), and moves them into the schema ``archive``; the operator dumps
and drops them (docs/OPERATIONS.md). Open periods' events and entries are never archived.

Maintenance (ensure and archive) runs one at a time (a transaction-scoped advisory lock)
and gives up on a table lock not granted within ``PARTITION_LOCK_TIMEOUT_SECONDS``: the
DDL takes ACCESS EXCLUSIVE on the parent and its default partition, and waiting behind a
long reader would queue ingestion behind it. Giving up rolls the whole run back
(``PartitionsBusy``); the next run does the work.

SQLite (the demo) keeps plain tables: every function here does nothing there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from metering import sql as metering_sql
from metering.models import LedgerEntry, UsageEvent

logger = logging.getLogger(__name__)

ARCHIVE_SCHEMA = "archive"
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout


class PartitionsBusy(Exception):
    """Maintenance gave up: a table lock was not granted within
    ``PARTITION_LOCK_TIMEOUT_SECONDS``. Nothing was changed; the next run retries."""


@contextmanager
def _maintenance() -> Iterator[None]:
    """One transaction of partition maintenance: serialized with any other, under the
    lock timeout; a lock timeout rolls it all back and raises ``PartitionsBusy``."""
    timeout = float(getattr(settings, "PARTITION_LOCK_TIMEOUT_SECONDS", 2.0))
    try:
        with transaction.atomic():
            metering_sql.partitions_maintenance_begin(lock_timeout_seconds=timeout)
            yield
    except OperationalError as exc:
        if getattr(exc.__cause__, "pgcode", None) != LOCK_NOT_AVAILABLE:
            raise
        logger.warning("partition maintenance gave up after %ss waiting for a lock: %s",
                       timeout, str(exc).strip())  # fmt: skip
        raise PartitionsBusy(
            f"a table lock was not granted within {timeout:g} s "
            "(PARTITION_LOCK_TIMEOUT_SECONDS); nothing changed, retry later"
        ) from exc


_MONTH = re.compile(r"_p(\d{4})_(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _tables() -> list[tuple[str, str]]:
    """(table, partition column) of each partitioned table, events first."""
    return [
        (UsageEvent._meta.db_table, str(UsageEvent._meta.get_field("occurred_at").column)),
        (LedgerEntry._meta.db_table, str(LedgerEntry._meta.get_field("created_at").column)),
    ]


def month_start(at: datetime) -> datetime:
    """The first instant of ``at``'s UTC calendar month."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def month_add(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def months_covering(start: datetime, end: datetime) -> list[datetime]:
    """The starts of the UTC months that meet [start, end)."""
    month, months = month_start(start), []
    while month < end:
        months.append(month)
        month = month_add(month, 1)
    return months


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y_%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


@dataclass(frozen=True)
class Partition:
    table: str  # the partitioned table
    name: str
    month: datetime | None  # None: the default partition
    rows: int  # estimated (pg_class.reltuples) unless counted


def partitions_list(*, count: bool = False) -> list[Partition]:
    """The partitions of both tables, by table then month (the default last); ``rows``
    is the planner's estimate unless ``count`` (which reads every row)."""
    if not metering_sql.native():
        return []
    found: list[Partition] = []
    for table, name, estimate in metering_sql.partitions_of([t for t, _ in _tables()]):
        match = _MONTH.search(name)
        month = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC) if match else None
        rows = metering_sql.partition_rows(name) if count else estimate
        found.append(Partition(table, name, month, rows))
    return sorted(found, key=lambda p: (p.table, p.month is None, p.month or _EPOCH))


def usage_event_months_attached() -> list[datetime] | None:
    """The UTC months whose usage events are all still in the events table: those with
    an attached partition, and those of the rows in the default partition; ``None``: every
    month (plain tables, nothing is ever archived). A month archived (or never used) is
    not among them: its rollups are the only record left of its usage."""
    if not metering_sql.native():
        return None
    table, column = _tables()[0]
    months = {p.month for p in partitions_list() if p.table == table and p.month}
    months.update(metering_sql.partition_months(default_name(table), column))
    return sorted(months)


def partitions_ensure(*, start: datetime, end: datetime) -> list[str]:
    """Create the monthly partitions of both tables covering [start, end) that do not
    exist yet; the names created. Idempotent. Rows of those months waiting in the default
    partition are moved into the new one in the same transaction."""
    if not metering_sql.native():
        return []
    created: list[str] = []
    with _maintenance():
        for table, column in _tables():
            existing = {name for _, name, _ in metering_sql.partitions_of([table])}
            for month in months_covering(start, end):
                name = partition_name(table, month)
                if name not in existing:
                    metering_sql.partition_create(
                        table=table,
                        column=column,
                        name=name,
                        default=default_name(table),
                        low=month,
                        high=month_add(month, 1),
                    )
                    created.append(name)
    return created


def partitions_ensure_ahead(*, now: datetime | None = None) -> list[str]:
    """What the daily beat task runs: this month - 1 to this month + 3."""
    month = month_start(now or timezone.now())
    return partitions_ensure(start=month_add(month, -1), end=month_add(month, 4))


def partitions_months_ahead(*, now: datetime | None = None) -> int:
    """Whole months after this one that have their partitions in both tables (a gauge)."""
    month = month_start(now or timezone.now())
    have: dict[str, set[datetime]] = {}
    for partition in partitions_list():
        if partition.month is not None:
            have.setdefault(partition.table, set()).add(partition.month)
    ahead = 0
    while all(month_add(month, ahead + 1) in have.get(t, set()) for t, _ in _tables()):
        ahead += 1
    return ahead


def months_archivable(*, now: datetime | None = None) -> list[datetime]:
    """The months whose partitions retention archives now: older than
    ``USAGE_RETENTION_MONTHS`` whole months, every billing period overlapping the month
    closed, and every ledger entry of its partition on a balance of a closed period."""
    retention = getattr(settings, "USAGE_RETENTION_MONTHS", None)
    if retention is None or not metering_sql.native():
        return []
    before = month_add(month_start(now or timezone.now()), -int(retention))
    ledger = LedgerEntry._meta.db_table
    months = sorted({p.month for p in partitions_list() if p.month and p.month < before})
    return [
        month
        for month in months
        if not metering_sql.periods_open_overlapping(low=month, high=month_add(month, 1))
        and not (
            metering_sql.partition_exists(partition_name(ledger, month))
            and metering_sql.ledger_partition_touches_open_period(partition_name(ledger, month))
        )
    ]


def partitions_archive(*, now: datetime | None = None, dry_run: bool = False) -> list[str]:
    """Detach the partitions of every archivable month (both tables, together) and move
    them into the schema ``archive``; their names. ``dry_run``: only the names."""
    planned = [
        (table, partition_name(table, month))
        for month in months_archivable(now=now)
        for table, _ in _tables()
    ]
    if dry_run or not planned:
        return [name for _, name in planned]
    archived = []
    ledger = LedgerEntry._meta.db_table
    with _maintenance():
        for table, name in planned:
            if metering_sql.partition_exists(name):
                metering_sql.partition_archive(
                    table=table, name=name, schema=ARCHIVE_SCHEMA, append_only=table == ledger
                )
                archived.append(name)
    return archived
