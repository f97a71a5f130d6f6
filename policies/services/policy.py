"""Policy versions (policy § 8): published with notice, acknowledged by tenants."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, NotFound
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from policies.models import PolicyAcknowledgement, PolicyVersion
from tenants.models import Tenant


def policy_current(*, at: datetime | None = None) -> PolicyVersion | None:
    at = at or timezone.now()
    return (
        PolicyVersion.objects.filter(published_at__isnull=False, effective_from__lte=at)
        .order_by("-effective_from")
        .first()
    )


def policy_upcoming(*, at: datetime | None = None) -> PolicyVersion | None:
    at = at or timezone.now()
    return (
        PolicyVersion.objects.filter(published_at__isnull=False, effective_from__gt=at)
        .order_by("effective_from")
        .first()
    )


@transaction.atomic
def policy_version_publish(
    *, version: PolicyVersion, actor: User | None, now: datetime | None = None
) -> int:
    """Publish a version. A material one must take effect at least
    ``POLICY_NOTICE_DAYS`` from now and is notified to every tenant once, with its
    summary; returns how many tenants were notified. A version that takes effect later
    needs its summary in both languages: tenants read it before the text applies.
    Publishing twice is refused."""
    now = now or timezone.now()
    version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
    if version.published_at is not None:
        raise Conflict(f"Version {version.label} was published already.")
    notice = timedelta(days=settings.POLICY_NOTICE_DAYS)
    if version.material and version.effective_from < now + notice:
        raise InvalidInput(
            f"A material change takes effect at least {settings.POLICY_NOTICE_DAYS} days after "
            f"it is published: on {(now + notice):%Y-%m-%d} or later."
        )
    if version.effective_from > now and not (
        version.summary_de.strip() and version.summary_en.strip()
    ):
        raise InvalidInput(
            f"Version {version.label} takes effect later: write its summary, in German and "
            "English, of what changes for customers before publishing it."
        )
    version.published_at = now
    version.save(update_fields=["published_at"])
    created = []
    if version.material:
        created = notifications_create(
            specs=[
                NotificationSpec(
                    tenant_id=tenant_id,
                    kind=Notification.Kind.POLICY_CHANGE,
                    dedupe_key=f"policy:{version.pk}:{tenant_id}",
                    # The figures only: the message is written in each tenant's language
                    # when it is sent or read (notifications/messages.py).
                    payload={
                        "version": version.label,
                        "effective_from": version.effective_from.isoformat(),
                        "summary": {"de": version.summary_de, "en": version.summary_en},
                    },
                )
                for tenant_id in Tenant.objects.exclude(status=Tenant.Status.CLOSED)
                .values_list("pk", flat=True)
            ],
            now=now,
        )  # fmt: skip
    audit_record(
        actor=actor, action="policy.publish", tenant=None, obj=version, before=None,
        after={"label": version.label, "material": version.material,
               "effective_from": version.effective_from, "notified": len(created)},
        reason="", now=now,
    )  # fmt: skip
    return len(created)


@transaction.atomic
def policy_acknowledge(
    *,
    tenant: Tenant,
    by: str,
    label: str | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> PolicyAcknowledgement:
    """Record that the tenant acknowledged a published version (the upcoming one, else
    the current one, unless ``label`` names it), audited (``policy.acknowledge``) in the
    name of ``actor`` (a person in the portal), else of ``by`` (an API key).
    Acknowledging twice keeps the first, and its audit row."""
    now = now or timezone.now()
    if label:
        version = PolicyVersion.objects.filter(label=label, published_at__isnull=False).first()
        if version is None:
            raise NotFound(f"No published policy version {label!r}.")
    else:
        version = policy_upcoming(at=now) or policy_current(at=now)
        if version is None:
            raise NotFound("No policy has been published.")
    acknowledgement, created = PolicyAcknowledgement.objects.get_or_create(
        version=version, tenant=tenant, defaults={"acknowledged_at": now, "acknowledged_by": by}
    )
    if created:
        audit_record(
            actor=actor, actor_label=None if actor else by, action="policy.acknowledge",
            tenant=tenant, obj=acknowledgement, before=None,
            after={"version": version.label, "acknowledged_by": by}, reason="", now=now,
        )  # fmt: skip
    return acknowledgement
