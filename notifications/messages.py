"""What a notification says, in the tenant's language (German and English).

Sentences come from the catalogue (``locale/``); the figures in them are formatted for the
language by ``creditguard.locale_format`` — numbers, money, percentages, days, and
instants with their time in the tenant's time zone. A channel is named by the labels its
payload carries per language (``channel_labels``, added when the notification is created,
``notifications.services.notify``), else by the English ``channel_name`` of older payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from notifications import phrases
from notifications.models import Notification
from notifications.writer import Writer

K = Notification.Kind


@dataclass(frozen=True)
class Message:
    language: str
    subject: str
    lines: list[str]
    offer: str | None
    dashboard_url: str
    policy_url: str
    support: str

    def as_data(self) -> dict[str, Any]:
        """The message as the in-app list and webhooks carry it."""
        return {
            "language": self.language,
            "subject": self.subject,
            "lines": [*self.lines, *([self.offer] if self.offer else [])],
        }


def render_message(
    notification: Notification, *, language: str, time_zone: tzinfo | None = None
) -> Message:
    """Subject and lines of a notification, with its figures and offer, in ``language``;
    instants in ``time_zone`` (default: the notification's tenant's)."""
    if time_zone is None:
        time_zone = notification.tenant.tzinfo if notification.tenant_id else UTC
    writer = Writer(
        notification.payload, language, time_zone, notification.created_at or timezone.now()
    )
    with translation.override(language):
        subject, lines = _subject_and_lines(notification.kind, writer)
        offer = phrases.offer(writer) if isinstance(writer.p.get("offer"), dict) else None
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    return Message(
        language=language,
        subject=str(subject),
        lines=[str(line) for line in lines],
        offer=offer,
        dashboard_url=f"{base}/dashboard/",
        policy_url=f"{base}/policy/",
        support=settings.SUPPORT_CONTACT,
    )


def _subject_and_lines(kind: str, w: Writer) -> tuple[str, list[str]]:
    p, figures = w.p, w.figures()
    if kind == K.THRESHOLD_WARNING:
        lines = [phrases.usage_line(figures)]
        if figures["date"]:
            lines.append(_("At this rate you reach your limit on %(date)s.") % figures)
        # The level now, not the threshold crossed: one warning covers every threshold
        # below it (policies.services.evaluate).
        level = figures["percent"] if p.get("percent") is not None else figures["threshold"]
        return _("%(channel)s: %(level)s of your included credits used") % {
            **figures,
            "level": level,
        }, lines
    if kind == K.FORECAST_WARNING:
        return _("%(channel)s: at this rate you reach your limit on %(date)s") % figures, [
            phrases.usage_line(figures),
            _("At this rate you reach your limit on %(date)s.") % figures,
        ]
    if kind == K.LIMIT_REACHED:
        return _("%(channel)s: you have reached your included credits") % figures, [
            phrases.usage_line(figures),
            phrases.past_limit(w),
        ]
    if kind == K.OVERAGE_FEE_NOTICE:
        return _("%(channel)s: fees may apply to use beyond your credits") % figures, [
            _("You have used %(overage)s units beyond your included credits on %(channel)s "
              "in %(period)s (unit: %(unit)s). Fees may apply.") % figures
        ]  # fmt: skip
    if kind in (K.RESTRICTION_APPLIED, K.RESTRICTION_LIFTED):
        return phrases.restriction(kind, w)
    if kind == K.TOPUP_BOOKED:
        price = w.money(p.get("price", 0), str(p.get("currency", "")))
        return _("%(channel)s: top-up booked") % figures, [
            _("%(units)s units were added to your %(channel)s credits for %(price)s.")
            % {**figures, "units": w.number("units"), "price": price}
        ]
    if kind == K.TOPUP_OFFER:
        return _("%(channel)s: an offer to top up your credits") % figures, []
    if kind == K.LIMIT_CHANGED:
        return _("%(channel)s: your limit changes") % figures, phrases.limit_changes(w, figures)
    if kind == K.FEE_SCHEDULE_NOTICE:
        return phrases.fee_schedule(w, figures)
    if kind == K.WELCOME:
        return phrases.welcome(w)
    if kind == K.OVERAGE_CARRIED:
        return phrases.overage_carried(w, figures)
    if kind == K.OVERAGE_DECIDED:
        return phrases.overage_decided(w, figures)
    if kind in (K.LIMIT_REQUEST_APPROVED, K.LIMIT_REQUEST_DECLINED):
        return phrases.limit_request(kind, w, figures)
    if kind == K.POLICY_CHANGE:
        policy = {
            "version": p.get("version", ""),
            "date": w.effective("effective_from"),
        }
        lines = [
            _("Fair use policy %(version)s takes effect on %(date)s. Please read it and "
              "acknowledge it on the fair use policy page.") % policy
        ]  # fmt: skip
        # The version's summary as written in each language (older payloads have none).
        summary = p.get("summary")
        if isinstance(summary, dict) and (summary.get(w.language) or summary.get("en")):
            text = summary.get(w.language) or summary.get("en")
            lines.append(_("What changes: %(summary)s") % {"summary": text})
        return _("Fair use policy %(version)s") % policy, lines
    if kind == K.CREDITS_REDUCED:
        reduced = {
            **figures,
            "reduced": w.number("reduced_units"),
            "before": w.number("available_before"),
            "after": w.number("available"),
        }
        lines = [
            _("We have reduced your %(channel)s credits for %(period)s by %(reduced)s units, "
              "from %(before)s to %(after)s (unit: %(unit)s).") % reduced
        ]  # fmt: skip
        if p.get("reason"):
            lines.append(_("Reason: %(reason)s") % {"reason": p["reason"]})
        return _("%(channel)s: your credits are reduced") % figures, lines
    if kind == K.WEBHOOK_TEST:
        return _("Test event from CreditGuard"), [
            _("This test event checks that your webhook endpoint receives and verifies "
              "CreditGuard's events. It needs no action.")
        ]  # fmt: skip
    # A kind this renderer does not know yet: what its producer wrote.
    return str(p.get("subject") or kind), [str(line) for line in p.get("lines", [])]
