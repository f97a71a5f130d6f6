"""Channels, billing periods, usage events and the credit ledger.

The ledger is append-only. A :class:`Balance` (tenant × channel × period) keeps
three running totals that always equal the sum of its :class:`LedgerEntry` deltas,
updated in the same transaction as the entry:

* ``available`` — grants (included, promotional, purchased) minus reductions and
  expired remainders;
* ``used`` — recorded usage;
* ``reserved`` — units held by open authorizations.
"""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from creditguard.locale_format import period_text
from creditguard.tenancy import TenantScopedManager
from tenants.models import Tenant


class Channel(models.Model):
    """A communication channel. Data, not code: staff add one and it works everywhere."""

    code = models.SlugField(
        max_length=32,
        unique=True,
        validators=[RegexValidator(r"^[a-z][a-z0-9_]*$", "Lower-case letters, digits and _.")],
    )
    name = models.CharField(max_length=100)
    unit = models.CharField(max_length=32, default="message", help_text="message, segment, minute…")
    # What German tenants read: one field per language, as Tenant.Language has two.
    name_de = models.CharField(
        "name (German)",
        max_length=100,
        blank=True,
        help_text="E-Mail, Telefonate… Empty: the name.",
    )
    unit_de = models.CharField(
        "unit (German)",
        max_length=32,
        blank=True,
        help_text="Nachricht, Segment, Minute… Empty: the unit.",
    )
    active = models.BooleanField(default=True)
    capacity_per_day = models.BigIntegerField(
        null=True, blank=True, help_text="Units the platform can carry per day (system load)."
    )
    default_included_units = models.BigIntegerField(
        default=0, help_text="Included credits per period for tenants without their own rule."
    )
    sort_order = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.name

    def labels(self) -> dict[str, dict[str, str]]:
        """Name and unit per language (``Tenant.Language``), as customer texts show them; a
        German label left empty falls back to the English one."""
        return {
            "en": {"name": self.name, "unit": self.unit},
            "de": {"name": self.name_de or self.name, "unit": self.unit_de or self.unit},
        }

    @classmethod
    def labels_by_code(cls, codes: Collection[str]) -> dict[str, dict[str, dict[str, str]]]:
        """``labels()`` of the channels with these codes, in one query."""
        return {channel.code: channel.labels() for channel in cls.objects.filter(code__in=codes)}


class BillingPeriod(models.Model):
    """A calendar month in the tenant's time zone, stored as UTC instants [start, end)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="periods")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    label = models.CharField(max_length=7, help_text="YYYY-MM in the tenant's time zone")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["BillingPeriod"]()

    class Meta:
        ordering = ["tenant", "-starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "starts_at"], name="period_unique_start"),
            models.UniqueConstraint(fields=["tenant", "label"], name="period_unique_label"),
        ]

    def __str__(self) -> str:
        return period_text(self.label, language="en")


class UsageEvent(models.Model):
    """One usage record from the tenant's platform; ``client_event_id`` is its idempotency key."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    client_event_id = models.CharField(max_length=200)
    quantity = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)
    # SHA-256 of the event's content (channel, quantity, instant, metadata): a
    # repeated id is a duplicate when this matches and a conflict when it does not.
    content_hash = models.CharField(max_length=64)
    batch_id = models.UUIDField()
    received_at = models.DateTimeField()

    objects = TenantScopedManager["UsageEvent"]()

    class Meta:
        # No unique (tenant, client_event_id) here: on PostgreSQL the table is partitioned
        # by month of ``occurred_at`` (metering.services.partitions), and a unique index of
        # a partitioned table must hold the partition key. Ids are claimed in
        # :class:`UsageEventKey` instead.
        indexes = [models.Index(fields=["tenant", "occurred_at"], name="usage_event_tenant_time")]

    def __str__(self) -> str:
        return f"{self.client_event_id} ({self.quantity})"


