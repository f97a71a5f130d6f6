"""Notifications to tenants and their delivery by e-mail, signed webhook and in-app."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from creditguard.tenancy import TenantScopedManager
from notifications.crypto import secret_decrypt
from tenants.models import Tenant


class Notification(models.Model):
    """One thing a tenant must hear about. ``dedupe_key`` is unique: whatever runs the
    evaluation, however often and in parallel, a warning exists once. The notification
    itself is the in-app delivery (``GET /api/v1/notifications``)."""

    class Kind(models.TextChoices):
        THRESHOLD_WARNING = "threshold_warning", "Threshold warning"
        FORECAST_WARNING = "forecast_warning", "Forecast warning"
        LIMIT_REACHED = "limit_reached", "Limit reached"
        OVERAGE_FEE_NOTICE = "overage_fee_notice", "Overage fee notice"
        RESTRICTION_APPLIED = "restriction_applied", "Restriction applied"
        RESTRICTION_LIFTED = "restriction_lifted", "Restriction lifted"
        TOPUP_OFFER = "topup_offer", "Top-up offer"
        TOPUP_BOOKED = "topup_booked", "Top-up booked"
        FEE_SCHEDULE_NOTICE = "fee_schedule_notice", "Fee schedule notice"
        LIMIT_CHANGED = "limit_changed", "Limit changed"
        POLICY_CHANGE = "policy_change", "Policy change"
        WELCOME = "welcome", "Welcome: terms and fees"
        OVERAGE_CARRIED = "overage_carried", "Overage carried over"
        OVERAGE_DECIDED = "overage_decided", "Overage decided"
        LIMIT_REQUEST_APPROVED = "limit_request_approved", "Limit request approved"
        LIMIT_REQUEST_DECLINED = "limit_request_declined", "Limit request declined"
        WEBHOOK_TEST = "webhook_test", "Webhook test event"
        CREDITS_REDUCED = "credits_reduced", "Credits reduced"

    public_id = models.UUIDField(unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField(default=dict)
    # Empty: a message, listed and delivered. Else what told the tenant this instead: the
    # dedupe key of the message that covered it (a lower threshold, the forecast or the
    # fee notice beside a higher warning), or HISTORY for a record of the demo's past.
    # A covered row is neither listed nor delivered; it holds its key so that it never
    # arrives later.
    covered_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()

    objects = TenantScopedManager["Notification"]()

    # covered_by of what was recorded as history (seed_demo), never sent.
    HISTORY = "history"
    # covered_by of a test event a tenant sent to one webhook endpoint: delivered there
    # only (webhook_endpoint_test), never listed in-app nor e-mailed.
    TEST = "test"

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="notification_tenant_new")]

    def __str__(self) -> str:
        """Reads "Overage fee notice · BrightCart" (select_related: tenant)."""
        return f"{self.get_kind_display()} · {self.tenant}"


class NotificationRead(models.Model):
    """A person has read a notification in the portal. Read state is per person: the
    notification is the tenant's, and each of its members reads it for themselves."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_reads"
    )
    read_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "notification"], name="notification_read_once_per_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.notification_id} read by {self.user_id}"


class AlertRecipient(models.Model):
    """An e-mail address that receives the tenant's warnings besides its contact address
    (the portal's alerts): the warnings of ``KINDS`` only, not every notification, so
    that a colleague who asked to hear when credits run low is not sent invoices of
    terms. Unique per tenant whatever the case of its letters.

    It lives in notifications, not policies: who receives an e-mail is the delivery's
    concern, and the delivery (``notifications.services.deliver``), a leaf, reads it when
    it sends; policies decides only what to say and when."""

    # Warnings about a channel's credits, which someone may have to act on: a threshold
    # crossed (near the limit included), the forecast, the limit reached, the overage
    # notice sent in its place where a rule does not warn at 100 %, and a restriction
    # that now holds the sending back.
    KINDS = frozenset(
        {
            Notification.Kind.THRESHOLD_WARNING,
            Notification.Kind.FORECAST_WARNING,
            Notification.Kind.LIMIT_REACHED,
            Notification.Kind.OVERAGE_FEE_NOTICE,
            Notification.Kind.RESTRICTION_APPLIED,
        }
    )

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_recipients")
    email = models.EmailField(max_length=254)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    objects = TenantScopedManager["AlertRecipient"]()

    class Meta:
        ordering = ["tenant", "email"]
        constraints = [
            models.UniqueConstraint("tenant", Lower("email"), name="alert_recipient_unique")
        ]

    def __str__(self) -> str:
        return f"{self.email} · {self.tenant}"


