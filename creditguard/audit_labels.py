"""An audit entry's action in words: ``topup_offer.create`` → "Top-up offer created", for
the staff console's audit list and trail and an entry's own label."""

from __future__ import annotations

NOUNS = {
    "alert_recipient": "Alert recipient",
    "alert_threshold": "Alert threshold",
    "anomaly": "Anomaly alert",
    "api_key": "API key",
    "auto_topup": "Automatic top-up",
    "channel": "Channel",
    "cohort_default": "Cohort default",
    "credits": "Credits",
    "fee_schedule": "Fee schedule",
    "invitation": "Invitation",
    "limit_request": "Limit request",
    "limit_rule": "Limit rule",
    "membership": "Membership",
    "overage": "Overage charge",
    "policy": "Fair use policy",
    "restriction": "Restriction",
    "tenant": "Tenant",
    "topup": "Top-up",
    "topup_offer": "Top-up offer",
    "topup_pack": "Top-up pack",
    "webhook_endpoint": "Webhook endpoint",
    "whatif": "What-if",
    "whatif.run": "What-if run",
}
VERBS = {
    "accept": "accepted",
    "acknowledge": "acknowledged",
    "add": "added",
    "apply": "applied",
    "approve": "approved",
    "bill": "billed",
    "book": "booked",
    "change_role": "role changed",
    "close": "closed",
    "confirm": "confirmed",
    "create": "created",
    "decline": "declined",
    "delete": "deleted",
    "done": "finished",
    "edit": "edited",
    "expire": "expired",
    "extend": "extended",
    "grant": "granted",
    "initialize": "initialized",
    "lift": "lifted",
    "notify": "announced to tenants",
    "open": "opened",
    "partly_waive": "partly waived",
    "publish": "published",
    "reduce": "reduced",
    "remove": "removed",
    "reopen": "reopened",
    "resume": "resumed",
    "revoke": "revoked",
    "rotate_secret": "secret rotated",
    "set": "set",
    "start": "started",
    "update": "updated",
    "waive": "waived",
    "withdraw": "withdrawn",
}


def words(code: str) -> str:
    return code.replace(".", " ").replace("_", " ")


def action_label(action: str) -> str:
    """``topup_offer.create`` → "Top-up offer created"; an unknown code in words."""
    noun, _, verb = action.rpartition(".")
    if not noun:
        return NOUNS.get(action) or words(action).capitalize()
    subject = NOUNS.get(noun) or words(noun).capitalize()
    return f"{subject} {VERBS.get(verb) or words(verb)}"
