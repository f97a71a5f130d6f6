from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant
from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (a business customer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--industry", choices=Tenant.Industry.values, default=Tenant.Industry.OTHER
        )
        parser.add_argument(
            "--size-band", choices=Tenant.SizeBand.values, default=Tenant.SizeBand.SMALL
        )
        parser.add_argument(
            "--language", choices=Tenant.Language.values, default=Tenant.Language.GERMAN
        )
        parser.add_argument("--currency", default="EUR")
        parser.add_argument("--time-zone", default="Europe/Berlin")
        parser.add_argument("--contact-email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_create(
                slug=options["slug"],
                name=options["name"],
                industry=options["industry"],
                size_band=options["size_band"],
                language=options["language"],
                currency=options["currency"],
                time_zone=options["time_zone"],
                contact_email=options["contact_email"],
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()
            )
            raise CommandError(problems) from exc
        self.stdout.write(f"Created tenant {tenant.slug} (id {tenant.pk}).")
