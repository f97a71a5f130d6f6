"""Issuing an API key: validated, audited, the raw key returned once and never stored."""

from __future__ import annotations

import pytest

from creditguard.errors import InvalidInput
from creditguard.models import AuditEntry
from tenants.models import ApiKey
from tenants.services import api_key_create, hash_api_key, split_api_key
from tests.conftest import World
from tests.factories import UserFactory


def test_issuing_a_key_writes_its_audit_row_without_the_secret(world: World):
    person = UserFactory.create(username="olga")
    issued = api_key_create(
        tenant=world.beta, name="CRM sync", scopes=["usage:write", "usage:read"], created_by=person
    )
    entry = AuditEntry.objects.get(action="api_key.create", object_id=str(issued.api_key.pk))
    assert (entry.actor, entry.tenant) == (person, world.beta)
    assert entry.after == {
        "name": "CRM sync",
        "prefix": issued.api_key.prefix,
        "scopes": ["usage:read", "usage:write"],
    }
    assert issued.raw_key not in str(entry.after)
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert stored.secret_hash == hash_api_key(issued.raw_key)
    assert split_api_key(issued.raw_key) == stored.prefix


@pytest.mark.parametrize(
    ("name", "scopes", "field"),
    [
        ("", ["usage:write"], "name"),
        ("   ", ["usage:write"], "name"),
        ("x" * 101, ["usage:write"], "name"),
        ("ok", [], "scopes"),
        ("ok", ["usage:write", "admin:everything"], "scopes"),
    ],
)
def test_a_key_without_a_name_or_with_unknown_scopes_is_refused(
    world: World, name: str, scopes: list[str], field: str
):
    keys, entries = ApiKey.objects.count(), AuditEntry.objects.count()
    with pytest.raises(InvalidInput) as refused:
        api_key_create(tenant=world.beta, name=name, scopes=scopes)
    assert [error["field"] for error in refused.value.errors] == [field]
    assert (ApiKey.objects.count(), AuditEntry.objects.count()) == (keys, entries)


def test_the_name_is_kept_without_surrounding_blanks(world: World):
    issued = api_key_create(tenant=world.beta, name="  Shop  ", scopes=["usage:read"])
    assert issued.api_key.name == "Shop"
