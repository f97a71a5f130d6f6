"""What a billing system reads: the export (one row per tenant × channel × period) and
the line items (one row per billable fact), as querysets of plain values that the API
pages or streams without holding them all.

Every figure is read, never recomputed: the units from the balance and its grants, the
money from the rows that priced it — the ``OverageCharge`` (finalised when the period
closed; kept current by ``overage_charge_refresh`` while it is open) and the ``TopUp``
purchases. So the export says what the staff console and the tenant's notices say.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    DecimalField,
    F,
    FilteredRelation,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat

from creditguard.errors import Conflict
from creditguard.money import round_money
from metering.models import Balance, BillingPeriod, Grant
from policies.models import OverageCharge, TopUp
from tenants.models import Tenant

PROVISIONAL = "provisional"
FINAL = "final"


def _grant_units(kind: str, *, purchased_here: bool | None = None) -> Coalesce:
    """Σ units granted less units reduced, of the balance's grants of ``kind``."""
    grants = Grant.objects.filter(balance=OuterRef("pk"), kind=kind)
    if purchased_here is not None:
        grants = grants.filter(topup__isnull=not purchased_here)
    total = (
        grants.order_by().values("balance")
        .annotate(total=Sum(F("units") - F("reduced_units"))).values("total")
    )  # fmt: skip
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


def _topups(field: str, aggregate: type[Sum] | type[Count]) -> Subquery:
    purchases = TopUp.objects.filter(
        tenant=OuterRef("tenant"), channel=OuterRef("channel"), period=OuterRef("period")
    )
    return Subquery(
        purchases.order_by().values("period").annotate(total=aggregate(field)).values("total")
    )


MAX_REPORTED_CURRENCY_MIXES = 20


def export_currency_check(*, period: str, tenant: Tenant | None = None) -> None:
    """Refuse (``Conflict``, code ``mixed_currencies``) an export whose rows would add up
    money of two currencies: a row has one ``currency`` (its charge's, else the
    tenant's) and ``topup_amount`` sums its top-ups, so every top-up must be priced in
    it. Packs carry their own currency, so a tenant can buy in another one; the line
    items, each in its own currency, still say what was bought. One statement."""
    charge_currency = OverageCharge.objects.filter(
        tenant=OuterRef("tenant"), channel=OuterRef("channel"), period=OuterRef("period")
    ).values("currency")[:1]
    purchases = TopUp.objects.filter(period__label=period)
    if tenant is not None:
        purchases = purchases.filter(tenant=tenant)
    mixed = list(
        purchases.annotate(row_currency=Coalesce(Subquery(charge_currency), F("tenant__currency")))
        .exclude(currency=F("row_currency"))
        .order_by("tenant__slug", "channel__code", "currency")
        .values_list("tenant__slug", "channel__code", "currency", "row_currency")
        .distinct()[:MAX_REPORTED_CURRENCY_MIXES]
    )
    if mixed:
        named = "; ".join(
            f"{slug} {code}: {bought} in a {row} row" for slug, code, bought, row in mixed
        )
        raise Conflict(
            "Top-ups priced in another currency than their export row cannot be summed into "
            f"it: {named}. The line items give each purchase in its own currency.",
            extra={
                "code": "mixed_currencies",
                "rows": [
                    {"tenant": slug, "channel": code, "topup_currency": bought, "currency": row}
                    for slug, code, bought, row in mixed
                ],
            },
        )


