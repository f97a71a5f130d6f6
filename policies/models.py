"""The fair-use rules: limit rules, restrictions, fee schedules, overage charges,
top-ups, recommendations and policy versions."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from creditguard.tenancy import TenantScopedManager
from metering.models import BillingPeriod, Channel, Grant
from tenants.models import Tenant

DEFAULT_THRESHOLDS = [50, 80, 90, 100]


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class Action(models.TextChoices):
    """What happens past the included credits (policy § 5)."""

    NOTIFY_ONLY = "notify_only", "Notify only (staff decide on fees)"
    CHARGE_OVERAGE = "charge_overage", "Charge overage by the fee schedule"
    RESTRICT = "restrict", "Restrict to a windowed cap"
    SUSPEND = "suspend", "Suspend the channel"


class Window(models.TextChoices):
    HOUR = "hour", "per hour"
    DAY = "day", "per day"


class CarryOver(models.TextChoices):
    FORGIVE = "forgive", "Forgive at reset"
    CARRY = "carry", "Carry into the next period"


class RuleTerms(models.Model):
    """The terms a limit rule and a cohort default share."""

    included_units = models.BigIntegerField(validators=[MinValueValidator(0)])
    warning_thresholds = models.JSONField(default=default_thresholds)
    hard_limit = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Units beyond the available credits that may still be used; 0 = none, "
        "empty = no ceiling.",
    )
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.NOTIFY_ONLY)
    restrict_units = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="For 'restrict': units allowed per window past the limit.",
    )  # fmt: skip
    restrict_window = models.CharField(max_length=8, choices=Window.choices, blank=True)
    carry_over = models.CharField(
        max_length=8, choices=CarryOver.choices, default=CarryOver.FORGIVE
    )

    class Meta:
        abstract = True


class CohortDefault(RuleTerms):
    """Terms a new tenant of an industry × size band starts with (blank = any)."""

    industry = models.CharField(max_length=32, choices=Tenant.Industry.choices, blank=True)
    size_band = models.CharField(max_length=16, choices=Tenant.SizeBand.choices, blank=True)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["industry", "size_band", "channel"], name="cohort_default_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.industry or 'any'}/{self.size_band or 'any'}/{self.channel_id}"


class LimitRule(RuleTerms):
    """One version of a tenant × channel's limit rule. A change is a new version;
    old versions stay. The rule in force is the highest version whose
    ``effective_from`` has come."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="limit_rules")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField()
    effective_from = models.DateTimeField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField()

    objects = TenantScopedManager["LimitRule"]()

    class Meta:
        ordering = ["tenant", "channel", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "version"], name="limit_rule_unique_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.channel_id} v{self.version}"


class Restriction(models.Model):
    """A staff restriction of a channel (or the whole tenant when ``channel`` is empty):
    a windowed cap (``throttle``) or a suspension, from ``starts_at`` until ``ends_at``
    (empty = permanent) unless lifted."""

    class Kind(models.TextChoices):
        THROTTLE = "throttle", "Throttle (windowed cap)"
        SUSPEND = "suspend", "Suspend"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="restrictions")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    limit_units = models.BigIntegerField(null=True, blank=True)
    window = models.CharField(max_length=8, choices=Window.choices, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    objects = TenantScopedManager["Restriction"]()

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "starts_at"],
                name="restriction_unlifted",
                condition=models.Q(lifted_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        scope = self.channel.code if self.channel_id and self.channel else "all channels"
        return f"{self.kind} {scope}"


class FeeSchedule(models.Model):
    """Prices for units beyond the included credits of a channel: a global default
    (``tenant`` empty) or a tenant's override. It applies to a tenant only from the
    moment the tenant was notified of it (a :class:`FeeScheduleNotice`)."""

    class Mode(models.TextChoices):
        GRADUATED = "graduated", "Graduated (each tier prices its own units)"
        VOLUME = "volume", "Volume (the reached tier prices all units)"

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="fee_schedules"
    )
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.GRADUATED)
    currency = models.CharField(max_length=3, default="EUR")
    effective_from = models.DateTimeField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["channel", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel_id}, {self.currency})"


class FeeTier(models.Model):
    """Units beyond the included credits up to ``up_to`` (empty: no end) at ``unit_price``."""

    schedule = models.ForeignKey(FeeSchedule, on_delete=models.CASCADE, related_name="tiers")
    up_to = models.BigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    unit_price = models.DecimalField(
        max_digits=14, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )

    class Meta:
        ordering = ["schedule", models.F("up_to").asc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "up_to"], name="fee_tier_unique_edge")
        ]

    def __str__(self) -> str:
        return f"≤{self.up_to or '∞'} @ {self.unit_price}"


