from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from metering.services.partitions import usage_event_months_attached
from metering.services.rollups import usage_rollups_rebuild
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Rebuild the usage rollups from the recorded events, of one tenant or of all "
        "(recording waits meanwhile). For events written around the services; ingestion "
        "and authorization commits keep the rollups current themselves. Only months whose "
        "events are all still attached are rebuilt: the rollups of months archived by "
        "retention are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug; omit for every tenant")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        slots = usage_rollups_rebuild(tenant=tenant)
        whose = f"tenant {tenant.slug}" if tenant else "every tenant"
        months = usage_event_months_attached()
        if months is None:
            span = "every month"
        elif months:
            first, last = f"{months[0]:%Y-%m}", f"{months[-1]:%Y-%m}"
            span = f"the {len(months)} months with attached events ({first} to {last})"
        else:
            span = "no month (no attached events)"
        self.stdout.write(
            f"Rebuilt {slots} rollup slots of {whose}, of {span}; the rollups of other "
            "months (events archived) are kept."
        )
