"""Authorization: "may this tenant send q units on this channel now?" — decided and,
if allowed, reserved atomically.

Locking design: every decision for a tenant × channel runs under the row lock of its
current balance (``SELECT … FOR UPDATE``), so the check "used + reserved + q fits" and
the hold that raises ``reserved`` cannot interleave: the units allowed never pass the
ceiling, whatever the concurrency. Windowed caps (a staff throttle of a channel or of
the whole tenant, or a rule's ``restrict`` action) are counters per window taken with
a conditional ``UPDATE … SET units = units + q WHERE units + q <= cap``: atomic on
their own, so a whole-tenant cap holds across channels whose balances lock apart.

A hot tenant × channel serializes on its balance row; the transaction holding it is a
handful of indexed statements (see docs/ARCHITECTURE.md and docs/BENCHMARKS.md).
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput, NotFound, Unprocessable
from metering import sql as metering_sql
from metering.models import (
    Authorization,
    Balance,
    BillingPeriod,
    Channel,
    UsageEvent,
    WindowCounter,
)
from metering.services.evaluation_request import request_evaluation
from metering.services.ingest import RESERVED_ID_PREFIX, content_hash, with_deadlock_retry
from metering.services.ledger import (
    balance_lock,
    reservation_hold,
    reservation_release,
    usage_apply,
)
from metering.services.periods import (
    period_bounds,
    period_lock_of_balance,
    periods_lock_for_booking,
)
from policies import sql as policies_sql
from policies.models import Action, Restriction, Window
from policies.selectors import EffectiveRule, effective_rule, restrictions_in_force
from tenants.models import Tenant

MAX_IDEMPOTENCY_KEY = 200


class Reason:
    TENANT_SUSPENDED = "tenant_suspended"
    CHANNEL_SUSPENDED = "channel_suspended"
    CHANNEL_RESTRICTED = "channel_restricted"
    HARD_LIMIT_REACHED = "hard_limit_reached"
    CHANNEL_INACTIVE = "channel_inactive"
    OVERAGE = "overage"


@dataclass(frozen=True)
class Cap:
    key: str
    limit: int
    window: str
    units: int


class _KeyTaken(Exception):
    """A concurrent request with the same idempotency key won the race."""


def window_start(*, at: datetime, window: str, tenant: Tenant) -> datetime:
    """Start of the hour (UTC) or of the tenant's local day that contains ``at``."""
    if window == Window.HOUR:
        return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = at.astimezone(tenant.tzinfo)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _take(*, tenant: Tenant, cap: Cap, now: datetime) -> int | None:
    """Count ``cap.units`` in the current window if the cap allows; the counter's id, or None."""
    start = window_start(at=now, window=cap.window, tenant=tenant)
    counter, _ = WindowCounter.objects.get_or_create(tenant=tenant, key=cap.key, window_start=start)
    taken = WindowCounter.objects.filter(pk=counter.pk, units__lte=cap.limit - cap.units).update(
        units=F("units") + cap.units
    )
    return counter.pk if taken else None


def _give_back(window_counts: list[list[int]], units: int) -> None:
    """Return up to ``units`` to the counters an authorization took from."""
    for counter_id, counted in window_counts:
        amount = min(counted, units)
        if amount > 0:
            WindowCounter.objects.filter(pk=counter_id).update(
                units=Greatest(F("units") - amount, 0)
            )


def _caps(
    *, restrictions: list[Restriction], rule: EffectiveRule, channel: Channel, quantity: int,
    overage_part: int,
) -> list[Cap]:  # fmt: skip
    caps = [
        Cap(key=f"restriction:{r.pk}", limit=r.limit_units or 0, window=r.window, units=quantity)
        for r in restrictions
        if r.kind == Restriction.Kind.THROTTLE
    ]
    if overage_part > 0 and rule.action == Action.RESTRICT:
        caps.append(
            Cap(
                key=f"rule:{channel.pk}",
                limit=rule.restrict_units or 0,
                window=rule.restrict_window or Window.DAY,
                units=overage_part,
            )
        )
    return caps


