from __future__ import annotations

from typing import Any

from django.test import override_settings

from metering.models import Balance, Channel
from policies.services.rules import limit_rule_set
from tenants.models import Tenant


def set_rule(tenant: Tenant, channel: str = "sms", **terms: Any):
    """Set up a tenant's terms for a test: in force at once, worse or not (as if the
    tenant had been told long ago; the notice itself is tested in test_limit_notice)."""
    with override_settings(LIMIT_NOTICE_DAYS=0):
        return limit_rule_set(
            tenant=tenant, channel=Channel.objects.get(code=channel), reason="test", actor=None,
            **terms,
        )  # fmt: skip


def balance_of(tenant: Tenant, channel: str = "sms") -> Balance:
    return Balance.objects.get(tenant=tenant, channel__code=channel, period__status="open")


def authorize(api, channel: str = "sms", quantity: int = 1, **extra: Any):
    return api.post("/api/v1/authorizations", {"channel": channel, "quantity": quantity, **extra})
