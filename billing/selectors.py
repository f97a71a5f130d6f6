"""What a billing system reads: the export (one row per tenant × channel × period) and
the line items (one row per billable fact), as plain values that the API pages or
streams without holding them all: the export's rows from one statement
(``billing.sql``), read in chunks; the line items as a queryset.

Every figure is read, never recomputed: the units from the balance and its grants, the
money from the rows that priced it — the ``OverageCharge`` (finalised when the period
closed; kept current by ``overage_charge_refresh`` while it is open) and the ``TopUp``
purchases. So the export says what the staff console and the tenant's notices say.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    DecimalField,
    F,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat

from billing import sql as billing_sql
from creditguard.db_router import read_connection
from creditguard.errors import Conflict
from creditguard.money import round_money
from metering.models import Balance, BillingPeriod, Grant
from metering.selectors import granted_units
from policies.models import OverageCharge, TopUp
from tenants.models import Tenant

PROVISIONAL = "provisional"
FINAL = "final"


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
        raise mixed_currencies(mixed)


def mixed_currencies(mixed: Sequence[tuple[str, str, str, str]]) -> Conflict:
    """The refusal of rows whose top-ups were bought in another currency than theirs:
    ``mixed`` as (tenant slug, channel code, top-up currency, row currency)."""
    named = "; ".join(
        f"{slug} {code}: {bought} in a {row} row" for slug, code, bought, row in mixed
    )
    return Conflict(
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


def _page_currency_check(rows: list[tuple[Any, ...]]) -> None:
    """:func:`export_currency_check` for a page, from its rows: each row's statement
    names the currencies of its top-ups (``topup_currencies``), so the page needs no
    statement of its own over the whole period."""
    mixed = set()
    for row in rows:
        currency = row[_CHARGE_CURRENCY] or row[_TENANT_CURRENCY]
        for bought in row[_TOPUP_CURRENCIES] or ():
            if bought != currency:
                mixed.add((row[_TENANT_SLUG], row[_CHANNEL_CODE], bought, currency))
    if mixed:
        raise mixed_currencies(sorted(mixed)[:MAX_REPORTED_CURRENCY_MIXES])


_TENANT_SLUG, _CHANNEL_CODE, _TENANT_CURRENCY, _CHARGE_CURRENCY, _TOPUP_CURRENCIES = (
    billing_sql.EXPORT_COLUMNS.index(name)
    for name in (
        "tenant_slug", "channel_code", "tenant_currency", "charge_currency", "topup_currencies"
    )
)  # fmt: skip


def export_balances(*, period: str, tenant: Tenant | None = None) -> QuerySet[Balance, Any]:
    """The balances the export covers, as ``{"id": …}`` in id order (a stable key: a
    balance opened later sorts last): what the JSON pages are keyed on, one cheap
    statement a page; :func:`export_rows` then reads the page's rows by their ids."""
    balances = Balance.objects.filter(period__label=period)
    if tenant is not None:
        balances = balances.filter(tenant=tenant)
    return balances.order_by("id").values("id")


def export_rows(
    *,
    period: str,
    tenant: Tenant | None = None,
    balance_ids: Sequence[int] | None = None,
    chunk_rows: int = 500,
) -> Iterator[list[tuple[Any, ...]]]:
    """One row per tenant × channel with a balance in the period labelled ``period``
    (YYYY-MM in each tenant's zone), of one tenant or of all (of ``balance_ids`` only,
    for a page), in balance id order, as tuples in ``EXPORT_COLUMNS`` order (see
    :func:`export_record`), ``chunk_rows`` at a time from a server-side cursor. One
    statement whatever the number of rows (``billing.sql``; the ORM's on SQLite).

    :func:`export_currency_check` runs first, here rather than when the rows are read,
    so that a CSV response can still refuse with 409 (``topup_amount`` sums in the
    row's currency); a page is read here and checked from its own rows."""
    tenant_id = tenant.pk if tenant is not None else None
    if balance_ids is not None and not balance_ids:
        return iter(())
    if not billing_sql.native():
        export_currency_check(period=period, tenant=tenant)
        return _orm_chunks(
            export_rows_orm(period=period, tenant=tenant, balance_ids=balance_ids), chunk_rows
        )
    sql, params = billing_sql.export_statement(
        period=period, tenant_id=tenant_id, balance_ids=balance_ids
    )
    # The router's connection (a read replica for the export's routes), chosen now: the
    # rows of a CSV are read while the response streams.
    connection = read_connection(Balance)
    if balance_ids is not None:  # a page, bounded: in one round trip
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            page = cursor.fetchall()
        _page_currency_check(page)
        return iter([page])
    export_currency_check(period=period, tenant=tenant)
    # Every row of a period from a named (server-side) cursor, as QuerySet.iterator()
    # reads, unless the setting says a pooler in transaction mode forbids them.
    server_side = not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    return _chunks(connection, sql, params, chunk_rows, server_side=server_side)


def _chunks(
    connection: BaseDatabaseWrapper,
    sql: str,
    params: list[Any],
    chunk_rows: int,
    *,
    server_side: bool,
) -> Iterator[list[tuple[Any, ...]]]:
    with connection.chunked_cursor() if server_side else connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_rows):
            yield rows