def authorization_create(
    *,
    tenant: Tenant,
    channel_code: str,
    quantity: int,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Authorization:
    """Decide, and if allowed reserve, ``quantity`` units of ``channel_code``.

    Returns the stored authorization (denials are stored too). The same
    idempotency key answers with the same authorization; used for another channel
    or quantity it raises ``Conflict``. Concurrent requests with one key create
    one authorization: the unique (tenant, key) index lets one win; the others,
    rolled back, answer with the winner's. When the current billing period is
    closed (only a clock far behind the closer's gets here), nothing is reserved
    or stored: ``Unprocessable`` with the code ``period_closed``.
    """
    if type(quantity) is not int or not 1 <= quantity <= settings.USAGE_MAX_QUANTITY:
        raise InvalidInput(
            f"quantity must be a whole number from 1 to {settings.USAGE_MAX_QUANTITY}.",
            errors=[{"pointer": "/quantity", "field": "quantity", "detail": "1 to "
                     f"{settings.USAGE_MAX_QUANTITY}"}],
        )  # fmt: skip
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not idempotency_key.strip()
        or len(idempotency_key) > MAX_IDEMPOTENCY_KEY
    ):
        raise InvalidInput(
            "idempotency_key must be a non-empty string of at most "
            f"{MAX_IDEMPOTENCY_KEY} characters.",
            errors=[
                {"pointer": "/idempotency_key", "field": "idempotency_key", "detail": "invalid"}
            ],
        )
    now = now or timezone.now()
    if isinstance(channel_code, str) and fast_path_applies(tenant):
        try:
            fast = _fast_authorize(
                tenant=tenant, channel_code=channel_code, quantity=quantity, key=idempotency_key,
                now=now,
            )  # fmt: skip
        except IntegrityError:
            fast = None  # the idempotency key is taken: the full path answers with its owner
        if fast is not None:
            return fast
    channel = (
        Channel.objects.filter(code=channel_code).first() if isinstance(channel_code, str) else None
    )
    if channel is None:
        raise InvalidInput(
            f"Unknown channel {channel_code!r}.",
            errors=[{"pointer": "/channel", "field": "channel", "detail": "unknown channel"}],
        )
    if idempotency_key is not None:
        existing = (
            Authorization.objects.for_tenant(tenant).filter(idempotency_key=idempotency_key).first()
        )
        if existing is not None:
            return _replay(existing, channel, quantity)
    try:
        return with_deadlock_retry(
            lambda: _decide(
                tenant=tenant, channel=channel, quantity=quantity, key=idempotency_key, now=now
            )
        )
    except _KeyTaken:
        existing = Authorization.objects.for_tenant(tenant).get(idempotency_key=idempotency_key)
        return _replay(existing, channel, quantity)


def fast_path_applies(tenant: Tenant) -> bool:
    """The one-statement path (``policies.sql.fast_authorize_sql``) serves active
    tenants on PostgreSQL; restrictions, caps and every denial it does not word take
    the full path."""
    return (
        settings.AUTHORIZATION_FAST_PATH
        and metering_sql.native()
        and tenant.status == Tenant.Status.ACTIVE
    )


def _fast_authorize(
    *, tenant: Tenant, channel_code: str, quantity: int, key: str | None, now: datetime
) -> Authorization | None:
    """The common case in one statement, or None when the full path must decide."""
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


def _replay(existing: Authorization, channel: Channel, quantity: int) -> Authorization:
    if existing.channel_id != channel.pk or existing.quantity != quantity:
        raise Conflict(
            "This idempotency key was used for a different request "
            f"(channel {existing.channel.code}, quantity {existing.quantity}).",
            errors=[{"pointer": "/idempotency_key", "field": "idempotency_key",
                     "detail": "already used for a different request"}],
        )  # fmt: skip
    return existing


