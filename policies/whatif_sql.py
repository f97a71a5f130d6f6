"""The what-if's one statement (``policies.whatif``): for every tenant in a scope, the rule
version in force on a channel, its last ended and its current period with the balance's
used units and the credits its grants give, and the fee schedule in effect for it (the
notice rules of ``policies.services.fees.fee_spans``: a tenant's own schedule before the
global default, then the latest to take effect). Plain SQL that PostgreSQL and SQLite (the
demo) both run: window functions, no vendor's JSON or array functions. Table and column
names come from the models' ``_meta``; every value is a bound parameter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from metering.models import Balance, BillingPeriod, Grant
from metering.sql import Names
from policies.models import FeeSchedule, FeeScheduleNotice, LimitRule
from tenants.models import Tenant

# The columns of a row, in order.
COLUMNS = (
    "id", "name", "slug", "industry", "size_band", "currency", "time_zone",
    "included_units", "warning_thresholds", "hard_limit", "action", "restrict_units",
    "restrict_window", "carry_over", "schedule_id",
    "last_label", "last_used", "last_credits", "last_included",
    "this_label", "this_starts_at", "this_ends_at", "this_used", "this_credits", "this_included",
    # The last version scheduled after now (an announced change), if any.
    "scheduled_included_units", "scheduled_warning_thresholds", "scheduled_hard_limit",
    "scheduled_action", "scheduled_restrict_units", "scheduled_restrict_window",
    "scheduled_carry_over", "scheduled_from",
)  # fmt: skip


def _scope_sql(*, tenant: bool, industry: bool, size_band: bool) -> str:
    t, r, p = Names(Tenant), Names(LimitRule), Names(BillingPeriod)
    b, g, f, n = Names(Balance), Names(Grant), Names(FeeSchedule), Names(FeeScheduleNotice)
    where = [f"t.{t.status} <> %(closed)s"]
    where += [f"t.{t.id} = %(tenant)s"] if tenant else []
    where += [f"t.{t.industry} = %(industry)s"] if industry else []
    where += [f"t.{t.size_band} = %(size_band)s"] if size_band else []
    credits = (
        f"SUM(CASE WHEN g.{g.expired_at} IS NOT NULL AND g.{g.expired_at} < p.ends_at "
        f"THEN g.{g.drawn_units} ELSE g.{g.units} - g.{g.reduced_units} END)"
    )
    terms = ", ".join(
        f"r.{getattr(r, name)} AS {name}"
        for name in ("included_units", "warning_thresholds", "hard_limit", "action",
                     "restrict_units", "restrict_window", "carry_over", "version")
    )  # fmt: skip

    def period(name: str, condition: str) -> str:
        # Names from the models' _meta and this module's fragments; every value is bound.
        return f"""
        {name} AS (
            SELECT p.{p.id} AS id, p.{p.tenant} AS tenant_id, p.{p.label} AS label,
                   p.{p.starts_at} AS starts_at, p.{p.ends_at} AS ends_at,
                   ROW_NUMBER() OVER (PARTITION BY p.{p.tenant}
                                      ORDER BY p.{p.starts_at} DESC) AS rn
            FROM {p.db_table} p JOIN scope s ON s.id = p.{p.tenant}
            WHERE {condition}
        ),
        {name}_figures AS (
            SELECT p.tenant_id, p.label, p.starts_at, p.ends_at, b.{b.used} AS used,
                   {credits} AS credits,
                   SUM(CASE WHEN g.{g.kind} = %(included)s THEN g.{g.units} - g.{g.reduced_units}
                            ELSE 0 END) AS included
            FROM {name} p
            LEFT JOIN {b.db_table} b ON b.{b.period} = p.id AND b.{b.channel} = %(channel)s
            LEFT JOIN {g.db_table} g ON g.{g.balance} = b.{b.id}
            WHERE p.rn = 1
            GROUP BY p.tenant_id, p.label, p.starts_at, p.ends_at, b.{b.used}
        )"""  # noqa: S608

    return f"""
        WITH scope AS (
            SELECT t.{t.id} AS id, t.{t.name} AS name, t.{t.slug} AS slug,
                   t.{t.industry} AS industry, t.{t.size_band} AS size_band,
                   t.{t.currency} AS currency, t.{t.time_zone} AS time_zone
            FROM {t.db_table} t WHERE {" AND ".join(where)}
        ),
        rules AS (
            SELECT r.{r.tenant} AS tenant_id, {terms},
                   ROW_NUMBER() OVER (PARTITION BY r.{r.tenant} ORDER BY r.{r.version} DESC) AS rn
            FROM {r.db_table} r JOIN scope s ON s.id = r.{r.tenant}
            WHERE r.{r.channel} = %(channel)s AND r.{r.effective_from} <= %(now)s
        ),
        scheduled AS (
            SELECT r.{r.tenant} AS tenant_id, {terms}, r.{r.effective_from} AS effective_from,
                   ROW_NUMBER() OVER (PARTITION BY r.{r.tenant} ORDER BY r.{r.version} DESC) AS rn
            FROM {r.db_table} r JOIN scope s ON s.id = r.{r.tenant}
            WHERE r.{r.channel} = %(channel)s AND r.{r.effective_from} > %(now)s
        ),
        fees AS (
            SELECT n.{n.tenant} AS tenant_id, n.{n.schedule} AS schedule_id,
                   ROW_NUMBER() OVER (
                       PARTITION BY n.{n.tenant}
                       ORDER BY CASE WHEN f.{f.tenant} IS NULL THEN 1 ELSE 0 END,
                                n.{n.effective_at} DESC, n.{n.id} DESC) AS rn
            FROM {n.db_table} n
            JOIN {f.db_table} f ON f.{f.id} = n.{n.schedule}
            JOIN scope s ON s.id = n.{n.tenant}
            WHERE f.{f.channel} = %(channel)s AND n.{n.effective_at} <= %(now)s
        ),
        {period("last_period", f"p.{p.ends_at} <= %(now)s")},
        {period("this_period", f"p.{p.starts_at} <= %(now)s AND p.{p.ends_at} > %(now)s")}
        SELECT s.id, s.name, s.slug, s.industry, s.size_band, s.currency, s.time_zone,
               r.included_units, r.warning_thresholds, r.hard_limit, r.action,
               r.restrict_units, r.restrict_window, r.carry_over,
               fees.schedule_id,
               lp.label, lp.used, lp.credits, lp.included,
               tp.label, tp.starts_at, tp.ends_at, tp.used, tp.credits, tp.included,
               sc.included_units, sc.warning_thresholds, sc.hard_limit, sc.action,
               sc.restrict_units, sc.restrict_window, sc.carry_over, sc.effective_from
        FROM scope s
        LEFT JOIN rules r ON r.tenant_id = s.id AND r.rn = 1
        LEFT JOIN fees ON fees.tenant_id = s.id AND fees.rn = 1
        LEFT JOIN scheduled sc ON sc.tenant_id = s.id AND sc.rn = 1
        LEFT JOIN last_period_figures lp ON lp.tenant_id = s.id
        LEFT JOIN this_period_figures tp ON tp.tenant_id = s.id
        ORDER BY s.name, s.id
    """  # noqa: S608


def scope_rows(
    *, channel_id: int, now: datetime, tenant_id: int | None, industry: str, size_band: str
) -> list[tuple[Any, ...]]:
    """The scope's tenants with their terms, periods and schedule: one statement."""
    sql = _scope_sql(tenant=tenant_id is not None, industry=bool(industry),
                     size_band=bool(size_band))  # fmt: skip
    params = {
        "closed": Tenant.Status.CLOSED, "tenant": tenant_id, "industry": industry,
        "size_band": size_band, "channel": channel_id,
        "now": connection.ops.adapt_datetimefield_value(now), "included": Grant.Kind.INCLUDED,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