class UsageEventKey(models.Model):
    """The idempotency key of a usage event, claimed before the event is written: one
    row per (tenant, client_event_id), in a plain table that stays small.

    A key is kept while its period is open and for ``USAGE_DEDUPE_RETENTION_HOURS``
    after the period closed (``usage_event_keys_prune``); ingestion refuses events of
    closed periods, so within what can still be accepted a repeated id is always seen.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    client_event_id = models.CharField(max_length=200)
    # As UsageEvent.content_hash: a repeat with the same hash is a duplicate, else a conflict.
    content_hash = models.CharField(max_length=64)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField()

    objects = TenantScopedManager["UsageEventKey"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "client_event_id"], name="usage_event_key_unique_client_id"
            )
        ]

    def __str__(self) -> str:
        return self.client_event_id


class UsageRollup(models.Model):
    """The usage events of one tenant × channel × slot, summed: what usage charts and
    totals read instead of the events. Slots are UTC quarter hours, hours and days (each
    event counts once at each size), so a year is read in a few hundred rows. Kept current
    in the transaction that records the events (ingestion and authorization commits, after
    the balance lock), rebuilt from the events by ``usage_rollups_rebuild``.

    Quarter hours are the finest size because every zone's offset since 2000 is a whole
    number of them (India +05:30, Nepal +05:45): a local hour, day or month is a whole
    number of slots. Slots depend on instants only, so a change of the tenant's zone leaves
    them right.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+", db_index=False)
    slot_seconds = models.IntegerField(help_text="900, 3600 or 86400")
    slot_start = models.DateTimeField(help_text="A whole slot in UTC")
    quantity = models.BigIntegerField(default=0)
    event_count = models.BigIntegerField(default=0)

    objects = TenantScopedManager["UsageRollup"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "slot_seconds", "slot_start"],
                name="usage_rollup_unique_slot",
            )
        ]
        # The anomaly watch reads every tenant's last quarter hours (and the same ones in
        # earlier weeks) in one statement: by start, quarter-hour slots only.
        indexes = [
            models.Index(
                fields=["slot_start"],
                name="usage_rollup_quarter_start",
                condition=models.Q(slot_seconds=900),
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.tenant_id}/{self.channel_id}@{self.slot_start:%Y-%m-%d %H:%M}"
            f"+{self.slot_seconds}s: {self.quantity}"
        )


class Balance(models.Model):
    """Running totals of one tenant × channel × period; equal to the sum of its entries."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="balances")
    available = models.BigIntegerField(default=0)
    used = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    # Every move raises ``version``; evaluation (warnings, overage, top-ups) records the
    # version it saw. A balance with version > evaluated_version waits for evaluation.
    # (A counter, not timestamps: moves are ordered by the row lock, clocks are not.)
    version = models.BigIntegerField(default=0)
    evaluated_version = models.BigIntegerField(default=-1)

    objects = TenantScopedManager["Balance"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "period"], name="balance_unique_tenant_channel_period"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0), name="balance_reserved_gte_0"
            ),
        ]
        indexes = [
            models.Index(
                fields=["id"],
                name="balance_needs_evaluation",
                condition=models.Q(version__gt=models.F("evaluated_version")),
            )
        ]

    def __str__(self) -> str:
        """Reads "BrightCart · SMS · November 2026" (select_related: tenant, channel, period)."""
        period = period_text(self.period.label, language="en")
        return f"{self.tenant} · {self.channel.name} · {period}"

    @property
    def remaining(self) -> int:
        return max(self.available - self.used - self.reserved, 0)

    @property
    def overage_units(self) -> int:
        return max(self.used - self.available, 0)


class Grant(models.Model):
    """Credits granted to a balance. Usage draws from grants in draw order:
    soonest expiry first (never-expiring last), then lowest priority number, then oldest.
    """

    class Kind(models.TextChoices):
        INCLUDED = "included", "Included"
        PROMOTIONAL = "promotional", "Promotional"
        PURCHASED = "purchased", "Purchased top-up"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    balance = models.ForeignKey(Balance, on_delete=models.PROTECT, related_name="grants")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    units = models.BigIntegerField()
    drawn_units = models.BigIntegerField(default=0)
    reduced_units = models.BigIntegerField(
        default=0, help_text="Undrawn units taken away by a reduction (policy § 5)"
    )
    priority = models.SmallIntegerField(default=100)
    expires_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    objects = TenantScopedManager["Grant"]()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(units__gt=0), name="grant_units_gt_0"),
            models.CheckConstraint(
                condition=models.Q(
                    drawn_units__gte=0,
                    reduced_units__gte=0,
                    drawn_units__lte=models.F("units") - models.F("reduced_units"),
                ),
                name="grant_drawn_and_reduced_within_units",
            ),
        ]

    def __str__(self) -> str:
        """Reads "BrightCart · SMS · November 2026 — included 2,000" (select_related: tenant,
        balance__channel, balance__period)."""
        period = period_text(self.balance.period.label, language="en")
        return (
            f"{self.tenant} · {self.balance.channel.name} · {period} — "
            f"{self.get_kind_display().lower()} {self.units:,}"
        )

    @property
    def undrawn_units(self) -> int:
        return self.units - self.drawn_units - self.reduced_units


class LedgerEntry(models.Model):
    """One append-only movement on a balance. Never updated, never deleted: on
    PostgreSQL a trigger refuses UPDATE and DELETE (migration 0004)."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        TOPUP = "topup", "Top-up"
        USAGE = "usage", "Usage"
        HOLD = "hold", "Reservation hold"
        RELEASE = "release", "Reservation release"
        ADJUSTMENT = "adjustment", "Adjustment"
        REDUCTION = "reduction", "Reduction"
        EXPIRY = "expiry", "Expiry"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    # The (balance, created_at) index serves lookups by balance.
    balance = models.ForeignKey(
        Balance, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    available_delta = models.BigIntegerField(default=0)
    used_delta = models.BigIntegerField(default=0)
    reserved_delta = models.BigIntegerField(default=0)
    grant = models.ForeignKey(
        Grant, null=True, blank=True, on_delete=models.PROTECT, related_name="entries",
        db_index=False,
    )  # fmt: skip
    # For usage: the grants drawn from, in draw order: [{"grant": id|None, "units": n}];
    # a None grant is usage beyond every grant (overage).
    draws = models.JSONField(default=list, blank=True)
    batch_id = models.UUIDField(null=True, blank=True, help_text="Ingestion batch of usage")
    authorization = models.ForeignKey(
        "Authorization", null=True, blank=True, on_delete=models.PROTECT, related_name="entries",
        db_index=False,
    )  # fmt: skip
    event_count = models.IntegerField(default=0)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    objects = TenantScopedManager["LedgerEntry"]()

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["balance", "created_at"], name="ledger_balance_time")]

    def __str__(self) -> str:
        deltas = {
            "available": self.available_delta,
            "used": self.used_delta,
            "reserved": self.reserved_delta,
        }
        moved = ", ".join(f"{name} {delta:+,}" for name, delta in deltas.items() if delta)
        return f"{self.get_kind_display()}: {moved or 'no change'}"


