"""Deliveries in words a customer reads: the event's kind by its label, and why a webhook
delivery failed, from the error the sender stored (``Delivery.last_error``: an exception's
class and text, ``HTTP 503``, ``refused: …``), translated — never the raw Python text,
which the page keeps for admins and owners only (issue 11)."""

from __future__ import annotations

import re

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from notifications.models import Notification
from notifications.services.pinned import SendDeadlineExceeded

K = Notification.Kind

# Each kind of notification (and so of webhook event) by its label; a test holds it to
# Notification.Kind, so a new kind needs its label here.
KIND_LABELS: dict[str, Promise] = {
    K.THRESHOLD_WARNING: gettext_lazy("Threshold warning"),
    K.FORECAST_WARNING: gettext_lazy("Forecast warning"),
    K.LIMIT_REACHED: gettext_lazy("Limit reached"),
    K.OVERAGE_FEE_NOTICE: gettext_lazy("Overage fee notice"),
    K.RESTRICTION_APPLIED: gettext_lazy("Restriction applied"),
    K.RESTRICTION_LIFTED: gettext_lazy("Restriction lifted"),
    K.TOPUP_OFFER: gettext_lazy("Top-up offer"),
    K.TOPUP_BOOKED: gettext_lazy("Top-up booked"),
    K.FEE_SCHEDULE_NOTICE: gettext_lazy("Fee schedule notice"),
    K.LIMIT_CHANGED: gettext_lazy("Limit changed"),
    K.POLICY_CHANGE: gettext_lazy("Policy change"),
    K.WELCOME: gettext_lazy("Welcome: terms and fees"),
    K.OVERAGE_CARRIED: gettext_lazy("Overage carried over"),
    K.OVERAGE_DECIDED: gettext_lazy("Overage decided"),
    K.LIMIT_REQUEST_APPROVED: gettext_lazy("Limit request approved"),
    K.LIMIT_REQUEST_DECLINED: gettext_lazy("Limit request declined"),
    K.WEBHOOK_TEST: gettext_lazy("Test event"),
    K.CREDITS_REDUCED: gettext_lazy("Credits reduced"),
}


def kind_label(kind: str) -> str:
    label = KIND_LABELS.get(kind)
    return str(label) if label is not None else kind


_HTTP = re.compile(r"^HTTP (\d{3})\b")


def failure_text(error: str) -> str:
    """Why a delivery failed, in a sentence for the customer ('' when nothing failed)."""
    if not error:
        return ""
    if error.startswith("HTTP 410"):
        return _("The receiver answered 410 Gone, so the endpoint was disabled.")
    if status := _HTTP.match(error):
        return _("HTTP %(status)s from the receiver.") % {"status": status.group(1)}
    if error == "endpoint disabled":
        return _("The endpoint is disabled.")
    if error.startswith("refused:"):
        if error.endswith("does not resolve"):
            return _("The receiver's host name could not be resolved.")
        return _("The receiver's host does not resolve to public internet addresses only.")
    name = error.split(":", 1)[0]
    if name == "SSLCertVerificationError" or "CERTIFICATE_VERIFY_FAILED" in error:
        return _("The receiver's TLS certificate could not be verified.")
    if name.startswith("SSL"):
        return _("The secure (TLS) connection to the receiver failed.")
    if name == "ConnectionRefusedError":
        return _("Connection refused by the receiver.")
    if name in ("ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError") or (
        name in ("RemoteDisconnected", "BadStatusLine", "IncompleteRead")
    ):
        return _("The receiver closed the connection before answering.")
    if name in ("TimeoutError", "timeout", SendDeadlineExceeded.__name__):
        return _("Timed out: the receiver did not answer in time.")
    if name == "gaierror":
        return _("The receiver's host name could not be resolved.")
    if name in ("OSError", "NoRouteToHostError") and "unreachable" in error.lower():
        return _("The receiver could not be reached.")
    return _("The delivery failed.")


# The reasons the sender writes when it disables an endpoint (notifications.services.deliver).
DISABLED_REASONS: dict[str, Promise] = {
    "The receiver answered 410 Gone.": gettext_lazy("The receiver answered 410 Gone."),
}


def disabled_reason_text(reason: str) -> str:
    known = DISABLED_REASONS.get(reason)
    return str(known) if known is not None else reason
