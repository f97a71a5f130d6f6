"""The fast path of an authorization: the common case in one prepared statement
(``policies.sql.fast_authorize``), and the reasons both paths give.

A conditional ``UPDATE`` of the balance takes its row lock and checks the room in one
step; the same statement inserts the authorization and its ``hold`` ledger entry, or a
denial worded by the rule. Anything it does not handle (no balance yet, no rule of the
tenant's own, a ``restrict`` rule, a taken idempotency key, a closed period) returns no
row, and the full path (``policies.services.authorize``) decides.
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from metering import sql as metering_sql
from metering.models import Authorization, Channel
from policies import sql as policies_sql
from tenants.models import Tenant


class Reason:
    """Why an authorization was denied, or allowed past the credits."""

    TENANT_SUSPENDED = "tenant_suspended"
    CHANNEL_SUSPENDED = "channel_suspended"
    CHANNEL_RESTRICTED = "channel_restricted"
    HARD_LIMIT_REACHED = "hard_limit_reached"
    CHANNEL_INACTIVE = "channel_inactive"
    OVERAGE = "overage"


def fast_path_applies(tenant: Tenant) -> bool:
    """The one-statement path (``policies.sql.fast_authorize_sql``) serves active
    tenants on PostgreSQL; restrictions, caps and every denial it does not word take
    the full path."""
    return (
        settings.AUTHORIZATION_FAST_PATH
        and metering_sql.native()
        and tenant.status == Tenant.Status.ACTIVE
    )


def authorization_fast(
    *, tenant: Tenant, channel_code: str, quantity: int, key: str | None, now: datetime
) -> Authorization | None:
    """The common case in one statement, or None when the full path must decide. A taken
    idempotency key raises ``IntegrityError`` (the full path answers with its owner)."""
    public_id = uuid.uuid4()
    expires_at = now + timedelta(seconds=settings.AUTHORIZATION_TTL_SECONDS)
    params: dict[str, Any] = {
        "code": channel_code,
        "tenant": tenant.pk,
        "now": now,
        "quantity": quantity,
        "public_id": public_id,
        "key": key,
        "expires": expires_at,
        "reason_overage": Reason.OVERAGE,
        "reason_suspended": Reason.CHANNEL_SUSPENDED,
        "reason_hard_limit": Reason.HARD_LIMIT_REACHED,
    }
    # One statement is atomic by itself; inside a caller's transaction a savepoint
    # keeps a failed statement (a taken idempotency key) from poisoning it.
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint:
        row = policies_sql.fast_authorize(params)
    if row is None:
        return None
    (
        authorization_id, channel_id, balance_id, decision, reason, status, remaining, overage,
        expires,
    ) = row  # fmt: skip
    return Authorization(
        pk=authorization_id,
        public_id=public_id,
        tenant=tenant,
        # The code is all the answer shows of the channel; no query for the rest.
        channel=Channel(pk=channel_id, code=channel_code),
        balance_id=balance_id,
        quantity=quantity,
        decision=decision,
        reason=reason,
        status=status,
        idempotency_key=key,
        window_counts=[],
        remaining_after=remaining,
        overage_after=overage,
        created_at=now,
        expires_at=expires,
    )