class WebhookEndpoint(models.Model):
    """A tenant's URL that receives notifications, signed per Standard Webhooks with
    ``secret`` (``whsec_…``, shown once at creation; kept to sign). The secret is stored
    only encrypted (``secret_encrypted``, a Fernet token, ``notifications/crypto.py``)
    and decrypted when read: not a form field, so neither the admin nor a ModelForm
    shows it.

    Without a tenant it is a platform endpoint, registered with a platform key (whose
    tenant is empty too): the operator's billing system, which receives the
    ``PlatformEvent`` of every tenant and never a tenant's notifications."""

    public_id = models.UUIDField(unique=True, editable=False)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=500)
    secret_encrypted = models.TextField(editable=False)
    kinds = models.JSONField(
        default=list,
        blank=True,
        help_text="Empty: every kind (a platform endpoint's: every event type)",
    )
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager["WebhookEndpoint"]()

    def __str__(self) -> str:
        return self.url

    @property
    def secret(self) -> str:
        return secret_decrypt(self.secret_encrypted)

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds


class PlatformEvent(models.Model):
    """A billable fact told to the operator's billing system through the platform
    webhook endpoints: an outbox row, written in the transaction of the fact with one
    delivery per platform endpoint that wants its type, sent after commit by the same
    workers as notifications. ``event_id`` is derived from the fact (``evt_`` and a hash
    of the type and ``fact``) and unique: a service that runs twice finds the event there
    and delivers nothing new, and every delivery and retry carries it as ``webhook-id``."""

    class Type(models.TextChoices):
        PERIOD_CLOSED = "period.closed", "Billing period closed"
        OVERAGE_CHARGE_DECIDED = "overage_charge.decided", "Overage charge decided"
        TOPUP_PURCHASED = "topup.purchased", "Top-up purchased"
        LIMIT_RULE_CHANGED = "limit_rule.changed", "Limit rule changed"

    event_id = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=32, choices=Type.choices)
    # The tenant the fact is about (every fact so far is one tenant's); not a reader:
    # no tenant sees these events.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="platform_events")
    fact = models.CharField(max_length=200, help_text="What the id is derived from")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class Delivery(models.Model):
    """One transport's attempt(s) to deliver a notification, or a platform event to a
    platform endpoint (then ``event`` is set and ``notification`` empty). A worker claims
    it with a conditional update (``pending`` → ``sending`` with a lease), so two workers
    never send at once; a worker that dies leaves a lapsed lease, and the retry sweep
    sends again with the same ``webhook-id``."""

    class Transport(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"
        CANCELLED = "cancelled", "Cancelled"

    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(
        PlatformEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    transport = models.CharField(max_length=16, choices=Transport.choices)
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "event", "transport", "endpoint"],
                name="delivery_unique_per_transport",
                nulls_distinct=False,
            ),
            # A notification by any transport, or a platform event by webhook.
            models.CheckConstraint(
                condition=models.Q(notification__isnull=False, event__isnull=True)
                | models.Q(notification__isnull=True, event__isnull=False, transport="webhook"),
                name="delivery_of_a_notification_or_an_event",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due",
                condition=models.Q(status__in=["pending", "sending"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.transport} of {self.notification_id or self.event_id}: {self.status}"
