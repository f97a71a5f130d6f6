"""The audit trail is immutable in PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from creditguard.models import AuditEntry
from tests.conftest import World
from tests.policies.helpers import set_rule


def test_audit_entries_cannot_be_changed_or_deleted(world: World):
    set_rule(world.alpha, "sms", included_units=5)
    entry = AuditEntry.objects.filter(action="limit_rule.set").get()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="nothing happened")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == "test"
