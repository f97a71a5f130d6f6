"""Settling an authorization: commit (its units become usage), release, and the expiry of
reservations left held.

Each locks the authorization row first; a commit then takes its period ``FOR SHARE`` and
its balance (the close's order: period, then balances), so a commit and the close of its
period serialize like ingestion and the close do. Releases and expiries move only
``reserved`` and take no period lock. Units not used go back to the windowed caps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput, NotFound, Unprocessable, input_error
from metering.models import Authorization, Balance, BillingPeriod, Channel
from metering.services.evaluation_request import request_evaluation
from metering.services.ingest import usage_event_create
from metering.services.ledger import reservation_release, usage_apply
from metering.services.periods import period_lock_of_balance
from metering.services.rollups import slot_totals, usage_rollups_add
from metering.services.usage_validation import RESERVED_ID_PREFIX, content_hash
from policies.services.caps import caps_give_back
from tenants.models import Tenant


def _locked(tenant: Tenant, public_id: uuid.UUID) -> Authorization:
    authorization = (
        Authorization.objects.for_tenant(tenant)
        .select_for_update()
        .filter(public_id=public_id)
        .first()
    )
    if authorization is None:
        raise NotFound("No such authorization.")
    return authorization


def authorization_commit(
    *,
    tenant: Tenant,
    public_id: uuid.UUID,
    quantity: int | None = None,
    now: datetime | None = None,
) -> Authorization:
    """Turn a held reservation into usage: ``quantity`` (default: all reserved) units
    are booked as usage, the rest returns. Idempotent: committing again with no
    quantity or the same one answers the same; another quantity is a conflict.

    A reservation whose billing period has closed can no longer become usage (the
    period's charge is final): it is released, and once that is committed the call
    raises ``Unprocessable`` with the code ``period_closed``.

    Concurrency: the authorization row is locked, then its period ``FOR SHARE``
    (the close's order: period, then balances), then the balance; a commit and the
    close of its period serialize like ingestion and the close do.
    """
    now = now or timezone.now()
    authorization, closed = _commit(tenant=tenant, public_id=public_id, quantity=quantity, now=now)
    if closed is not None:
        raise Unprocessable(
            f"The billing period {closed.label} of this authorization is closed; "
            "nothing was booked and its reservation was released.",
            extra={"code": "period_closed"},
        )
    return authorization


@transaction.atomic
def _commit(
    *, tenant: Tenant, public_id: uuid.UUID, quantity: int | None, now: datetime
) -> tuple[Authorization, BillingPeriod | None]:
    """The commit, or the release of a reservation whose period closed (with that period)."""
    authorization = _locked(tenant, public_id)
    status = Authorization.Status
    if authorization.status == status.COMMITTED:
        if quantity is None or quantity == authorization.committed_quantity:
            return authorization, None
        raise Conflict(
            "This authorization was committed already with quantity "
            f"{authorization.committed_quantity}."
        )
    if authorization.status != status.HELD:
        raise Conflict(
            f"This authorization is {authorization.status}; only a held one can be committed."
        )
    if authorization.expires_at is not None and authorization.expires_at <= now:
        raise Conflict(f"This authorization expired at {authorization.expires_at.isoformat()}.")
    units = authorization.quantity if quantity is None else quantity
    if type(units) is not int or not 1 <= units <= authorization.quantity:
        raise InvalidInput(
            f"quantity must be from 1 to the {authorization.quantity} units reserved "
            "(release the authorization to use none).",
            errors=[input_error(["quantity"], f"1 to {authorization.quantity}")],
        )  # fmt: skip
    assert authorization.balance_id is not None  # held ones always have a balance
    period = period_lock_of_balance(balance_id=authorization.balance_id)
    if period.status == BillingPeriod.Status.CLOSED:
        _end(authorization, Authorization.Status.RELEASED, now)
        return authorization, period
    balance = Balance.objects.select_for_update().get(pk=authorization.balance_id)
    reservation_release(
        balance=balance, units=authorization.quantity, authorization=authorization,
        reason="committed", now=now,
    )  # fmt: skip
    caps_give_back(authorization.window_counts, authorization.quantity - units)
    # The answer reports what this commit booked, as things stand now: other reservations
    # may have been released or committed since the hold.
    room = balance.remaining
    authorization.overage_after = max(units - room, 0)
    authorization.remaining_after = max(room - units, 0)
    channel = Channel.objects.get(pk=authorization.channel_id)
    occurred_at = authorization.created_at
    usage_event_create(
        tenant=tenant,
        channel=channel,
        period_id=balance.period_id,
        client_event_id=f"{RESERVED_ID_PREFIX}{authorization.public_id}",
        quantity=units,
        occurred_at=occurred_at,
        metadata={"authorization": str(authorization.public_id)},
        content_hash=content_hash(channel.code, units, occurred_at.astimezone(UTC), "{}"),
        batch_id=authorization.public_id,
        received_at=now,
    )
    usage_apply(
        balances={(balance.channel_id, balance.period_id): balance},
        units_by_balance={(balance.channel_id, balance.period_id): (units, 1)},
        batch_id=authorization.public_id,
        now=now,
    )
    usage_rollups_add(tenant=tenant, totals=slot_totals([(channel.pk, occurred_at, units)]))
    authorization.status = status.COMMITTED
    authorization.committed_quantity = units
    authorization.resolved_at = now
    authorization.save(
        update_fields=[
            "status",
            "committed_quantity",
            "resolved_at",
            "overage_after",
            "remaining_after",
        ]
    )
    request_evaluation()
    return authorization, None


@transaction.atomic
def authorization_release(
    *, tenant: Tenant, public_id: uuid.UUID, now: datetime | None = None
) -> Authorization:
    """Give a reservation back. Idempotent: releasing a released (or expired) one
    answers the same; a committed or denied one is a conflict."""
    now = now or timezone.now()
    authorization = _locked(tenant, public_id)
    if authorization.status in (Authorization.Status.RELEASED, Authorization.Status.EXPIRED):
        return authorization
    if authorization.status != Authorization.Status.HELD:
        raise Conflict(
            f"This authorization is {authorization.status}; it holds nothing to release."
        )
    _end(authorization, Authorization.Status.RELEASED, now)
    return authorization


def _end(authorization: Authorization, status: str, now: datetime) -> None:
    assert authorization.balance_id is not None  # held ones always have a balance
    balance = Balance.objects.select_for_update().get(pk=authorization.balance_id)
    reservation_release(
        balance=balance, units=authorization.quantity, authorization=authorization,
        reason=status, now=now,
    )  # fmt: skip
    caps_give_back(authorization.window_counts, authorization.quantity)
    authorization.status = status
    authorization.resolved_at = now
    authorization.save(update_fields=["status", "resolved_at"])


def authorizations_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """Expire held reservations past their expiry, returning their units. Each is
    claimed under its row lock (``SKIP LOCKED``), so parallel runs expire each once."""
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            due = list(
                Authorization.objects.select_for_update(skip_locked=True)
                .filter(status=Authorization.Status.HELD, expires_at__lte=now)
                .order_by("balance_id", "pk")[:batch]
            )
            for authorization in due:
                _end(authorization, Authorization.Status.EXPIRED, now)
        expired += len(due)
        if len(due) < batch:
            return expired
