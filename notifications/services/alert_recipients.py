"""The e-mail addresses that receive a tenant's warnings besides its contact address
(the portal's alerts): added and removed by the tenant's admins and owners, validated,
audited, scoped to the tenant. The e-mail delivery reads them when it sends
(``notifications.services.deliver.email_recipients``)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from creditguard.audit import audit_record
from creditguard.errors import Conflict, InvalidInput, NotFound, input_error
from notifications.models import AlertRecipient
from tenants.models import Tenant

# Enough for a team's on-call people and a shared mailbox; a list beyond belongs in a
# mailing list of the tenant's own.
MAX_RECIPIENTS = 10
MAX_EMAIL_LENGTH = 254


def _refused(detail: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[input_error(["email"], detail)])


def alert_recipient_validate(email: object) -> str:
    """The address as it is stored (surrounding blanks removed), or ``InvalidInput``
    whose error detail says why: ``required``, ``too long`` or ``invalid``."""
    address = email.strip() if isinstance(email, str) else ""
    if not address:
        raise _refused("required", "An e-mail address is required.")
    if len(address) > MAX_EMAIL_LENGTH:
        raise _refused("too long", f"An e-mail address has at most {MAX_EMAIL_LENGTH} characters.")
    try:
        validate_email(address)
    except ValidationError:
        raise _refused("invalid", "This is not a valid e-mail address.") from None
    return address


@transaction.atomic
def alert_recipient_add(
    *,
    tenant: Tenant,
    email: str,
    actor: User | None,
    now: datetime | None = None,
) -> AlertRecipient:
    """Send the tenant's warnings (``AlertRecipient.KINDS``) to ``email`` too, audited
    (``alert_recipient.add``). Refuses a bad address (``InvalidInput``), the account's
    contact address (it receives them already), an address listed already whatever its
    case, and more than ``MAX_RECIPIENTS`` (``Conflict``). The tenant's row is locked (no
    key update: ingestion's foreign keys never wait on it), so two additions at once
    cannot pass the count together; the unique constraint decides a duplicate."""
    now = now or timezone.now()
    address = alert_recipient_validate(email)
    if address.casefold() == (tenant.contact_email or "").casefold():
        raise Conflict(
            "This is the account's contact address, which receives every notification.",
            errors=[input_error(["email"], "contact")],
        )
    Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).first()
    listed = list(AlertRecipient.objects.for_tenant(tenant).values_list("email", flat=True))
    if address.casefold() in {other.casefold() for other in listed}:
        raise Conflict(
            f"{address} receives the warnings already.",
            errors=[input_error(["email"], "exists")],
        )
    if len(listed) >= MAX_RECIPIENTS:
        raise Conflict(
            f"At most {MAX_RECIPIENTS} recipients per account.",
            errors=[input_error(["email"], "too many")],
        )
    try:
        with transaction.atomic():
            recipient = AlertRecipient.objects.create(
                tenant=tenant, email=address, created_by=actor, created_at=now
            )
    except IntegrityError:
        raise Conflict(
            f"{address} receives the warnings already.",
            errors=[input_error(["email"], "exists")],
        ) from None
    audit_record(
        actor=actor, action="alert_recipient.add", tenant=tenant, obj=recipient, before=None,
        after={"email": address}, reason="", now=now,
    )  # fmt: skip
    return recipient


@transaction.atomic
def alert_recipient_remove(
    *,
    tenant: Tenant,
    recipient_id: int,
    actor: User | None,
    now: datetime | None = None,
) -> AlertRecipient:
    """Stop sending the tenant's warnings to one of its recipients, audited
    (``alert_recipient.remove``); the removed recipient is returned (its address, for the
    caller to say). E-mails already planned are sent to the recipients listed when they
    go out. Another tenant's or an unknown id is ``NotFound`` alike."""
    now = now or timezone.now()
    recipient = (
        AlertRecipient.objects.for_tenant(tenant)
        .select_for_update()
        .filter(pk=recipient_id)
        .first()
    )
    if recipient is None:
        raise NotFound("No such recipient.")
    audit_record(
        actor=actor, action="alert_recipient.remove", tenant=tenant, obj=recipient,
        before={"email": recipient.email}, after=None, reason="", now=now,
    )  # fmt: skip
    recipient.delete()
    return recipient
