"""The reason-form admin actions are one helper (console.actions.form_action)."""

from __future__ import annotations

import pytest
from django.contrib import admin

from policies.models import LimitRecommendation, OverageCharge, Restriction
from tenants.models import Tenant

FORM_ACTIONS = [
    (Tenant, "restrict_bulk"),
    (Tenant, "send_offer"),
    (LimitRecommendation, "apply"),
    (OverageCharge, "decide"),
    (Restriction, "lift"),
]


@pytest.mark.parametrize(("model", "name"), FORM_ACTIONS)
def test_every_reason_form_action_is_built_by_the_one_helper(model: type, name: str):
    model_admin = admin.site._registry[model]
    action = getattr(type(model_admin), name)
    assert hasattr(action, "form_class"), f"{name} does not use console.actions"
    assert action.allowed_permissions, f"{name} declares no permission"