def export_rows(*, period: str, tenant: Tenant | None = None) -> QuerySet[Balance, dict[str, Any]]:
    """One row per tenant × channel with a balance in the period labelled ``period``
    (YYYY-MM in each tenant's zone), of one tenant or of all, in balance id order (a
    stable key: a balance opened later sorts last). Values, not models: see
    :func:`export_record` for the fields. One statement whatever the number of rows:
    the charge is a left join, grants and purchases are correlated aggregates; before
    it, :func:`export_currency_check` refuses rows whose top-ups are in another currency
    (``topup_amount`` sums in the row's)."""
    export_currency_check(period=period, tenant=tenant)
    balances = Balance.objects.filter(period__label=period)
    if tenant is not None:
        balances = balances.filter(tenant=tenant)
    return (
        balances.annotate(
            charge=FilteredRelation(
                "tenant__overage_charges",
                condition=Q(
                    tenant__overage_charges__channel=F("channel"),
                    tenant__overage_charges__period=F("period"),
                ),
            ),
            included_units=_grant_units(Grant.Kind.INCLUDED),
            promotional_units=_grant_units(Grant.Kind.PROMOTIONAL),
            purchased_units=_grant_units(Grant.Kind.PURCHASED, purchased_here=True),
            carried_in_units=_grant_units(Grant.Kind.PURCHASED, purchased_here=False),
            topup_count=Coalesce(_topups("pk", Count), Value(0)),
            topup_amount=_topups("price", Sum),
        )
        .values(
            "id", "tenant_id", "used", "available", "included_units", "promotional_units",
            "purchased_units", "carried_in_units", "topup_count", "topup_amount",
            tenant_slug=F("tenant__slug"), tenant_name=F("tenant__name"),
            time_zone=F("tenant__time_zone"), tenant_currency=F("tenant__currency"),
            channel_code=F("channel__code"), period_label=F("period__label"),
            starts_at=F("period__starts_at"), ends_at=F("period__ends_at"),
            period_status=F("period__status"), charge_units=F("charge__units"),
            charge_carried=F("charge__carried_units"), charge_amount=F("charge__amount"),
            charge_currency=F("charge__currency"), charge_status=F("charge__status"),
            billed_amount=F("charge__billed_amount"), waived_amount=F("charge__waived_amount"),
            decided_at=F("charge__decided_at"),
        )
        .order_by("id")
    )  # fmt: skip


def money_text(amount: Decimal | None, currency: str) -> str:
    """A Decimal string with the currency's minor-unit digits ("12.30", JPY "1230")."""
    return str(round_money(amount if amount is not None else Decimal(0), currency))


def _local(moment: datetime, zone: Any) -> str:
    return moment.astimezone(zone).isoformat()


def export_record(row: dict[str, Any]) -> dict[str, Any]:
    """An export row as the API gives it (JSON and CSV alike; see docs/API.md)."""
    from zoneinfo import ZoneInfo  # cached by zoneinfo: one object per zone

    zone = ZoneInfo(row["time_zone"])
    currency = row["charge_currency"] or row["tenant_currency"]
    overage = row["charge_units"]
    if overage is None:  # no charge yet: nothing over, or an evaluation still to come
        overage = max(row["used"] - row["available"], 0)
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "tenant_slug": row["tenant_slug"],
        "tenant_name": row["tenant_name"],
        "channel": row["channel_code"],
        "period": row["period_label"],
        "period_start": _local(row["starts_at"], zone),
        "period_end": _local(row["ends_at"], zone),
        "status": FINAL if row["period_status"] == BillingPeriod.Status.CLOSED else PROVISIONAL,
        "currency": currency,
        "included_units": row["included_units"],
        "promotional_units": row["promotional_units"],
        "topped_up_units": row["purchased_units"],
        "carried_in_units": row["carried_in_units"],
        "used_units": row["used"],
        "overage_units": overage,
        "carried_over_units": row["charge_carried"] or 0,
        "overage_fee": money_text(row["charge_amount"], currency),
        "billed_amount": money_text(row["billed_amount"], currency),
        "waived_amount": money_text(row["waived_amount"], currency),
        "decision_status": row["charge_status"],
        "decided_at": _local(row["decided_at"], zone) if row["decided_at"] else None,
        "topup_count": row["topup_count"],
        "topup_amount": money_text(row["topup_amount"], currency),
    }


# The CSV header: the record's keys, in order.
EXPORT_FIELDS = [
    "id", "tenant_id", "tenant_slug", "tenant_name", "channel", "period", "period_start",
    "period_end", "status", "currency", "included_units", "promotional_units",
    "topped_up_units", "carried_in_units", "used_units", "overage_units",
    "carried_over_units", "overage_fee", "billed_amount", "waived_amount",
    "decision_status", "decided_at", "topup_count", "topup_amount",
]  # fmt: skip