@transaction.atomic
def _decide(
    *, tenant: Tenant, channel: Channel, quantity: int, key: str | None, now: datetime
) -> Authorization:
    authorization = Authorization(
        public_id=uuid.uuid4(), tenant=tenant, channel=channel, quantity=quantity,
        idempotency_key=key, created_at=now,
    )  # fmt: skip

    def deny(reason: str, balance: Balance | None = None) -> Authorization:
        authorization.decision = Authorization.Decision.DENY
        authorization.status = Authorization.Status.DENIED
        authorization.reason = reason
        authorization.balance = balance
        authorization.remaining_after = balance.remaining if balance else 0
        _save(authorization, key)
        return authorization

    if tenant.status == Tenant.Status.CLOSED:
        return deny(Reason.TENANT_SUSPENDED)
    if not channel.active:
        return deny(Reason.CHANNEL_INACTIVE)
    bounds = period_bounds(tenant=tenant, at=now)
    period = periods_lock_for_booking(tenant=tenant, bounds=[bounds])[bounds.label]
    if period.status == BillingPeriod.Status.CLOSED:
        raise Unprocessable(
            f"The billing period {period.label} is closed; nothing was reserved.",
            extra={"code": "period_closed"},
        )
    balance = balance_lock(tenant=tenant, channel=channel, period=period, now=now)
    # The tenant's status is active unless some restriction exists: skip the query then.
    restrictions = (
        restrictions_in_force(tenant=tenant, at=now, channel=channel)
        if tenant.status != Tenant.Status.ACTIVE
        else []
    )
    for restriction in restrictions:
        if restriction.kind == Restriction.Kind.SUSPEND:
            whole = restriction.channel_id is None
            return deny(Reason.TENANT_SUSPENDED if whole else Reason.CHANNEL_SUSPENDED, balance)

    rule = effective_rule(tenant=tenant, channel=channel, at=now)
    in_use = balance.used + balance.reserved
    overage_part = max(in_use + quantity - max(balance.available, in_use), 0)
    if overage_part > 0:
        if rule.action == Action.SUSPEND:
            return deny(Reason.CHANNEL_SUSPENDED, balance)
        if rule.hard_limit is not None and in_use + quantity > balance.available + rule.hard_limit:
            return deny(Reason.HARD_LIMIT_REACHED, balance)

    taken: list[list[int]] = []
    caps = _caps(restrictions=restrictions, rule=rule, channel=channel, quantity=quantity,
                 overage_part=overage_part)  # fmt: skip
    for cap in caps:
        counter_id = _take(tenant=tenant, cap=cap, now=now)
        if counter_id is None:
            _give_back(taken, quantity)
            return deny(Reason.CHANNEL_RESTRICTED, balance)
        taken.append([counter_id, cap.units])

    authorization.decision = (
        Authorization.Decision.ALLOW_OVERAGE if overage_part else Authorization.Decision.ALLOW
    )
    authorization.reason = Reason.OVERAGE if overage_part else ""
    authorization.status = Authorization.Status.HELD
    authorization.balance = balance
    authorization.window_counts = taken
    authorization.expires_at = now + timedelta(seconds=settings.AUTHORIZATION_TTL_SECONDS)
    authorization.overage_after = overage_part
    authorization.remaining_after = max(balance.remaining - quantity, 0)
    _save(authorization, key)
    reservation_hold(balance=balance, units=quantity, authorization=authorization, now=now)
    return authorization


def _save(authorization: Authorization, key: str | None) -> None:
    if key is None:
        authorization.save(force_insert=True)
        return
    try:
        with transaction.atomic():
            authorization.save(force_insert=True)
    except IntegrityError as exc:
        raise _KeyTaken from exc


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
            errors=[{"pointer": "/quantity", "field": "quantity",
                     "detail": f"1 to {authorization.quantity}"}],
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
    _give_back(authorization.window_counts, authorization.quantity - units)
    channel = Channel.objects.get(pk=authorization.channel_id)
    occurred_at = authorization.created_at
    UsageEvent.objects.create(
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
    authorization.status = status.COMMITTED
    authorization.committed_quantity = units
    authorization.resolved_at = now
    authorization.save(update_fields=["status", "committed_quantity", "resolved_at"])
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
    _give_back(authorization.window_counts, authorization.quantity)
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
