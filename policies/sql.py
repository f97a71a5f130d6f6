"""Policies' raw SQL: the one-statement authorization (the fast path of
``policies.services.authorize``).

The statement reads the rule in force and composes it with metering's pieces
(``metering.sql``): the current period locked ``FOR SHARE``, the reservation on the
balance, the authorization row and its ``hold`` ledger entry — so it books through the
ledger's SQL rather than around it, and stays one statement. Table and column names come
from the models' ``_meta``; enum members and reasons are bound parameters
(``FAST_AUTHORIZE_PARAMETERS``), never SQL text. ``tests/policies/test_sql.py`` runs it on
PostgreSQL; every rules-engine test runs through it and through the full path.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection

from metering import sql as metering_sql
from metering.models import Authorization, Channel
from metering.sql import Names
from policies.models import Action, LimitRule

# Fixed values bound as parameters: the rule actions the statement handles and the
# authorization's decisions and statuses. The reasons are the caller's words
# (``reason_overage``, ``reason_suspended``, ``reason_hard_limit``).
CONSTANTS: dict[str, str] = {
    **metering_sql.CONSTANTS,
    "action_notify": Action.NOTIFY_ONLY,
    "action_charge": Action.CHARGE_OVERAGE,
    "action_suspend": Action.SUSPEND,
    "decision_allow": Authorization.Decision.ALLOW,
    "decision_overage": Authorization.Decision.ALLOW_OVERAGE,
    "decision_deny": Authorization.Decision.DENY,
    "status_denied": Authorization.Status.DENIED,
}

# The statement's parameters, in the order of the prepared statement, with their types.
FAST_AUTHORIZE_PARAMETERS: dict[str, str] = {
    "code": "text",
    "tenant": "bigint",
    "now": "timestamptz",
    "quantity": "bigint",
    "public_id": "uuid",
    "key": "text",
    "expires": "timestamptz",
    **{name: "text" for name in CONSTANTS},
    "reason_overage": "text",
    "reason_suspended": "text",
    "reason_hard_limit": "text",
}


# The common case in one statement: an active tenant whose balance for the current
# period exists and whose own rule is notify_only, charge_overage or suspend. The
# conditional UPDATE takes the balance row lock and checks the room in one step (under
# READ COMMITTED, PostgreSQL re-checks the condition on the newest row version after
# waiting for the lock), so the units allowed never pass the ceiling; the authorization
# and its hold entry are written in the same statement. When the UPDATE finds no room,
# the rule words the denial: suspend → channel_suspended, else hard_limit_reached.
# Anything else (no balance yet, no rule of the tenant's own, a restrict rule's cap,
# staff restrictions) returns no row and takes the full path. The current period is
# locked FOR SHARE before the balance, as every booking does
# (metering.services.periods.periods_lock_for_booking): a close under way is waited
# for, and a period it closed no longer matches, so nothing is reserved into it — the
# full path then answers 422 period_closed.
@cache
def fast_authorize_sql() -> str:
    """The statement with named ``%(name)s`` parameters (``FAST_AUTHORIZE_PARAMETERS``).
    Returns at most one row: ``authorization id, channel id, balance id, decision,
    reason, status, remaining, overage, expires_at``."""
    ch, rule = Names(Channel), Names(LimitRule)
    handled = "%(action_notify)s, %(action_charge)s, %(action_suspend)s"
    allows_overage = "%(action_notify)s, %(action_charge)s"
    allowed = f"""
        EXISTS (SELECT 1 FROM lim WHERE lim.action IN ({handled}))
        AND (
          b.used + b.reserved + %(quantity)s <= b.available
          OR EXISTS (
              SELECT 1 FROM lim
              WHERE lim.action IN ({allows_overage})
                AND (lim.hard_limit IS NULL
                     OR b.used + b.reserved + %(quantity)s <= b.available + lim.hard_limit)
          )
        )"""
    channel_id, period_id = "(SELECT id FROM ch)", "(SELECT id FROM per)"
    reserve = metering_sql.balance_reserve_cte(
        channel_id=channel_id, period_id=period_id, allowed=allowed
    )
    return f"""
