from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from creditguard.errors import ServiceError
from metering.models import Channel
from policies.models import Action, CarryOver, Window
from policies.services.rules import UNCHANGED, limit_rule_set
from tenants.models import Tenant


def _effective_from(text: str, tenant: Tenant) -> datetime:
    """A day (its start in the tenant's time zone) or an instant with its offset."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=tenant.tzinfo)
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise CommandError(
            f"--effective-from takes a day (2026-12-01) or an instant with its offset "
            f"(2026-12-01T09:00+01:00), not {text!r}"
        )
    return instant


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
        "(the same service the admin uses). Terms not given keep their value. Worse terms "
        "take effect after the notice (LIMIT_NOTICE_DAYS) unless given as an enforcement "
        "measure; the tenant is told each term that changes and from when."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--channel", required=True, help="Channel code")
        parser.add_argument("--included", type=int, help="Included credits per period")
        parser.add_argument(
            "--hard-limit", help="Units beyond the credits still allowed; 'none' for no ceiling"
        )
        parser.add_argument("--action", choices=Action.values)
        parser.add_argument(
            "--restrict-units", type=int, help="For --action restrict: units per window"
        )
        parser.add_argument("--restrict-window", choices=Window.values)
        parser.add_argument("--thresholds", help="Warning thresholds in percent, e.g. 50,80,90,100")
        parser.add_argument("--carry-over", choices=CarryOver.values, help="Overage at reset")
        parser.add_argument(
            "--effective-from",
            help="When the change takes effect: a day (its start in the tenant's time zone) or "
            "an instant with its offset; default: now, and worse terms after the notice",
        )
        parser.add_argument(
            "--immediate-as-enforcement",
            action="store_true",
            help="Worse terms at once, as an enforcement measure (restrict or suspend); "
            "needs --customer-reason",
        )
        parser.add_argument("--customer-reason", default="", help="The reason the tenant reads")
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
        effective_from = (
            _effective_from(options["effective_from"].strip(), tenant)
            if options["effective_from"]
            else None
        )
        try:
            change = limit_rule_set(
                tenant=tenant,
                channel=channel,
                reason=options["reason"],
                actor=None,
                included_units=(
                    options["included"] if options["included"] is not None else UNCHANGED
                ),
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
                carry_over=options["carry_over"] or UNCHANGED,
                effective_from=effective_from,
                immediate_as_enforcement=options["immediate_as_enforcement"],
                customer_reason=options["customer_reason"],
            )
        except ServiceError as exc:
            details = "; ".join(f"{e.get('field')}: {e.get('detail')}" for e in exc.errors)
            raise CommandError(f"{exc.detail} {details}".strip()) from exc
        for rule in change.versions:
            ceiling = "no ceiling" if rule.hard_limit is None else f"hard limit {rule.hard_limit}"
            self.stdout.write(
                f"{tenant.slug}/{channel.code}: version {rule.version} from "
                f"{rule.effective_from.astimezone(tenant.tzinfo):%Y-%m-%d %H:%M %Z}: "
                f"{rule.included_units} included, {ceiling}, {rule.action}, "
                f"thresholds {rule.warning_thresholds}, carry-over {rule.carry_over}"
            )
        if change.worsens:
            self.stdout.write("Worse terms: the tenant has been notified of each change.")
