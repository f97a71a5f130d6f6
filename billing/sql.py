"""Billing's raw SQL: the export's statement, which the ORM cannot say as cheaply.

One row per balance of a period with its grants and its top-up purchases aggregated once
per balance, in two grouped subqueries joined to the rows, rather than six correlated
subqueries per row (grants by kind, purchases counted and summed): PostgreSQL estimated
those at a million cost units for 30,000 rows, so it JIT-compiled the statement with
full optimisation (1.6 s of its 2.2 s, ``EXPLAIN ANALYZE`` in docs/BENCHMARKS.md
"Billing export"). The balances are chosen once in the text (``chosen``: by the period's
label, the tenant and, for a page, their ids) and inlined where they are read (NOT
MATERIALIZED: a materialized CTE hides its size from the planner, which then took
nested loops over 30,000 rows), so the aggregates read only the grants and purchases of
the rows asked for. Table and column names come from the models' ``_meta``; values,
enum members included, are bound parameters. ``tests/billing/test_export.py`` runs it,
and checks it against the ORM's statement that SQLite runs (``native()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metering.models import Balance, BillingPeriod, Channel, Grant
from metering.sql import Names, native
from policies.models import OverageCharge, TopUp
from tenants.models import Tenant

__all__ = ["EXPORT_COLUMNS", "export_statement", "native"]

# The statement's columns, in order: what ``billing.selectors.export_record`` reads.
EXPORT_COLUMNS = (
    "id", "tenant_id", "used", "available", "included_units", "promotional_units",
    "purchased_units", "carried_in_units", "topup_count", "topup_amount", "tenant_slug",
    "tenant_name", "time_zone", "tenant_currency", "channel_code", "period_label",
    "starts_at", "ends_at", "period_status", "charge_units", "charge_carried",
    "charge_amount", "charge_currency", "charge_status", "billed_amount", "waived_amount",
    "decided_at", "topup_currencies",
)  # fmt: skip


def export_statement(
    *, period: str, tenant_id: int | None = None, balance_ids: Sequence[int] | None = None
) -> tuple[str, list[Any]]:
    """The export's SELECT and its parameters: the balances of the periods labelled
    ``period`` (of ``tenant_id``'s, or every tenant's; of ``balance_ids`` only, for a
    page), one row each in ``EXPORT_COLUMNS`` order, by balance id.

    Two shapes of the same rows. Every row of a period: grants and purchases grouped
    once, hash-joined (a few sequential scans for the whole export). A page: its
    balances by id, materialized (the planner sees a thousand rows), and each one's
    grants and purchases aggregated by index in a LATERAL subquery, so a page reads its
    own rows and nothing else, however deep."""
    b, p, t = Names(Balance), Names(BillingPeriod), Names(Tenant)
    c, g, o, u = Names(Channel), Names(Grant), Names(OverageCharge), Names(TopUp)
    kinds = [
        Grant.Kind.INCLUDED,
        Grant.Kind.PROMOTIONAL,
        Grant.Kind.PURCHASED,
        Grant.Kind.PURCHASED,
    ]
    net = f"g.{g.units} - g.{g.reduced_units}"
    sums = f"""SUM({net}) FILTER (WHERE g.{g.kind} = %s) AS included,
           SUM({net}) FILTER (WHERE g.{g.kind} = %s) AS promotional,
           SUM({net}) FILTER (WHERE g.{g.kind} = %s AND u.{u.id} IS NOT NULL) AS purchased,
           SUM({net}) FILTER (WHERE g.{g.kind} = %s AND u.{u.id} IS NULL) AS carried_in"""
    grants = f"{g.db_table} g LEFT JOIN {u.db_table} u ON u.{u.grant} = g.{g.id}"
    bought_of = f"(u.{u.tenant}, u.{u.channel}, u.{u.period})"
    row_key = "(chosen.tenant_id, chosen.channel_id, chosen.period_id)"
    columns = f"""b.{b.id} AS id, b.{b.tenant} AS tenant_id, b.{b.channel} AS channel_id,
           b.{b.period} AS period_id, b.{b.used} AS used, b.{b.available} AS available"""
    of_tenant = f"AND b.{b.tenant} = %s" if tenant_id is not None else ""
    tenant_params = [tenant_id] if tenant_id is not None else []
    if balance_ids is None:
        head = f"""