WITH ch AS (
    SELECT {ch.id} AS id FROM {ch.db_table} WHERE {ch.code} = %(code)s AND {ch.active}
), per AS ({metering_sql.current_period_locked_cte()}
), lim AS (
    SELECT {rule.action} AS action, {rule.hard_limit} AS hard_limit FROM {rule.db_table}
    WHERE {rule.tenant} = %(tenant)s AND {rule.channel} = (SELECT id FROM ch)
      AND {rule.effective_from} <= %(now)s
    ORDER BY {rule.version} DESC LIMIT 1
), bal AS ({reserve}
), cur AS ({metering_sql.balance_read_cte(channel_id=channel_id, period_id=period_id)}
), decided AS (
    SELECT id, channel_id,
           CASE WHEN overage > 0 THEN %(decision_overage)s ELSE %(decision_allow)s END
               AS decision,
           CASE WHEN overage > 0 THEN %(reason_overage)s ELSE '' END AS reason,
           %(status_held)s AS status, remaining, overage,
           %(expires)s::timestamptz AS expires_at
    FROM (
        SELECT id, channel_id,
               GREATEST(available - used - reserved, 0) AS remaining,
               GREATEST(used + reserved - GREATEST(available, used + reserved - %(quantity)s), 0)
                   AS overage
        FROM bal
    ) AS allowed
    UNION ALL
    SELECT cur.id, cur.channel_id, %(decision_deny)s,
           CASE WHEN lim.action = %(action_suspend)s THEN %(reason_suspended)s
                ELSE %(reason_hard_limit)s END,
           %(status_denied)s, GREATEST(cur.available - cur.used - cur.reserved, 0), 0, NULL
    FROM cur, lim
    WHERE NOT EXISTS (SELECT 1 FROM bal)
      AND lim.action IN ({handled})
), auth AS ({metering_sql.authorization_insert_cte(source="decided")}
), hold AS ({metering_sql.hold_entry_insert_cte(source="auth")}
)
SELECT auth.id, decided.channel_id, decided.id, decided.decision, decided.reason,
       decided.status, decided.remaining, decided.overage, decided.expires_at
FROM auth, decided
"""


# Planning the statement costs three times running it, so each database connection
# prepares it once (a server-side prepared statement) and then only executes it.
_EXECUTE = f"EXECUTE creditguard_authorize ({', '.join(['%s'] * len(FAST_AUTHORIZE_PARAMETERS))})"
_prepared: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


@cache
def _prepare_sql() -> str:
    sql = fast_authorize_sql()
    for position, name in enumerate(FAST_AUTHORIZE_PARAMETERS, start=1):
        sql = sql.replace(f"%({name})s", f"${position}")
    types = ", ".join(FAST_AUTHORIZE_PARAMETERS.values())
    return f"PREPARE creditguard_authorize ({types}) AS {sql}"


def _prepare_once(cursor: Any) -> None:
    raw = connection.connection
    if raw in _prepared:
        return
    cursor.execute(_prepare_sql())
    _prepared[raw] = True


# Behind a transaction-pooling PgBouncer (settings.TRANSACTION_POOLING) two queries of
# one connection may run on two server sessions, and a session may have been prepared by
# another client: which sessions hold the statement is known only to them. So one query
# string prepares it where the session lacks it and executes it — one round trip, one
# server session (a query string is one transaction, never split by the pooler). SQL
# PREPARE is outside PgBouncer's own prepared statements (>= 1.21, protocol level only).
@cache
def _pooled_execute_sql() -> str:
    prepare = _prepare_sql()
    assert "$prepare$" not in prepare and "$creditguard$" not in prepare
    return (
        "DO $creditguard$ BEGIN IF NOT EXISTS (SELECT FROM pg_prepared_statements"
        " WHERE name = 'creditguard_authorize') THEN"
        f" EXECUTE $prepare${prepare.replace('%', '%%')}$prepare$; END IF; END $creditguard$;"
        f" {_EXECUTE}"
    )


def fast_authorize(values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Run the statement (prepared once per server session) with ``values`` for the
    parameters not in ``CONSTANTS``; its row, or None when the full path must decide.
    One statement is atomic by itself; the caller provides a savepoint inside a
    transaction (a taken idempotency key raises ``IntegrityError``)."""
    params = {**CONSTANTS, **values}
    arguments = [params[name] for name in FAST_AUTHORIZE_PARAMETERS]
    with connection.cursor() as cursor:
        if settings.TRANSACTION_POOLING:
            cursor.execute(_pooled_execute_sql(), arguments)
        else:
            _prepare_once(cursor)
            cursor.execute(_EXECUTE, arguments)
        row = cursor.fetchone()
    return tuple(row) if row is not None else None
