"""Authorization: "may this tenant send q units on this channel now?" — decided and,
if allowed, reserved atomically.

Locking design: every decision for a tenant × channel runs under the row lock of its
current balance (``SELECT … FOR UPDATE``), so the check "used + reserved + q fits" and
the hold that raises ``reserved`` cannot interleave: the units allowed never pass the
ceiling, whatever the concurrency. The common case is one statement
(``policies.services.authorization_fast``); windowed caps are counters of their own
(``policies.services.caps``); commit, release and expiry are
``policies.services.authorization_settle``.

A hot tenant × channel serializes on its balance row; the transaction holding it is a
handful of indexed statements (see docs/ARCHITECTURE.md and docs/BENCHMARKS.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from creditguard.errors import Conflict, InvalidInput, Unprocessable, input_error
from creditguard.metrics import AUTHORIZATIONS
from metering.models import Authorization, Balance, BillingPeriod, Channel
from metering.services.ingest import with_deadlock_retry
from metering.services.ledger import balance_lock, reservation_hold
from metering.services.periods import period_bounds, periods_lock_for_booking
from policies.models import Action, Restriction
from policies.selectors import effective_rule, restrictions_in_force
from policies.services.authorization_fast import Reason, authorization_fast, fast_path_applies
from policies.services.caps import cap_take, caps_for, caps_give_back, caps_retry_at
from tenants.models import Tenant

MAX_IDEMPOTENCY_KEY = 200


class _KeyTaken(Exception):
    """A concurrent request with the same idempotency key won the race."""


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
            errors=[input_error(["quantity"], f"1 to {settings.USAGE_MAX_QUANTITY}")],
        )
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not idempotency_key.strip()
        or len(idempotency_key) > MAX_IDEMPOTENCY_KEY
    ):
        raise InvalidInput(
            "idempotency_key must be a non-empty string of at most "
            f"{MAX_IDEMPOTENCY_KEY} characters.",
            errors=[input_error(["idempotency_key"], "invalid")],
        )
    now = now or timezone.now()
    if isinstance(channel_code, str) and fast_path_applies(tenant):
        try:
            fast = authorization_fast(
                tenant=tenant, channel_code=channel_code, quantity=quantity, key=idempotency_key,
                now=now,
            )  # fmt: skip
        except IntegrityError:
            fast = None  # the idempotency key is taken: the full path answers with its owner
        if fast is not None:
            return _counted(fast)
    channel = (
        Channel.objects.filter(code=channel_code).first() if isinstance(channel_code, str) else None
    )
    if channel is None:
        raise InvalidInput(
            f"Unknown channel {channel_code!r}.",
            errors=[input_error(["channel"], "unknown channel")],
        )
    if idempotency_key is not None:
        existing = (
            Authorization.objects.for_tenant(tenant).filter(idempotency_key=idempotency_key).first()
        )
        if existing is not None:
            return _replay(existing, channel, quantity)
    try:
        return _counted(
            with_deadlock_retry(
                lambda: _decide(
                    tenant=tenant, channel=channel, quantity=quantity, key=idempotency_key,
                    now=now,
                )
            )
        )  # fmt: skip
    except _KeyTaken:
        existing = Authorization.objects.for_tenant(tenant).get(idempotency_key=idempotency_key)
        return _replay(existing, channel, quantity)


def _counted(authorization: Authorization) -> Authorization:
    """A decision made (not a replay) counts in ``creditguard_authorizations_total``."""
    AUTHORIZATIONS.labels(
        decision=authorization.decision, reason=authorization.reason or "none"
    ).inc()
    return authorization


def _replay(existing: Authorization, channel: Channel, quantity: int) -> Authorization:
    if existing.channel_id != channel.pk or existing.quantity != quantity:
        raise Conflict(
            "This idempotency key was used for a different request "
            f"(channel {existing.channel.code}, quantity {existing.quantity}).",
            errors=[input_error(["idempotency_key"], "already used for a different request")],
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

    def deny(
        reason: str, balance: Balance | None = None, retry_at: datetime | None = None
    ) -> Authorization:
        authorization.decision = Authorization.Decision.DENY
        authorization.status = Authorization.Status.DENIED
        authorization.reason = reason
        authorization.balance = balance
        authorization.remaining_after = balance.remaining if balance else 0
        authorization.retry_at = retry_at
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
    suspensions = [r for r in restrictions if r.kind == Restriction.Kind.SUSPEND]
    if suspensions:
        whole = suspensions[0].channel_id is None
        # Allowed again, at the earliest, once every suspension has ended; never by
        # waiting while one has no end.
        ends = [r.ends_at for r in suspensions]
        retry_at = None if None in ends else max(e for e in ends if e is not None)
        reason = Reason.TENANT_SUSPENDED if whole else Reason.CHANNEL_SUSPENDED
        return deny(reason, balance, retry_at)

    rule = effective_rule(tenant=tenant, channel=channel, at=now)
    in_use = balance.used + balance.reserved
    overage_part = max(in_use + quantity - max(balance.available, in_use), 0)
    if overage_part > 0:
        if rule.action == Action.SUSPEND:
            return deny(Reason.CHANNEL_SUSPENDED, balance)
        if rule.hard_limit is not None and in_use + quantity > balance.available + rule.hard_limit:
            return deny(Reason.HARD_LIMIT_REACHED, balance)

    taken: list[list[int]] = []
    caps = caps_for(restrictions=restrictions, rule=rule, channel=channel, quantity=quantity,
                 overage_part=overage_part)  # fmt: skip
    for index, cap in enumerate(caps):
        counter_id = cap_take(tenant=tenant, cap=cap, now=now)
        if counter_id is None:
            caps_give_back(taken, quantity)
            retry_at = caps_retry_at(tenant=tenant, refused=caps[index:], now=now)
            return deny(Reason.CHANNEL_RESTRICTED, balance, retry_at)
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