WITH chosen AS NOT MATERIALIZED (
    SELECT {columns}
    FROM {b.db_table} b JOIN {p.db_table} p ON p.{p.id} = b.{b.period}
    WHERE p.{p.label} = %s {of_tenant}
),
granted AS (
    SELECT g.{g.balance} AS balance_id,
           {sums}
    FROM chosen JOIN {grants} ON g.{g.balance} = chosen.id
    GROUP BY g.{g.balance}
),
bought AS (
    SELECT u.{u.tenant} AS tenant_id, u.{u.channel} AS channel_id, u.{u.period} AS period_id,
           COUNT(*) AS count, SUM(u.{u.price}) AS amount,
           array_agg(DISTINCT u.{u.currency}) AS currencies
    FROM {u.db_table} u
    WHERE {bought_of} IN (SELECT tenant_id, channel_id, period_id FROM chosen)
    GROUP BY u.{u.tenant}, u.{u.channel}, u.{u.period}
)"""
        aggregates = f"""
     LEFT JOIN granted ON granted.balance_id = chosen.id
     LEFT JOIN bought ON (bought.tenant_id, bought.channel_id, bought.period_id) = {row_key}"""
        where, params = "", [period, *tenant_params, *kinds]
    else:
        head = f"""
WITH chosen AS MATERIALIZED (
    SELECT {columns}
    FROM {b.db_table} b
    WHERE b.{b.id} = ANY(%s::bigint[]) {of_tenant}
)"""
        aggregates = f"""
     LEFT JOIN LATERAL (
         SELECT {sums}
         FROM {grants} WHERE g.{g.balance} = chosen.id
     ) granted ON true
     LEFT JOIN LATERAL (
         SELECT COUNT(*) AS count, SUM(u.{u.price}) AS amount,
                array_agg(DISTINCT u.{u.currency}) AS currencies
         FROM {u.db_table} u WHERE {bought_of} = {row_key}
     ) bought ON true"""
        where = f"WHERE p.{p.label} = %s"
        params = [list(balance_ids), *tenant_params, *kinds, period]
    sql = f"""{head}
SELECT chosen.id, chosen.tenant_id, chosen.used, chosen.available,
       COALESCE(granted.included, 0)::bigint AS included_units,
       COALESCE(granted.promotional, 0)::bigint AS promotional_units,
       COALESCE(granted.purchased, 0)::bigint AS purchased_units,
       COALESCE(granted.carried_in, 0)::bigint AS carried_in_units,
       COALESCE(bought.count, 0) AS topup_count, bought.amount AS topup_amount,
       t.{t.slug} AS tenant_slug, t.{t.name} AS tenant_name, t.{t.time_zone} AS time_zone,
       t.{t.currency} AS tenant_currency, c.{c.code} AS channel_code,
       p.{p.label} AS period_label, p.{p.starts_at} AS starts_at, p.{p.ends_at} AS ends_at,
       p.{p.status} AS period_status, o.{o.units} AS charge_units,
       o.{o.carried_units} AS charge_carried, o.{o.amount} AS charge_amount,
       o.{o.currency} AS charge_currency, o.{o.status} AS charge_status,
       o.{o.billed_amount} AS billed_amount, o.{o.waived_amount} AS waived_amount,
       o.{o.decided_at} AS decided_at, bought.currencies AS topup_currencies
FROM chosen
     JOIN {t.db_table} t ON t.{t.id} = chosen.tenant_id
     JOIN {c.db_table} c ON c.{c.id} = chosen.channel_id
     JOIN {p.db_table} p ON p.{p.id} = chosen.period_id
     LEFT JOIN {o.db_table} o ON (o.{o.tenant}, o.{o.channel}, o.{o.period}) = {row_key}{aggregates}
{where}
ORDER BY chosen.id
"""
    return sql, params
