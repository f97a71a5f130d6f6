from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from creditguard.errors import ServiceError
from tenants.models import Scope, Tenant
from tenants.services import api_key_create


class Command(BaseCommand):
    help = "Issue an API key and print it once. Without --tenant, a platform key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug; omit for a platform key")
        parser.add_argument(
            "--scopes", required=True, help=f"Comma-separated, from {', '.join(Scope.values)}"
        )
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        name = options["name"] or (f"{tenant.slug} key" if tenant else "platform key")
        try:
            issued = api_key_create(tenant=tenant, name=name, scopes=scopes)
        except ServiceError as exc:
            raise CommandError(str(exc)) from exc
        owner = f"tenant {tenant.slug}" if tenant else "the platform"
        self.stderr.write(f"API key for {owner} with scopes {', '.join(issued.api_key.scopes)}.")
        self.stderr.write("It is shown once; store it now.")
        self.stdout.write(issued.raw_key)