def line_items(
    *, period: str, tenant: Tenant | None = None, after: tuple[datetime, str] | None = None
) -> QuerySet[Any, tuple[Any, ...]]:
    """One row per billable fact of the periods labelled ``period``: each top-up
    purchase, each decided overage charge (billed or waived, in whole or part), ordered
    by when it happened (bought, decided) and its id; ``after`` a (time, id) keyset
    position, the rows after it. Each has a stable ``id`` (``topup_<offer id>``,
    ``overage_charge_<id>``) for an invoicing system to import it exactly once. Facts
    happen now, so a new one sorts last and a page already read never changes."""
    money: DecimalField[Decimal, Decimal] = DecimalField(max_digits=14, decimal_places=2)
    topups = TopUp.objects.filter(period__label=period).annotate(
        item_id=Concat(Value("topup_"), Cast("offer__public_id", CharField())),
        item_kind=Value("topup"),
        occurred_at=F("created_at"),
        item_units=F("units"),
        item_list=F("price"),
        item_waived=Value(Decimal("0.00"), output_field=money),
        item_amount=F("price"),
        item_decision=Value(None, output_field=CharField()),
    )
    charges = (
        OverageCharge.objects.filter(period__label=period)
        .exclude(status=OverageCharge.Status.PENDING)
        .annotate(
            item_id=Concat(Value("overage_charge_"), Cast("pk", CharField())),
            item_kind=Value("overage_charge"),
            occurred_at=F("decided_at"),
            item_units=F("units") - F("carried_units"),
            item_list=F("amount"),
            item_waived=F("waived_amount"),
            item_amount=F("billed_amount"),
            item_decision=F("status"),
        )
    )
    parts: list[QuerySet[Any, tuple[Any, ...]]] = []
    for part in (topups, charges):
        if tenant is not None:
            part = part.filter(tenant=tenant)
        if after is not None:
            at, item_id = after
            part = part.filter(Q(occurred_at__gt=at) | Q(occurred_at=at, item_id__gt=item_id))
        parts.append(
            part.order_by().values_list(
                "item_id", "item_kind", "tenant_id", "tenant__slug", "channel__code",
                "period__label", "occurred_at", "item_units", "item_list", "item_amount",
                "item_waived", "currency", "item_decision", "tenant__time_zone",
            )
        )  # fmt: skip
    return parts[0].union(parts[1], all=True).order_by("occurred_at", "item_id")


LINE_ITEM_FIELDS = [
    "id", "kind", "tenant_id", "tenant_slug", "channel", "period", "occurred_at", "units",
    "list_amount", "waived_amount", "amount", "currency", "decision_status",
]  # fmt: skip


def line_item_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A line item as the API gives it: ``amount`` is what to invoice (a top-up's price,
    a charge's billed amount), ``list_amount`` before any waiver."""
    from zoneinfo import ZoneInfo

    (item_id, kind, tenant_id, slug, channel, label, occurred_at, units, list_amount,
     amount, waived, currency, decision, zone) = row  # fmt: skip
    return {
        "id": item_id,
        "kind": kind,
        "tenant_id": tenant_id,
        "tenant_slug": slug,
        "channel": channel,
        "period": label,
        "occurred_at": _local(occurred_at, ZoneInfo(zone)),
        "units": units,
        "list_amount": money_text(list_amount, currency),
        "waived_amount": money_text(waived, currency),
        "amount": money_text(amount, currency),
        "currency": currency,
        "decision_status": decision,
    }


def export_etag(*, period: str, tenant: Tenant | None, variant: str) -> str | None:
    """A validator of the export of a period that is final for every tenant it covers,
    or None while any of them is open. A final period's figures never change; only a
    pending charge's decision is still to come, so the tag covers the decisions."""
    periods = BillingPeriod.objects.filter(label=period)
    charges = OverageCharge.objects.filter(period__label=period).exclude(
        status=OverageCharge.Status.PENDING
    )
    if tenant is not None:
        periods, charges = periods.filter(tenant=tenant), charges.filter(tenant=tenant)
    state = periods.aggregate(
        count=Count("pk"),
        open=Count("pk", filter=Q(status=BillingPeriod.Status.OPEN)),
        closed=Max("closed_at", output_field=DateTimeField()),
    )
    if state["open"] or not state["count"]:
        return None
    decided = charges.aggregate(count=Count("pk"), last=Max("decided_at"))
    key = f"{variant}|{period}|{tenant.pk if tenant else '*'}|{state}|{decided}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
