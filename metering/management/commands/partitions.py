from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from metering import sql as metering_sql
from metering.services.partitions import (
    PartitionsBusy,
    month_add,
    month_start,
    months_covering,
    partition_name,
    partitions_archive,
    partitions_ensure,
    partitions_list,
)


def _month(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"--from takes a month as YYYY-MM, not {value!r}") from exc


class Command(BaseCommand):
    help = (
        "List the monthly partitions of usage events and ledger entries with their rows "
        "(the planner's estimates; --count counts them, reading every row), and what "
        "maintenance would do: --ensure creates last month to three ahead (the daily beat "
        "task does it too; --from YYYY-MM starts earlier, for older months still in the "
        "default partition), --archive applies USAGE_RETENTION_MONTHS; --dry-run only says "
        "what would be done. Exits 1 when a table lock is not granted within "
        "PARTITION_LOCK_TIMEOUT_SECONDS (nothing changed: run it again)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ensure", action="store_true", help="Create missing partitions")
        parser.add_argument(
            "--from", dest="start", type=_month, metavar="YYYY-MM",
            help="With --ensure: the first month to create (default: last month)",
        )  # fmt: skip
        parser.add_argument("--archive", action="store_true", help="Archive expired months")
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be done")
        parser.add_argument(
            "--count", action="store_true", help="Count the rows exactly (reads every row)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not metering_sql.native():
            self.stdout.write("Plain tables (not PostgreSQL): nothing is partitioned.")
            return
        counted = options["count"]
        partitions = partitions_list(count=counted)
        unit = "rows" if counted else "rows (estimate)"
        for partition in partitions:
            month = f"{partition.month:%Y-%m}" if partition.month else "default"
            self.stdout.write(f"{partition.name:<40} {month:<8} {partition.rows:>12,} {unit}")
            if partition.month is None and partition.rows:
                self.stdout.write(
                    f"  {partition.name} holds rows: months without a partition of their "
                    "own; `partitions --ensure --from YYYY-MM` (the oldest such month) "
                    "moves them into theirs."
                )
        dry = options["dry_run"]
        this = month_start(timezone.now())
        start = options["start"] or month_add(this, -1)
        end = max(month_add(this, 4), month_add(start, 1))
        try:
            if options["ensure"]:
                if dry:
                    missing = {
                        partition_name(table, month)
                        for table in {p.table for p in partitions}
                        for month in months_covering(start, end)
                    } - {p.name for p in partitions}
                    self.stdout.write(f"Would create: {', '.join(sorted(missing)) or 'nothing'}")
                else:
                    created = partitions_ensure(start=start, end=end)
                    self.stdout.write(f"Created: {', '.join(created) or 'nothing'}")
            if options["archive"]:
                names = partitions_archive(dry_run=dry)
                verb = "Would archive" if dry else "Archived (schema archive)"
                self.stdout.write(f"{verb}: {', '.join(names) or 'nothing'}")
        except PartitionsBusy as exc:
            raise CommandError(f"Gave up, nothing changed: {exc}") from exc
