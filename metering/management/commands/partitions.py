from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from metering import sql as metering_sql
from metering.services.partitions import (
    month_add,
    month_start,
    partition_name,
    partitions_archive,
    partitions_ensure_ahead,
    partitions_list,
)


class Command(BaseCommand):
    help = (
        "List the monthly partitions of usage events and ledger entries with their rows "
        "(counted), and what maintenance would do: --ensure creates last month to three "
        "ahead (the daily beat task does it too), --archive applies USAGE_RETENTION_MONTHS; "
        "--dry-run only says what would be done."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ensure", action="store_true", help="Create missing partitions")
        parser.add_argument("--archive", action="store_true", help="Archive expired months")
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be done")

    def handle(self, *args: Any, **options: Any) -> None:
        if not metering_sql.native():
            self.stdout.write("Plain tables (not PostgreSQL): nothing is partitioned.")
            return
        for partition in partitions_list(count=True):
            month = f"{partition.month:%Y-%m}" if partition.month else "default"
            self.stdout.write(f"{partition.name:<40} {month:<8} {partition.rows:>12,} rows")
        dry = options["dry_run"]
        if options["ensure"]:
            if dry:
                this = month_start(timezone.now())
                missing = {
                    partition_name(table, month_add(this, n))
                    for table in {p.table for p in partitions_list()}
                    for n in range(-1, 4)
                } - {p.name for p in partitions_list()}
                self.stdout.write(f"Would create: {', '.join(sorted(missing)) or 'nothing'}")
            else:
                created = partitions_ensure_ahead()
                self.stdout.write(f"Created: {', '.join(created) or 'nothing'}")
        if options["archive"]:
            names = partitions_archive(dry_run=dry)
            verb = "Would archive" if dry else "Archived (schema archive)"
            self.stdout.write(f"{verb}: {', '.join(names) or 'nothing'}")
