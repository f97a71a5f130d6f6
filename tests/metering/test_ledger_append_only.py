"""The ledger is append-only, enforced by PostgreSQL itself."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models.deletion import ProtectedError

from metering.models import LedgerEntry
from tests.conftest import World, event


def test_ledger_entries_cannot_be_updated_or_deleted(world: World):
    world.alice_api.ingest([event("l-1", quantity=3)])
    entry = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).get()
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(used_delta=999)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.used_delta == 3


def test_a_tenant_with_history_cannot_be_deleted(world: World):
    world.alice_api.ingest([event("l-2", quantity=3)])
    with pytest.raises(ProtectedError):
        world.alpha.delete()
