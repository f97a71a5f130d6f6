from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from creditguard.errors import ServiceError
from metering.models import Channel
from policies.models import Action, Window
from policies.services.rules import UNCHANGED, limit_rule_set
from tenants.models import Tenant


def _thresholds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(
            f"--thresholds takes percentages like 50,80,90,100, not {text!r}"
        ) from None


class Command(BaseCommand):
    help = (
        "Set a tenant's limit on a channel: a new, audited version of its limit rule "
        "(the same service the admin uses). Terms not given keep their value."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--channel", required=True, help="Channel code")
        parser.add_argument(
            "--included", type=int, required=True, help="Included credits per period"
        )
        parser.add_argument(
            "--hard-limit", help="Units beyond the credits still allowed; 'none' for no ceiling"
        )
        parser.add_argument("--action", choices=Action.values)
        parser.add_argument(
            "--restrict-units", type=int, help="For --action restrict: units per window"
        )
        parser.add_argument("--restrict-window", choices=Window.values)
        parser.add_argument("--thresholds", help="Warning thresholds in percent, e.g. 50,80,90,100")
        parser.add_argument("--reason", required=True, help="Why (kept in the audit trail)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        channel = Channel.objects.filter(code=options["channel"]).first()
        if channel is None:
            raise CommandError(f"No channel with code {options['channel']!r}.")
        hard_limit: Any = UNCHANGED
        if options["hard_limit"] is not None:
            text = options["hard_limit"].strip().lower()
            if text in {"none", ""}:
                hard_limit = None
            elif text.isdigit():
                hard_limit = int(text)
            else:
                raise CommandError("--hard-limit takes a whole number or 'none'.")
        try:
            change = limit_rule_set(
                tenant=tenant,
                channel=channel,
                reason=options["reason"],
                actor=None,
                included_units=options["included"],
                hard_limit=hard_limit,
                action=options["action"] or UNCHANGED,
                warning_thresholds=(
                    _thresholds(options["thresholds"]) if options["thresholds"] else UNCHANGED
                ),
                restrict_units=(
                    options["restrict_units"]
                    if options["restrict_units"] is not None
                    else UNCHANGED
                ),
                restrict_window=options["restrict_window"] or UNCHANGED,
            )
        except ServiceError as exc:
            details = "; ".join(f"{e.get('field')}: {e.get('detail')}" for e in exc.errors)
            raise CommandError(f"{exc.detail} {details}".strip()) from exc
        rule = change.rule
        ceiling = "no ceiling" if rule.hard_limit is None else f"hard limit {rule.hard_limit}"
        self.stdout.write(
            f"{tenant.slug}/{channel.code}: version {rule.version}, "
            f"{rule.included_units} included, {ceiling}, {rule.action}, "
            f"thresholds {rule.warning_thresholds}"
            + (" — worse terms: the tenant has been notified." if change.worsens else "")
        )
