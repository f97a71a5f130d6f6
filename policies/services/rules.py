"""Limit rules: versioned, audited changes of a tenant × channel's terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import InvalidInput, input_error
from metering.models import Channel, Grant
from metering.services.ledger import balance_lock, credits_reduce_locked, grant_create
from metering.services.periods import period_bounds, period_get_or_open
from notifications.models import Notification
from notifications.services.notify import notify
from policies.models import Action, LimitRule
from policies.selectors import effective_rule
from policies.services.billing_events import limit_rule_changed_emit
from policies.terms import Terms, terms_worsen, validate_terms, worse_terms
from tenants.models import Tenant

UNCHANGED: Any = object()

# Actions a worse change may take at once as an enforcement measure under the policy.
ENFORCEMENT_ACTIONS = (Action.RESTRICT, Action.SUSPEND)


@dataclass(frozen=True)
class LimitChange:
    """What a limit change wrote: its versions in order of their dates (``rule`` is the
    last), the terms in force now before it and the terms it leads to, and when its worse
    terms take effect (None when nothing worsens)."""

    rule: LimitRule
    versions: list[LimitRule]
    before: Terms
    after: Terms
    worsens: bool
    worse_from: datetime | None
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
    warning_thresholds: list[int] | tuple[int, ...] = UNCHANGED,
    restrict_units: int | None = UNCHANGED,
    restrict_window: str = UNCHANGED,
    carry_over: str = UNCHANGED,
    effective_from: datetime | None = None,
    immediate_as_enforcement: bool = False,
    customer_reason: str = "",
    now: datetime | None = None,
) -> LimitChange:
    """Change the tenant × channel's limit rule: new versions, audited, the tenant told.

    Terms not given keep their value. A reason is required. Better terms (and neutral
    ones, such as warning thresholds) take effect at ``effective_from``, default now.
    Worse terms (``policies.terms.worse_terms``) take effect no earlier than now +
    ``LIMIT_NOTICE_DAYS``: by default then, an earlier ``effective_from`` is refused. The
    exception is an enforcement measure (``immediate_as_enforcement``: the action becomes
    ``restrict`` or ``suspend``, with a ``customer_reason`` the tenant reads), which takes
    effect at ``effective_from`` or now. Included credits are granted per period, so a
    change of them dated in the future takes effect at the first period start at or
    after its date; one in force now moves the current period's included credits by the
    difference (a new grant, or a reduction of undrawn included credits).

    Each date becomes one version, audited with the terms before and after; versions
    already scheduled after it are written again with this change, so that an announced
    change is neither lost nor undone by a later one. The tenant is notified of a change
    that worsens its terms, with every term that changes (before, after, from when).
    Concurrent changes of one tenant serialize on the tenant row.
    """
    now = now or timezone.now()
    reason = (reason or "").strip()
    customer_reason = (customer_reason or "").strip()
    if not reason:
        raise _refused("reason", "A limit change needs a reason.", "required")
    if effective_from is not None and effective_from < now:
        raise _refused("effective_from", "A limit change cannot take effect in the past.",
                       "now or later")  # fmt: skip
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
    if not changes:
        raise _refused("terms", "A limit change needs at least one term.", "required")
    after = before.with_changes(changes)
    validate_terms(after)
    worse = worse_terms(before, after)
    if immediate_as_enforcement and worse:
        if after.action not in ENFORCEMENT_ACTIONS:
            raise _refused("immediate_as_enforcement", "Only an enforcement measure (restrict "
                           "or suspend) may worsen terms without notice.",
                           "the action must be restrict or suspend")  # fmt: skip
        if not customer_reason:
            raise _refused("customer_reason", "An enforcement measure needs a reason the "
                           "customer reads.", "required")  # fmt: skip
    worse_from = None
    if worse:
        worse_from = _worse_from(effective_from, immediate=immediate_as_enforcement, now=now)
    # A term given with the value it has (a form posts every field) changes nothing and
    # so has no date of its own.
    moved = {k: v for k, v in changes.items() if getattr(after, k) != getattr(before, k)}
    schedule = _schedule(
        tenant=tenant, changes=moved or changes, worse=worse, better_from=effective_from or now,
        worse_from=worse_from, now=now,
    )  # fmt: skip
    versions: list[LimitRule] = []
    for at, part in schedule:
        versions += _versions_write(
            tenant=tenant, channel=channel, at=at, changes=part, reason=reason, actor=actor,
            enforcement=immediate_as_enforcement and bool(worse), customer_reason=customer_reason,
            now=now,
        )  # fmt: skip
    applied = 0
    in_force = effective_rule(tenant=tenant, channel=channel, at=now)
    if in_force.included_units != before.included_units:
        applied = _move_included_credits(
            tenant=tenant, channel=channel, included_units=in_force.included_units,
            reason=f"Limit rule v{in_force.version}: {reason}", actor=actor, now=now,
        )  # fmt: skip
    if worse:
        _notify_worse(
            tenant=tenant, channel=channel, before=before, schedule=schedule, rule=versions[0],
            enforcement=immediate_as_enforcement, customer_reason=customer_reason, now=now,
        )  # fmt: skip
    limit_rule_changed_emit(tenant=tenant, channel=channel, versions=versions, before=before,
                            worsens=bool(worse), now=now)  # fmt: skip
    return LimitChange(
        rule=versions[-1], versions=versions, before=before, after=after, worsens=bool(worse),
        worse_from=worse_from, included_delta_applied=applied,
    )  # fmt: skip


def _refused(field: str, message: str, detail: str) -> InvalidInput:
    return InvalidInput(message, errors=[input_error([field], detail)])


def _worse_from(effective_from: datetime | None, *, immediate: bool, now: datetime) -> datetime:
    """When worse terms may take effect: after the notice, or at once for enforcement."""
    if immediate:
        return effective_from or now
    earliest = now + timedelta(days=settings.LIMIT_NOTICE_DAYS)
    if effective_from is None:
        return earliest
    if effective_from < earliest:
        raise _refused(
            "effective_from",
            f"Worse terms take effect no earlier than {settings.LIMIT_NOTICE_DAYS} days after "
            f"the tenant is told: {earliest.isoformat(timespec='minutes')} or later.",
            f"no earlier than {earliest.isoformat(timespec='minutes')} (the notice of "
            f"{settings.LIMIT_NOTICE_DAYS} days)",
        )
    return effective_from


def _schedule(
    *, tenant: Tenant, changes: dict[str, Any], worse: set[str], better_from: datetime,
    worse_from: datetime | None, now: datetime,
) -> list[tuple[datetime, dict[str, Any]]]:  # fmt: skip
    """The change cut by date: better terms at ``better_from``, worse at ``worse_from``,
    an included-credits change dated in the future at the next period start."""
    by_date: dict[datetime, dict[str, Any]] = {}
    for name, value in changes.items():
        at = worse_from if name in worse and worse_from is not None else better_from
        if name == "included_units" and at > now:
            at = _period_start_at_or_after(tenant=tenant, at=at)
        by_date.setdefault(at, {})[name] = value
    return sorted(by_date.items(), key=lambda item: item[0])


def _period_start_at_or_after(*, tenant: Tenant, at: datetime) -> datetime:
    bounds = period_bounds(tenant=tenant, at=at)
    return at if bounds.starts_at == at else bounds.ends_at


def _versions_write(
    *, tenant: Tenant, channel: Channel, at: datetime, changes: dict[str, Any], reason: str,
    actor: User | None, enforcement: bool, customer_reason: str, now: datetime,
) -> list[LimitRule]:  # fmt: skip
    """A version in force from ``at`` with ``changes``, and each version scheduled after
    ``at`` written again with them; each audited."""
    rules = LimitRule.objects.for_tenant(tenant).filter(channel=channel)
    later = sorted({r.effective_from for r in rules.filter(effective_from__gt=at)})
    bases = [(at, effective_rule(tenant=tenant, channel=channel, at=at))]
    bases += [(when, effective_rule(tenant=tenant, channel=channel, at=when)) for when in later]
    version = rules.aggregate(v=Max("version"))["v"] or 0
    written = []
    for when, base in bases:
        version += 1
        terms = base.with_changes(changes)
        validate_terms(terms)
        rule = LimitRule.objects.create(
            tenant=tenant, channel=channel, version=version, effective_from=when, author=actor,
            reason=reason if when == at else f"{reason} (scheduled v{base.version} again)",
            created_at=now, **terms.as_fields(),
        )  # fmt: skip
        worsens = terms_worsen(base, terms)
        audit_record(
            actor=actor, action="limit_rule.set", tenant=tenant, obj=rule,
            before={**base.terms().as_fields(), "source": base.source},
            after={**terms.as_fields(), "version": version, "effective_from": when,
                   "worsens_terms": worsens,
                   "immediate_as_enforcement": enforcement and worsens and when <= now,
                   "customer_reason": customer_reason},
            reason=reason, now=now,
        )  # fmt: skip
        written.append(rule)
    return written


def _notify_worse(
    *, tenant: Tenant, channel: Channel, before: Terms, schedule: list[tuple[datetime, dict]],
    rule: LimitRule, enforcement: bool, customer_reason: str, now: datetime,
) -> None:  # fmt: skip
    """Tell the tenant every term that changes and from when (the figures; the message is
    written in its language from them, ``notifications/messages.py``)."""
    terms, changes = before, []
    for at, part in schedule:
        after = terms.with_changes(part)
        changes += [
            {"term": name, "before": old, "after": new, "effective_from": at.isoformat()}
            for name, (old, new) in terms.changed(after).items()
        ]
        terms = after
    worse = worse_terms(before, terms)
    first_worse = min(c["effective_from"] for c in changes if c["term"] in worse)
    notify(
        tenant=tenant,
        kind=Notification.Kind.LIMIT_CHANGED,
        dedupe_key=f"limit_rule:{rule.pk}",
        payload={
            "channel": channel.code,
            "channel_name": channel.name,
            "unit": channel.unit,
            "effective_from": first_worse,
            "changes": changes,
            "included_units": terms.included_units,
            "before_included_units": before.included_units,
            "hard_limit": terms.hard_limit,
            "before_hard_limit": before.hard_limit,
            "action_past_limit": terms.action,
            "before_action_past_limit": before.action,
            "restrict_units": terms.restrict_units,
            "restrict_window": terms.restrict_window,
            "carry_over": terms.carry_over,
            "before_carry_over": before.carry_over,
            "enforcement": enforcement,
            "customer_reason": customer_reason,
        },
        now=now,
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
    customer_reason: str = "",
    now: datetime | None = None,
) -> int:
    """Reduce the current period's available credits (policy § 5) by up to ``units``
    undrawn units, audited, and tell the tenant (with ``customer_reason`` if given; the
    internal ``reason`` stays in the audit trail). Returns the units reduced; refuses
    more than are undrawn."""
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
            errors=[input_error(["units"], f"at most {undrawn}")],
        )
    before = {"available": balance.available, "used": balance.used}
    reduced = credits_reduce_locked(
        balance=balance, units=units, reason=reason.strip(), actor=actor, now=now
    )
    entry = audit_record(
        actor=actor,
        action="credits.reduce",
        tenant=tenant,
        obj=balance,
        before=before,
        after={"available": balance.available, "used": balance.used, "reduced": reduced},
        reason=reason.strip(),
        now=now,
    )
    notify(
        tenant=tenant,
        kind=Notification.Kind.CREDITS_REDUCED,
        dedupe_key=f"credits_reduced:{entry.pk}",  # one message per reduction
        payload={
            "channel": channel.code, "channel_name": channel.name, "unit": channel.unit,
            "period": period.label, "reduced_units": reduced,
            "available_before": before["available"], "available": balance.available,
            "used": balance.used, "reason": customer_reason.strip(),
        },
        now=now,
    )  # fmt: skip
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
