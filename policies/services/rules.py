"""Limit rules: versioned, audited changes of a tenant × channel's terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import InvalidInput
from metering.models import Channel, Grant
from metering.services.ledger import balance_lock, credits_reduce_locked, grant_create
from metering.services.periods import period_bounds, period_get_or_open
from notifications.models import Notification
from notifications.services.notify import notify
from policies.models import LimitRule
from policies.selectors import effective_rule
from policies.terms import Terms, terms_worsen, validate_terms
from tenants.models import Tenant

UNCHANGED: Any = object()


@dataclass(frozen=True)
class LimitChange:
    rule: LimitRule
    before: Terms
    after: Terms
    worsens: bool
    included_delta_applied: int


@transaction.atomic
def limit_rule_set(
    *,
    tenant: Tenant,
    channel: Channel,
    reason: str,
    actor: User | None,
    included_units: int = UNCHANGED,
    hard_limit: int | None = UNCHANGED,
    action: str = UNCHANGED,
    warning_thresholds: list[int] = UNCHANGED,
    restrict_units: int | None = UNCHANGED,
    restrict_window: str = UNCHANGED,
    carry_over: str = UNCHANGED,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> LimitChange:
    """Write a new version of the tenant × channel's limit rule.

    Terms not given keep their current value. A reason is required. The change,
    with the terms before and after, is audited in the same transaction. A change
    in force now moves the current period's included credits by the difference
    (a new included grant, or a reduction of undrawn included credits: units
    already used are not taken back). Concurrent changes of one tenant serialize
    on the tenant row, so versions never collide.
    """
    now = now or timezone.now()
    if not reason or not reason.strip():
        raise InvalidInput(
            "A limit change needs a reason.",
            errors=[{"pointer": "/reason", "field": "reason", "detail": "required"}],
        )
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    current = effective_rule(tenant=tenant, channel=channel, at=now)
    before = current.terms()
    changes = {
        key: value
        for key, value in {
            "included_units": included_units,
            "hard_limit": hard_limit,
            "action": action,
            "warning_thresholds": warning_thresholds,
            "restrict_units": restrict_units,
            "restrict_window": restrict_window,
            "carry_over": carry_over,
        }.items()
        if value is not UNCHANGED
    }
    after = before.with_changes(changes)
    validate_terms(after)
    effective_from = effective_from or now
    version = (
        LimitRule.objects.for_tenant(tenant)
        .filter(channel=channel)
        .aggregate(v=Max("version"))["v"]
        or 0
    ) + 1
    rule = LimitRule.objects.create(
        tenant=tenant,
        channel=channel,
        version=version,
        effective_from=effective_from,
        author=actor,
        reason=reason.strip(),
        created_at=now,
        **after.as_fields(),
    )
    applied = 0
    if effective_from <= now and after.included_units != before.included_units:
        applied = _move_included_credits(
            tenant=tenant, channel=channel, included_units=after.included_units,
            reason=f"Limit rule v{version}: {reason.strip()}", actor=actor, now=now,
        )  # fmt: skip
    worsens = terms_worsen(before, after)
    audit_record(
        actor=actor,
        action="limit_rule.set",
        tenant=tenant,
        obj=rule,
        before={**before.as_fields(), "source": current.source},
        after={**after.as_fields(), "version": version, "effective_from": effective_from,
               "worsens_terms": worsens, "included_delta_applied": applied},
        reason=reason.strip(),
        now=now,
    )  # fmt: skip
    if worsens:
        notify(
            tenant=tenant,
            kind=Notification.Kind.LIMIT_CHANGED,
            dedupe_key=f"limit_rule:{rule.pk}",
            payload={
                "channel": channel.code,
                "channel_name": channel.name,
                "unit": channel.unit,
                "effective_from": effective_from.isoformat(),
                "included_units": after.included_units,
                "before_included_units": before.included_units,
                "hard_limit": after.hard_limit,
                "action_past_limit": after.action,
                "restrict_units": after.restrict_units,
                "restrict_window": after.restrict_window,
            },
            now=now,
        )
    return LimitChange(
        rule=rule, before=before, after=after, worsens=worsens, included_delta_applied=applied
    )


def _move_included_credits(
    *, tenant: Tenant, channel: Channel, included_units: int, reason: str, actor: User | None,
    now: datetime,
) -> int:  # fmt: skip
    """Bring the current period's included credits to ``included_units``; returns the
    signed number of units actually moved."""
    period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=now))
    balance = balance_lock(tenant=tenant, channel=channel, period=period, now=now)
    granted = Grant.objects.filter(balance=balance, kind=Grant.Kind.INCLUDED).aggregate(
        units=Sum("units"), reduced=Sum("reduced_units")
    )
    current = (granted["units"] or 0) - (granted["reduced"] or 0)
    delta = included_units - current
    if delta > 0:
        grant_create(
            tenant=tenant, channel=channel, period=period, kind=Grant.Kind.INCLUDED,
            units=delta, expires_at=period.ends_at, reason=reason, actor=actor, now=now,
        )  # fmt: skip
        return delta
    if delta < 0:
        return -credits_reduce_locked(
            balance=balance, units=-delta, reason=reason, actor=actor, now=now, only_included=True
        )
    return 0


@transaction.atomic
def credits_reduce(
    *,
    tenant: Tenant,
    channel: Channel,
    units: int,
    reason: str,
    actor: User | None,
    now: datetime | None = None,
) -> int:
    """Reduce the current period's available credits (policy § 5) by up to ``units``
    undrawn units, audited. Returns the units reduced; refuses more than are undrawn."""
    now = now or timezone.now()
    if not reason or not reason.strip():
        raise InvalidInput("A reduction needs a reason.")
    if type(units) is not int or units < 1:
        raise InvalidInput("A reduction needs a positive whole number of units.")
    period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=now))
    balance = balance_lock(tenant=tenant, channel=channel, period=period, now=now)
    undrawn = max(balance.available - balance.used, 0)
    if units > undrawn:
        raise InvalidInput(
            f"Only {undrawn} unused credits are left to reduce; {units} were asked.",
            errors=[{"pointer": "/units", "field": "units", "detail": f"at most {undrawn}"}],
        )
    before = {"available": balance.available, "used": balance.used}
    reduced = credits_reduce_locked(
        balance=balance, units=units, reason=reason.strip(), actor=actor, now=now
    )
    audit_record(
        actor=actor,
        action="credits.reduce",
        tenant=tenant,
        obj=balance,
        before=before,
        after={"available": balance.available, "used": balance.used, "reduced": reduced},
        reason=reason.strip(),
        now=now,
    )
    return reduced


def limit_rules_initialize(*, tenant: Tenant, now: datetime | None = None) -> list[LimitRule]:
    """Give a new tenant version 1 of its rules from its cohort's defaults, for every
    active channel, so that later changes of a cohort default do not change its terms."""
    now = now or timezone.now()
    rules = []
    for channel in Channel.objects.filter(active=True):
        current = effective_rule(tenant=tenant, channel=channel, at=now)
        if current.rule is not None:
            continue
        terms = current.terms()
        rule = LimitRule.objects.create(
            tenant=tenant, channel=channel, version=1, effective_from=now, author=None,
            reason=f"Initial terms from the {current.source}", created_at=now, **terms.as_fields(),
        )  # fmt: skip
        audit_record(
            actor=None, action="limit_rule.initialize", tenant=tenant, obj=rule, before=None,
            after={**terms.as_fields(), "version": 1}, reason=rule.reason, now=now,
        )  # fmt: skip
        rules.append(rule)
    return rules
