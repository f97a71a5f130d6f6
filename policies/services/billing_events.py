"""The billable facts as platform events for the operator's billing system (issue 12):
``period.closed``, ``overage_charge.decided``, ``topup.purchased`` and
``limit_rule.changed``, each emitted by the service where the fact happens, inside its
transaction (``notifications.services.platform_events``: an outbox, delivered after
commit). docs/API.md, "Platform events", shows each payload.

The figures are the billing export's, under the same names, and the ids join it: a
channel of ``period.closed`` carries the export row's ``id`` (the balance's) as
``export_row_id``; a charge and a top-up carry their line item's ``id``
(``overage_charge_<n>``, ``topup_<offer id>``) as ``line_item_id``. Money is a decimal
string in the currency's minor unit. Each event's id is derived from its fact (the
period, the charge, the offer, the first rule version written), so a service that runs
again tells nothing twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum

from creditguard.money import round_money
from metering.models import Balance, BillingPeriod, Channel, Grant
from notifications.models import PlatformEvent
from notifications.services.platform_events import platform_event_emit
from policies.models import LimitRule, OverageCharge, TopUp
from policies.terms import Terms
from tenants.models import Tenant


def _money(amount: Decimal | None, currency: str) -> str:
    return str(round_money(amount if amount is not None else Decimal(0), currency))


def _tenant_fields(tenant: Tenant) -> dict[str, Any]:
    return {"tenant_id": tenant.pk, "tenant_slug": tenant.slug, "tenant_name": tenant.name}


def _local(moment: datetime, tenant: Tenant) -> str:
    return moment.astimezone(tenant.tzinfo).isoformat()


def charge_line_item_id(charge: OverageCharge) -> str:
    return f"overage_charge_{charge.pk}"


def period_closed_emit(*, period: BillingPeriod, now: datetime) -> None:
    """The closed period of one tenant, once: per channel its figures as the export's
    final row, and the totals to invoice — billed now, still pending a decision (told
    by ``overage_charge.decided`` when decided), waived, and the top-ups bought (in the
    tenant's currency; any bought in another are listed apart, never added). Call it
    after the period's charges are final, in the close's transaction."""
    period = BillingPeriod.objects.get(pk=period.pk)  # closed_at as the close wrote it
    tenant = Tenant.objects.get(pk=period.tenant_id)
    currency = tenant.currency
    grants: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = Grant.objects.filter(balance__period=period).values_list(
        "balance_id", "kind", "units", "reduced_units", "topup__pk"
    )
    for balance_id, kind, granted, reduced, topup_id in rows:
        if kind == Grant.Kind.PURCHASED:
            # Bought in this period, or carried in from an earlier one (as the export).
            kind = "purchased_here" if topup_id is not None else "carried_in"
        grants[balance_id][kind] += granted - reduced
    charges = {c.channel_id: c for c in OverageCharge.objects.filter(period=period)}
    # Top-ups by channel and currency: packs carry their own currency, and amounts of
    # two currencies are never added (as the export, which refuses such a row).
    topups: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in (
        TopUp.objects.filter(period=period).order_by().values("channel_id", "currency")
        .annotate(count=Count("pk"), amount=Sum("price"))
    ):  # fmt: skip
        topups[row["channel_id"]][row["currency"]] = row
    channels: list[dict[str, Any]] = []
    totals: defaultdict[str, Decimal] = defaultdict(Decimal)
    topup_count = 0
    balances = Balance.objects.filter(period=period).select_related("channel").order_by("pk")
    for balance in balances:
        charge = charges.get(balance.channel_id)
        bought = topups[balance.channel_id].pop(currency, {"count": 0, "amount": None})
        units = grants[balance.pk]
        pending = charge is not None and charge.status == OverageCharge.Status.PENDING
        channels.append({
            "export_row_id": balance.pk,
            "channel": balance.channel.code,
            "included_units": units[Grant.Kind.INCLUDED],
            "promotional_units": units[Grant.Kind.PROMOTIONAL],
            "topped_up_units": units["purchased_here"],
            "carried_in_units": units["carried_in"],
            "used_units": balance.used,
            "overage_units": charge.units if charge else max(balance.used - balance.available, 0),
            "carried_over_units": charge.carried_units if charge else 0,
            "overage_fee": _money(charge.amount if charge else None, currency),
            "billed_amount": _money(charge.billed_amount if charge else None, currency),
            "waived_amount": _money(charge.waived_amount if charge else None, currency),
            "decision_status": charge.status if charge else None,
            "overage_line_item_id": charge_line_item_id(charge) if charge else None,
            "topup_count": bought["count"],
            "topup_amount": _money(bought["amount"], currency),
            "topups_in_other_currencies": [
                {"currency": other, "count": row["count"], "amount": _money(row["amount"], other)}
                for other, row in sorted(topups[balance.channel_id].items())
            ],
        })  # fmt: skip
        if charge is not None:
            totals["overage_fee"] += charge.amount
            totals["billed_amount"] += charge.billed_amount
            totals["waived_amount"] += charge.waived_amount
            totals["pending_amount"] += charge.amount if pending else Decimal(0)
        totals["topup_amount"] += bought["amount"] or Decimal(0)
        topup_count += bought["count"]
    names = ("overage_fee", "billed_amount", "waived_amount", "pending_amount", "topup_amount")
    platform_event_emit(
        event_type=PlatformEvent.Type.PERIOD_CLOSED,
        fact=f"period:{period.pk}",
        tenant_id=tenant.pk,
        payload={
            **_tenant_fields(tenant), "period": period.label,
            "period_start": _local(period.starts_at, tenant),
            "period_end": _local(period.ends_at, tenant),
            "closed_at": _local(period.closed_at or now, tenant), "currency": currency,
            "channels": channels,
            "totals": {**{name: _money(totals[name], currency) for name in names},
                       "topup_count": topup_count},
        },
        now=now,
    )  # fmt: skip


def overage_charge_decided_emit(*, charge: OverageCharge, automatic: bool, now: datetime) -> None:
    """A charge decided — billed, waived or partly waived, by staff or automatically
    at the close — once, as its line item: ``amount`` is what to invoice."""
    tenant = Tenant.objects.get(pk=charge.tenant_id)
    channel = Channel.objects.get(pk=charge.channel_id)
    period = BillingPeriod.objects.get(pk=charge.period_id)
    balance_id = (
        Balance.objects.filter(tenant=tenant, channel=channel, period=period)
        .values_list("pk", flat=True)
        .first()
    )
    currency = charge.currency
    platform_event_emit(
        event_type=PlatformEvent.Type.OVERAGE_CHARGE_DECIDED,
        fact=f"overage_charge:{charge.pk}",
        tenant_id=tenant.pk,
        payload={
            "line_item_id": charge_line_item_id(charge), "kind": "overage_charge",
            **_tenant_fields(tenant), "channel": channel.code, "period": period.label,
            "export_row_id": balance_id,
            "occurred_at": _local(charge.decided_at or now, tenant),
            "decision_status": charge.status, "automatic": automatic,
            "overage_units": charge.units, "carried_units": charge.carried_units,
            "units": charge.units - charge.carried_units,
            "list_amount": _money(charge.amount, currency),
            "waived_amount": _money(charge.waived_amount, currency),
            "amount": _money(charge.billed_amount, currency), "currency": currency,
        },
        now=now,
    )  # fmt: skip


def topup_purchased_emit(*, topup: TopUp, now: datetime) -> None:
    """A top-up bought — a pack bought directly, an offer accepted, an automatic
    top-up — once, as its line item."""
    tenant = Tenant.objects.get(pk=topup.tenant_id)
    offer = topup.offer
    channel = Channel.objects.get(pk=topup.channel_id)
    period = BillingPeriod.objects.get(pk=topup.period_id)
    platform_event_emit(
        event_type=PlatformEvent.Type.TOPUP_PURCHASED,
        fact=f"topup:{offer.public_id}",
        tenant_id=tenant.pk,
        payload={
            "line_item_id": f"topup_{offer.public_id}", "kind": "topup",
            **_tenant_fields(tenant), "channel": channel.code, "period": period.label,
            "occurred_at": _local(topup.created_at, tenant), "units": topup.units,
            "list_amount": _money(topup.price, topup.currency),
            "waived_amount": _money(Decimal(0), topup.currency),
            "amount": _money(topup.price, topup.currency), "currency": topup.currency,
            "decision_status": None, "source": offer.source, "automatic": topup.automatic,
        },
        now=now,
    )  # fmt: skip


def limit_rule_changed_emit(
    *,
    tenant: Tenant,
    channel: Channel,
    versions: Sequence[LimitRule],
    before: Terms,
    worsens: bool,
    now: datetime,
) -> None:
    """A change of a tenant × channel's terms, once per change (its versions, the first
    of which names it): the terms in force before it and each version written, with
    the date it takes effect — what a billing system prices from."""
    platform_event_emit(
        event_type=PlatformEvent.Type.LIMIT_RULE_CHANGED,
        fact=f"limit_rule:{versions[0].pk}",
        tenant_id=tenant.pk,
        payload={
            **_tenant_fields(tenant), "channel": channel.code,
            "changed_at": _local(now, tenant), "worsens_terms": worsens,
            "before": before.as_fields(),
            "versions": [
                {"version": rule.version, "effective_from": _local(rule.effective_from, tenant),
                 **Terms.of(rule).as_fields()}
                for rule in versions
            ],
        },
        now=now,
    )  # fmt: skip
