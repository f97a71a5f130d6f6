"""Metering reads the rules in force through the reader policies registers at start-up
(metering/hooks.py), never by importing policies."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from metering import hooks
from metering.models import Channel
from metering.services.ledger import included_units_for
from policies import selectors
from tests.factories import TenantFactory


def test_policies_registers_its_selectors_as_the_rules_reader():
    assert hooks.rules_reader() is selectors


@pytest.mark.django_db
def test_a_balance_opens_with_the_included_units_of_the_rule_in_force():
    tenant = TenantFactory.create()
    channel = Channel.objects.get(code="email")
    expected = selectors.effective_rule(tenant=tenant, channel=channel, at=tenant.created_at)
    assert (
        included_units_for(tenant=tenant, channel=channel, period=None, now=tenant.created_at)
        == expected.included_units
    )


def test_without_a_registered_reader_metering_refuses_to_guess(monkeypatch):
    monkeypatch.setattr(hooks, "_reader", None)
    with pytest.raises(ImproperlyConfigured, match="policies"):
        hooks.rules_reader()
