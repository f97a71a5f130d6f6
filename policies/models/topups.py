"""Top-up packs, offers, purchases and automatic top-ups."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

from creditguard.locale_format import money_text
from creditguard.tenancy import TenantScopedManager
from metering.models import Balance, BillingPeriod, Channel, Grant
from tenants.models import Tenant


class TopUpPack(models.Model):
    """A pack of credits staff offer for sale on a channel."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    units = models.BigIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(max_digits=14, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="EUR")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["channel", "units"]

    def __str__(self) -> str:
        price = money_text(self.price, self.currency, language="en")
        return f"{self.units:,} {self.channel.name} for {price}"


class TopUpOffer(models.Model):
    """An offer to a tenant to buy a pack, open until it expires or is accepted."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Source(models.TextChoices):
        STAFF = "staff", "Staff"
        WARNING = "warning", "Threshold warning"
        AUTOMATIC = "automatic", "Automatic top-up"
        # A pack the customer bought directly (portal): made and accepted in one step.
        PURCHASE = "purchase", "Bought by the customer"

    public_id = models.UUIDField(unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="topup_offers")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    pack = models.ForeignKey(TopUpPack, null=True, blank=True, on_delete=models.SET_NULL)
    # The balance (tenant × channel × period) it was offered for: one open offer of a pack
    # per balance. Empty for offers made before offers knew their balance.
    balance = models.ForeignKey(
        Balance, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    units = models.BigIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STAFF)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["TopUpOffer"]()

    class Meta:
        constraints = [
            # With the tenant, which the balance implies, as Citus needs of a table
            # sharded by tenant (docs/SCALING.md).
            models.UniqueConstraint(
                fields=["tenant", "balance", "pack"],
                condition=models.Q(status="open"),
                name="topup_offer_one_open_per_balance_and_pack",
            )
        ]

    def __str__(self) -> str:
        price = money_text(self.price, self.currency, language="en")
        return (
            f"{self.tenant} · {self.units:,} {self.channel.name} for {price} "
            f"({self.get_status_display().lower()})"
        )


class TopUp(models.Model):
    """A purchased top-up: the grant it booked and the fee it costs. One per offer."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="topups")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    offer = models.OneToOneField(TopUpOffer, on_delete=models.PROTECT, related_name="topup")
    grant = models.OneToOneField(Grant, on_delete=models.PROTECT, related_name="topup")
    units = models.BigIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    automatic = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    objects = TenantScopedManager["TopUp"]()

    def __str__(self) -> str:
        price = money_text(self.price, self.currency, language="en")
        return f"{self.tenant} · {self.units:,} {self.channel.name} for {price}"


class AutoTopUp(models.Model):
    """Opt-in automatic top-up: when remaining falls to ``threshold_units``, buy ``pack``,
    at most ``max_per_period`` times a period."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="auto_topups")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    pack = models.ForeignKey(TopUpPack, on_delete=models.PROTECT, related_name="+")
    threshold_units = models.BigIntegerField(validators=[MinValueValidator(0)])
    max_per_period = models.PositiveSmallIntegerField(default=1)
    enabled = models.BooleanField(default=True)

    objects = TenantScopedManager["AutoTopUp"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel"], name="auto_topup_unique")
        ]

    def __str__(self) -> str:
        return f"Automatic top-up · {self.tenant} · {self.channel.name}"
