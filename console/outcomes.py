"""What a staff action did and whom it told, in words, for the message after it and the
confirmation page before it.

A tenant hears of an action through the notifications the service creates while it
runs; ``notifications_during`` collects them, and a ``Notice`` says, per notification,
the exact text the customer receives — rendered by the delivery's own renderer
(``notifications.messages.render_message``) in the tenant's language — and who receives
it (the e-mail recipients the delivery will address, the in-app list, the webhook
endpoints it was planned for)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from django.db.models import Max
from django.utils import timezone

from console.formats import staff_money  # noqa: F401 - the console's money, here too
from creditguard.locale_format import instant_text, number_text
from notifications.messages import Message, render_message
from notifications.models import Delivery, Notification
from notifications.services.deliver import email_recipients
from policies.models import Restriction
from tenants.models import Tenant

T = TypeVar("T")

LANGUAGE_NAMES = {"de": "German", "en": "English"}


def staff_instant(value: datetime, tenant: Tenant) -> str:
    """An instant as staff read it: English, in the tenant's zone ("26 November 2026,
    14:00 CET") — the zone the tenant is told the same instant in."""
    return instant_text(value, language="en", tz=tenant.tzinfo)


def staff_number(value: int) -> str:
    return number_text(value, language="en")


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


@dataclass(frozen=True)
class Notice:
    """One notification of an action: its text as the customer receives it, and whom."""

    tenant: Tenant
    kind: str
    message: Message
    emails: list[str]
    webhooks: int

    @property
    def language_name(self) -> str:
        return LANGUAGE_NAMES.get(self.message.language, self.message.language)

    def _ways(self) -> list[str]:
        ways = ["by e-mail"] if self.emails else []
        ways.append("in-app")
        if self.webhooks:
            ways.append(f"by webhook ({self.webhooks} endpoint{'s' * (self.webhooks > 1)})")
        return ways

    @property
    def recipients(self) -> str:
        """Who receives it, for the confirmation page."""
        ways = _joined(self._ways())
        if not self.emails:
            return f"{ways} (no e-mail address on file)"
        count = len(self.emails)
        return f"{ways}: {', '.join(self.emails)}" if count < 4 else f"{ways}: {count} addresses"

    def told(self, *, future: bool = False) -> str:
        """Reads "BrightCart's 2 contacts were told by e-mail and in-app"."""
        count = len(self.emails)
        if count > 1:
            who = f"{self.tenant}'s {count} contacts"
        else:
            who = f"{self.tenant}'s contact" if count else str(self.tenant)
        verb = "will be told" if future else ("were told" if count > 1 else "was told")
        return f"{who} {verb} {_joined(self._ways())}"


def notices_of(notifications: Iterable[Notification]) -> list[Notice]:
    """The notices of notifications just created (their deliveries planned)."""
    notices = []
    for notification in notifications:
        transports = list(notification.deliveries.values_list("transport", flat=True))
        emails = email_recipients(notification) if Delivery.Transport.EMAIL in transports else []
        notices.append(
            Notice(
                tenant=notification.tenant,
                kind=notification.kind,
                message=render_message(notification, language=notification.tenant.language),
                emails=emails,
                webhooks=transports.count(Delivery.Transport.WEBHOOK),
            )
        )
    return notices


def notifications_during(action: Callable[[], T]) -> tuple[T, list[Notice]]:
    """Run ``action`` and return its result with the notices of the notifications it
    created (those listed and delivered; a covered one tells nobody). Read by their ids
    after the highest before it ran, and created since it started."""
    started = timezone.now()
    last = Notification.objects.aggregate(last=Max("pk"))["last"] or 0
    result = action()
    created = (
        Notification.objects.filter(pk__gt=last, created_at__gte=started, covered_by="")
        .select_related("tenant")
        .order_by("pk")
    )
    return result, notices_of(created)


def told_sentence(notices: list[Notice], *, future: bool = False, tenant: object = None) -> str:
    """Whom an action told, in one sentence (without the final stop)."""
    if not notices:
        return f"{tenant or 'The tenant'} {'will not be' if future else 'was not'} told"
    seen: dict[int, Notice] = {}
    for notice in notices:  # one line per tenant: its notifications go the same ways
        seen.setdefault(notice.tenant.pk, notice)
    return "; ".join(notice.told(future=future) for notice in seen.values())


def told_summary(notices: list[Notice]) -> str:
    """Whom an action on many objects told: each tenant by name when a few, else counts."""
    tenants = {notice.tenant.pk: notice for notice in notices}
    if not tenants:
        return "nobody was told"
    if len(tenants) <= 3:
        return told_sentence(notices)
    by_email = sum(bool(notice.emails) for notice in tenants.values())
    return f"{len(tenants)} tenants were told in-app, {by_email} of them also by e-mail"


def restriction_text(restriction: Restriction, tenant: Tenant) -> str:
    """ "Throttle on SMS for BrightCart until 26 November 2026, 14:00 CET" — a staff
    restriction in words."""
    if restriction.kind == Restriction.Kind.SUSPEND:
        what = "Suspension"
    else:
        units = staff_number(restriction.limit_units or 0)
        what = f"Throttle to {units} units per {restriction.window}"
    scope = f"on {restriction.channel.name}" if restriction.channel else "on all channels"
    if restriction.ends_at is None:
        until = "permanently, until lifted"
    else:
        until = f"until {staff_instant(restriction.ends_at, tenant)}"
    return f"{what} {scope} for {tenant} {until}"