def _orm_chunks(
    rows: QuerySet[Balance, tuple[Any, ...]], chunk_rows: int
) -> Iterator[list[tuple[Any, ...]]]:
    iterator = rows.iterator(chunk_size=chunk_rows)
    while chunk := list(islice(iterator, chunk_rows)):
        yield chunk


def export_rows_orm(
    *, period: str, tenant: Tenant | None = None, balance_ids: Sequence[int] | None = None
) -> QuerySet[Balance, tuple[Any, ...]]:
    """:func:`export_rows`' statement in the ORM, for databases other than PostgreSQL
    (the embedded SQLite default): the charge a left join, grants and purchases
    correlated aggregates per row — six subqueries a row, which PostgreSQL's planner
    priced high enough to JIT-compile (docs/BENCHMARKS.md), hence ``billing.sql``."""
    balances = Balance.objects.filter(period__label=period)
    if tenant is not None:
        balances = balances.filter(tenant=tenant)
    if balance_ids is not None:
        balances = balances.filter(id__in=balance_ids)
    return (
        balances.annotate(
            charge=FilteredRelation(
                "tenant__overage_charges",
                condition=Q(
                    tenant__overage_charges__channel=F("channel"),
                    tenant__overage_charges__period=F("period"),
                ),
            ),
            included_units=granted_units(Grant.Kind.INCLUDED),
            promotional_units=granted_units(Grant.Kind.PROMOTIONAL),
            purchased_units=granted_units(Grant.Kind.PURCHASED, purchased_here=True),
            carried_in_units=granted_units(Grant.Kind.PURCHASED, purchased_here=False),
            topup_count=Coalesce(_topups("pk", Count), Value(0)),
            topup_amount=_topups("price", Sum),
            tenant_slug=F("tenant__slug"), tenant_name=F("tenant__name"),
            time_zone=F("tenant__time_zone"), tenant_currency=F("tenant__currency"),
            channel_code=F("channel__code"), period_label=F("period__label"),
            starts_at=F("period__starts_at"), ends_at=F("period__ends_at"),
            period_status=F("period__status"), charge_units=F("charge__units"),
            charge_carried=F("charge__carried_units"), charge_amount=F("charge__amount"),
            charge_currency=F("charge__currency"), charge_status=F("charge__status"),
            billed_amount=F("charge__billed_amount"), waived_amount=F("charge__waived_amount"),
            decided_at=F("charge__decided_at"),
            # The currencies of the row's purchases, which the pages check; here
            # export_currency_check has checked them.
            topup_currencies=Value(None, output_field=CharField()),
        )
        .values_list(*billing_sql.EXPORT_COLUMNS)
        .order_by("id")
    )  # fmt: skip


@lru_cache(maxsize=64)
def _exponent(currency: str) -> Decimal:
    return round_money(Decimal(0), currency)


def money_text(amount: Decimal | None, currency: str) -> str:
    """A Decimal string with the currency's minor-unit digits ("12.30", JPY "1230"),
    rounded half up as ``round_money`` does."""
    if amount is None:
        return str(_exponent(currency))
    return str(amount.quantize(_exponent(currency), rounding=ROUND_HALF_UP))


@lru_cache(maxsize=1024)
def _bounds(starts_at: datetime, ends_at: datetime, zone: str) -> tuple[str, str]:
    """A period's bounds in its tenant's zone: computed once per period and zone, not
    once per row (an export has one or two of them per zone)."""
    return _local(starts_at, ZoneInfo(zone)), _local(ends_at, ZoneInfo(zone))


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat()


def export_values(row: tuple[Any, ...]) -> list[Any]:
    """An export row's values in ``EXPORT_FIELDS`` order (a CSV line; see
    :func:`export_record`)."""
    (balance_id, tenant_id, used, available, included, promotional, purchased, carried_in,
     topup_count, topup_amount, slug, name, zone, tenant_currency, channel, label,
     starts_at, ends_at, period_status, charge_units, charge_carried, charge_amount,
     charge_currency, charge_status, billed, waived, decided_at, _currencies) = row  # fmt: skip
    currency = charge_currency or tenant_currency
    if charge_units is None:  # no charge yet: nothing over, or an evaluation still to come
        charge_units = max(used - available, 0)
    start, end = _bounds(starts_at, ends_at, zone)
    return [
        balance_id, tenant_id, slug, name, channel, label, start, end,
        FINAL if period_status == BillingPeriod.Status.CLOSED else PROVISIONAL, currency,
        included, promotional, purchased, carried_in, used, charge_units, charge_carried or 0,
        money_text(charge_amount, currency), money_text(billed, currency),
        money_text(waived, currency), charge_status,
        _local(decided_at, ZoneInfo(zone)) if decided_at else None,
        topup_count, money_text(topup_amount, currency),
    ]  # fmt: skip


def export_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """An export row as the API gives it (JSON and CSV alike; see docs/API.md)."""
    return dict(zip(EXPORT_FIELDS, export_values(row), strict=True))


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