class Authorization(models.Model):
    """A decision on "may this tenant send q units now", with the units it reserves.

    An allowed authorization holds ``quantity`` units (``reserved`` on the balance)
    until it is committed (the units become usage), released, or expires. A denied
    one reserves nothing and is kept so that its idempotency key answers the same.
    """

    class Decision(models.TextChoices):
        ALLOW = "allow", "Allow"
        ALLOW_OVERAGE = "allow_overage", "Allow (overage)"
        DENY = "deny", "Deny"

    class Status(models.TextChoices):
        HELD = "held", "Held"
        COMMITTED = "committed", "Committed"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"
        DENIED = "denied", "Denied"

    public_id = models.UUIDField(unique=True, editable=False)
    # Every authorization writes its indexes on the hot path: only those a query uses.
    # (tenant, idempotency_key) is unique, so it also serves lookups by tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+", db_index=False)
    balance = models.ForeignKey(
        Balance,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="authorizations",
        db_index=False,
    )
    quantity = models.BigIntegerField()
    committed_quantity = models.BigIntegerField(null=True, blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    reason = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    # NULL, not "": requests without a key must not collide on the unique index.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # Units counted against windowed caps, to give back on release: [[counter id, units]]
    window_counts = models.JSONField(default=list, blank=True)
    remaining_after = models.BigIntegerField(default=0)
    overage_after = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # A denial's hint: when asking again can be allowed (a windowed cap's next window, a
    # restriction's end); NULL when waiting alone will not help.
    retry_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["Authorization"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="authorization_unique_idempotency_key"
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                name="authorization_held_expiry",
                condition=models.Q(status="held"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.decision} {self.quantity} ({self.status})"


class WindowCounter(models.Model):
    """Units allowed within one hour or day under a windowed cap (a throttle).

    ``key`` names the cap: ``restriction:<id>`` for a staff restriction, or
    ``rule:<channel id>`` for a limit rule's ``restrict`` action past the limit.
    Incremented by a conditional UPDATE, so the cap holds under any concurrency.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    units = models.BigIntegerField(default=0)

    objects = TenantScopedManager["WindowCounter"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "key", "window_start"], name="window_counter_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start:%Y-%m-%d %H:%M}: {self.units}"
