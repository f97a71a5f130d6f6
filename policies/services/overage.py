"""Overage charges (policy § 7): kept current as usage arrives, finalised when the
period closes, decided once — bill, waive, or waive partly — and audited."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Min, Sum
from django.utils import timezone

from creditguard.audit import audit_record, snapshot
from creditguard.errors import Conflict, InvalidInput, Unprocessable
from creditguard.money import round_money
from metering.models import Balance, BillingPeriod, Channel
from metering.services.periods import period_bounds
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from policies.models import Action, OverageCharge
from policies.selectors import effective_rule
from policies.services.billing_events import overage_charge_decided_emit
from policies.services.fees import fee_spans, overage_fee
from tenants.models import Tenant

DECISIONS = ("bill", "waive", "partly_waive")


def overage_factors(*, tenant: Tenant, channel: Channel, period: BillingPeriod, balance: Balance,
                    now: datetime) -> dict[str, Any]:  # fmt: skip
    """What the decider sees (policy § 7): type of use, relationship, system impact."""
    period_used = (
        Balance.objects.for_tenant(tenant).filter(period=period).aggregate(u=Sum("used"))["u"] or 0
    )
    history = OverageCharge.objects.for_tenant(tenant).exclude(period=period)
    lifetime = history.aggregate(billed=Sum("billed_amount"), waived=Sum("waived_amount"))
    waivers = history.filter(
        status__in=[OverageCharge.Status.WAIVED, OverageCharge.Status.PARTLY_WAIVED]
    ).aggregate(n=Count("pk"))["n"]
    # A customer since the account began: its creation, or the start of its first
    # billing period when that came before the month it was created in (the demo's
    # history, an imported account) — counted to the end of the charge's period, or now
    # while it is open (not to the close, days after it).
    first = BillingPeriod.objects.for_tenant(tenant).aggregate(first=Min("starts_at"))["first"]
    created_month = period_bounds(tenant=tenant, at=tenant.created_at).starts_at
    began = first if first is not None and first < created_month else tenant.created_at
    tenure = max((min(now, period.ends_at) - began).days, 0)
    days = (period.ends_at - period.starts_at).total_seconds() / 86400
    capacity = (channel.capacity_per_day or 0) * days
    return {
        "type_of_use": {
            "channel": channel.code,
            "share_of_period_usage": round(balance.used / period_used, 4) if period_used else 0,
        },
        "relationship": {
            "tenure_days": tenure,
            "lifetime_billed": str(lifetime["billed"] or Decimal("0.00")),
            "lifetime_waived": str(lifetime["waived"] or Decimal("0.00")),
            "earlier_waivers": waivers,
        },
        "system_impact": {
            "share_of_channel_capacity": round(balance.used / capacity, 6) if capacity else None,
        },
    }


@transaction.atomic
def overage_charge_refresh(
    *, tenant: Tenant, channel: Channel, period: BillingPeriod, now: datetime | None = None
) -> OverageCharge | None:
    """Bring the charge of a tenant × channel × period up to date with its balance:
    units over, the fee of those not carried over (each unit priced by the schedule in
    effect when it was used, ``fees.overage_fee``), factors. Created at the first
    overage; a finalised charge never changes. Safe to run twice or in parallel
    (the balance row lock serializes refreshes)."""
    now = now or timezone.now()
    balance = (
        Balance.objects.for_tenant(tenant).select_for_update()
        .filter(channel=channel, period=period).first()
    )  # fmt: skip
    if balance is None:
        return None
    charge = OverageCharge.objects.for_tenant(tenant).filter(channel=channel, period=period).first()
    if charge is not None and charge.finalized_at is not None:
        return charge
    units = balance.overage_units
    if charge is None and units == 0:
        return None
    at = min(now, period.ends_at)
    rule = effective_rule(tenant=tenant, channel=channel, at=at)
    carried = min(charge.carried_units, units) if charge is not None else 0
    fee = overage_fee(
        balance=balance, units=units - carried, currency=tenant.currency,
        spans=fee_spans(tenant=tenant, channel=channel, until=at), period_start=period.starts_at,
    )  # fmt: skip
    fields = {
        "action": rule.action,
        "units": units,
        "schedule": fee.schedule,
        "amount": fee.amount,
        "currency": fee.currency,
        "factors": overage_factors(
            tenant=tenant, channel=channel, period=period, balance=balance, now=now
        ),
        "updated_at": now,
    }
    if charge is None:
        return OverageCharge.objects.create(tenant=tenant, channel=channel, period=period, **fields)
    for name, value in fields.items():
        setattr(charge, name, value)
    charge.save(update_fields=list(fields))
    return charge


@transaction.atomic
def overage_charge_finalize(
    *,
    charge: OverageCharge,
    carried_units: int = 0,
    announce: bool = True,
    now: datetime | None = None,
) -> OverageCharge:
    """Freeze a closed period's charge, less the ``carried_units`` of its overage carried
    into the next period (a unit is carried or charged, never both); bill it at once when
    its rule charges overage and the amount is below the auto-bill threshold, and tell the
    tenant (unless ``announce`` is off: the caller tells it otherwise). Finalising twice
    changes nothing."""
    now = now or timezone.now()
    charge = OverageCharge.objects.select_for_update().get(pk=charge.pk)
    if charge.finalized_at is not None:
        return charge
    if carried_units:
        charge.carried_units = carried_units
        charge.save(update_fields=["carried_units"])
    tenant = Tenant.objects.get(pk=charge.tenant_id)
    period = BillingPeriod.objects.get(pk=charge.period_id)
    channel = Channel.objects.get(pk=charge.channel_id)
    refreshed = overage_charge_refresh(tenant=tenant, channel=channel, period=period, now=now)
    assert refreshed is not None
    charge = refreshed
    charge.finalized_at = now
    charge.save(update_fields=["finalized_at"])
    threshold = settings.OVERAGE_AUTO_BILL_BELOW
    if charge.units == charge.carried_units or charge.amount == 0:
        # Nothing left to charge (credits added later covered the overage, all of it was
        # carried, or no fee schedule was in effect for the tenant when its units were
        # used, so they are priced at nothing): settled at 0.00, so it waits in no one's
        # queue — a decision on 0.00 bills and waives the same; 0.00 is not told.
        why = "no overage left to charge" if charge.units == charge.carried_units else (
            "no fee schedule priced its units"
        )  # fmt: skip
        _decide(charge, "bill", None, f"Automatically settled: {why}",
                None, now, announce=announce, automatic=True)  # fmt: skip
    elif charge.action == Action.CHARGE_OVERAGE and charge.amount < threshold:
        _decide(charge, "bill", None, f"Automatically billed: below {threshold} {charge.currency}",
                None, now, announce=announce, automatic=True)  # fmt: skip
    return charge


def overage_carried_notify(
    *, charge: OverageCharge, next_period: BillingPeriod, now: datetime
) -> None:
    """Tell the tenant, once, how a finalised charge's overage was carried into
    ``next_period``: the units carried, and what became of those that could not be
    (billed, or left to the decision it will be told of), with the amount."""
    channel = Channel.objects.get(pk=charge.channel_id)
    period = BillingPeriod.objects.get(pk=charge.period_id)
    notifications_create(
        specs=[
            NotificationSpec(
                tenant_id=charge.tenant_id,
                kind=Notification.Kind.OVERAGE_CARRIED,
                dedupe_key=f"overage_carried:{charge.pk}",
                payload={
                    "channel": channel.code, "channel_name": channel.name, "unit": channel.unit,
                    "period": period.label, "next_period": next_period.label,
                    "overage_units": charge.units, "carried_units": charge.carried_units,
                    "charged_units": charge.units - charge.carried_units,
                    "amount": str(charge.amount), "currency": charge.currency,
                    "status": charge.status,
                },
            )
        ],
        now=now,
    )  # fmt: skip


@transaction.atomic
def overage_decide(
    *,
    charge: OverageCharge,
    decision: str,
    reason: str,
    actor: User | None,
    waived_amount: Decimal | str | None = None,
    customer_reason: str = "",
    now: datetime | None = None,
) -> OverageCharge:
    """Decide a finalised charge once: ``bill`` it, ``waive`` it, or ``partly_waive``
    it by ``waived_amount``. A reason is required (internal, for the audit trail); a
    second decision is refused; the decision and the factors shown are audited. The
    tenant is told the decision and its amounts, with ``customer_reason`` if given —
    never the internal reason."""
    now = now or timezone.now()
    if decision not in DECISIONS:
        raise InvalidInput(f"The decision must be one of {', '.join(DECISIONS)}.")
    if not reason or not reason.strip():
        raise InvalidInput("A decision needs a reason.")
    charge = OverageCharge.objects.select_for_update().get(pk=charge.pk)
    if charge.status != OverageCharge.Status.PENDING:
        raise Conflict(
            f"This charge was decided already ({charge.status} on {charge.decided_at:%Y-%m-%d})."
        )
    if charge.finalized_at is None:
        raise Unprocessable(
            "The period is still open; decide once it has closed and the charge is final."
        )
    waived = None
    if decision == "partly_waive":
        try:
            waived = round_money(Decimal(str(waived_amount)), charge.currency)
        except InvalidOperation:
            raise InvalidInput(f"{waived_amount!r} is not an amount.") from None
        if not Decimal(0) < waived < charge.amount:
            raise InvalidInput(
                "A partial waiver lies between 0 and the charge's "
                f"{charge.amount} {charge.currency}."
            )
    return _decide(charge, decision, waived, reason.strip(), actor, now,
                   customer_reason=customer_reason.strip())  # fmt: skip


def _decide(charge: OverageCharge, decision: str, waived: Decimal | None, reason: str,
            actor: User | None, now: datetime, *, customer_reason: str = "",
            announce: bool = True, automatic: bool = False) -> OverageCharge:  # fmt: skip
    before = snapshot(charge, ["status", "amount", "billed_amount", "waived_amount"])
    if decision == "bill":
        charge.status, charge.billed_amount, charge.waived_amount = (
            OverageCharge.Status.BILLED,
            charge.amount,
            Decimal("0.00"),
        )
    elif decision == "waive":
        charge.status, charge.billed_amount, charge.waived_amount = (
            OverageCharge.Status.WAIVED,
            Decimal("0.00"),
            charge.amount,
        )
    else:
        assert waived is not None
        charge.status, charge.billed_amount, charge.waived_amount = (
            OverageCharge.Status.PARTLY_WAIVED,
            charge.amount - waived,
            waived,
        )
    charge.decided_at, charge.decided_by, charge.decision_reason = now, actor, reason
    charge.save(update_fields=["status", "billed_amount", "waived_amount", "decided_at",
                               "decided_by", "decision_reason"])  # fmt: skip
    audit_record(
        actor=actor, action=f"overage.{decision}", tenant=charge.tenant, obj=charge,
        before=before,
        after={**(snapshot(charge, ["status", "amount", "billed_amount", "waived_amount"]) or {}),
               "factors": charge.factors, "customer_reason": customer_reason},
        reason=reason, now=now,
    )  # fmt: skip
    # Every decision is a line item for the billing system, 0.00 ones too (the export
    # lists them); only the tenant is spared a 0.00 message.
    overage_charge_decided_emit(charge=charge, automatic=automatic, now=now)
    if announce and charge.amount > 0:
        _decision_notify(charge, customer_reason, now)
    return charge


def _decision_notify(charge: OverageCharge, customer_reason: str, now: datetime) -> None:
    """The decision, once, with its amounts and the reason written for the tenant."""
    channel = Channel.objects.get(pk=charge.channel_id)
    period = BillingPeriod.objects.get(pk=charge.period_id)
    notifications_create(
        specs=[
            NotificationSpec(
                tenant_id=charge.tenant_id,
                kind=Notification.Kind.OVERAGE_DECIDED,
                dedupe_key=f"overage_decided:{charge.pk}",
                payload={
                    "channel": channel.code, "channel_name": channel.name, "unit": channel.unit,
                    "period": period.label, "charged_units": charge.units - charge.carried_units,
                    "status": charge.status, "amount": str(charge.amount),
                    "billed_amount": str(charge.billed_amount),
                    "waived_amount": str(charge.waived_amount), "currency": charge.currency,
                    "reason": customer_reason,
                },
            )
        ],
        now=now,
    )  # fmt: skip