class FeeScheduleNotice(models.Model):
    """The moment a tenant was notified of a fee schedule: from then on it may apply."""

    schedule = models.ForeignKey(FeeSchedule, on_delete=models.CASCADE, related_name="notices")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    notified_at = models.DateTimeField()

    objects = TenantScopedManager["FeeScheduleNotice"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tenant"], name="fee_notice_unique")
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} → {self.tenant_id} at {self.notified_at:%Y-%m-%d}"


class OverageCharge(models.Model):
    """The overage of one tenant × channel × period and its decision (policy § 7).

    Kept current while the period is open; finalised when it closes; decided once
    by staff (bill, waive, partly waive) or automatically billed below a threshold.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending decision"
        BILLED = "billed", "Billed"
        WAIVED = "waived", "Waived"
        PARTLY_WAIVED = "partly_waived", "Partly waived"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="overage_charges")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    units = models.BigIntegerField(default=0)
    schedule = models.ForeignKey(
        FeeSchedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="EUR")
    finalized_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    billed_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    waived_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    factors = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    objects = TenantScopedManager["OverageCharge"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "period"], name="overage_charge_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.channel_id}/{self.period_id}: {self.amount} {self.currency}"


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
        return f"{self.units} {self.channel_id} for {self.price} {self.currency}"


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

    public_id = models.UUIDField(unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="topup_offers")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+")
    pack = models.ForeignKey(TopUpPack, null=True, blank=True, on_delete=models.SET_NULL)
    units = models.BigIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STAFF)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["TopUpOffer"]()

    def __str__(self) -> str:
        return f"{self.units} {self.channel_id} for {self.price} {self.currency} ({self.status})"


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
        return f"{self.units} {self.channel_id} for {self.price} {self.currency}"


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
        return f"auto top-up {self.tenant_id}/{self.channel_id}"


class LimitRecommendation(models.Model):
    """A suggested limit for a tenant × channel (policy § 4), with its reasons: the
    tenant's own history and trend, its peer cohort's usage, and the system's load."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="recommendations")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField()
    current_included = models.BigIntegerField()
    suggested_included = models.BigIntegerField()
    suggested_hard_limit = models.BigIntegerField()
    own_average = models.BigIntegerField(null=True, blank=True)
    own_trend = models.FloatField(null=True, blank=True, help_text="Monthly growth, 0.12 = 12 %")
    own_p90 = models.BigIntegerField(null=True, blank=True)
    cohort = models.CharField(max_length=100)
    cohort_size = models.PositiveIntegerField()
    cohort_mean = models.BigIntegerField(null=True, blank=True)
    cohort_median = models.BigIntegerField(null=True, blank=True)
    cohort_p90 = models.BigIntegerField(null=True, blank=True)
    system_load = models.FloatField(null=True, blank=True, help_text="Share of daily capacity")
    explanation = models.TextField()
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TenantScopedManager["LimitRecommendation"]()

    class Meta:
        ordering = ["-computed_at"]
        indexes = [
            models.Index(fields=["tenant", "channel", "-computed_at"], name="recommendation_latest")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.channel_id}: {self.suggested_included}"


class PolicyVersion(models.Model):
    """A version of the fair use policy (policy § 8). A material version is published at
    least the notice period before it takes effect and notified to every tenant."""

    label = models.CharField(max_length=20, unique=True)
    text_de = models.TextField(help_text="Markdown, German")
    text_en = models.TextField(help_text="Markdown, English")
    effective_from = models.DateTimeField()
    material = models.BooleanField(
        default=False, help_text="A material change: notified in advance"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_from"]

    def __str__(self) -> str:
        return f"Fair use policy {self.label}"

    def text(self, language: str) -> str:
        return self.text_de if language == "de" else self.text_en


class PolicyAcknowledgement(models.Model):
    version = models.ForeignKey(
        PolicyVersion, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="policy_acknowledgements"
    )
    acknowledged_at = models.DateTimeField()
    acknowledged_by = models.CharField(max_length=150, help_text="user or API key")

    objects = TenantScopedManager["PolicyAcknowledgement"]()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "tenant"], name="policy_ack_unique")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} acknowledged {self.version_id}"
