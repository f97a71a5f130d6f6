"""The role matrix of the staff console: every admin action and custom admin view, found
by walking the admin site, holds each role to the permission ``policies/roles.py`` says it
requires; docs/ROLES.md says the same."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django.utils import timezone

from creditguard.models import AuditEntry
from metering.models import BillingPeriod, Channel
from notifications.models import Notification
from policies.models import (
    AutoTopUp,
    FeeSchedule,
    LimitRecommendation,
    PolicyVersion,
    Restriction,
    TopUpOffer,
    TopUpPack,
    WhatIfRun,
)
from policies.roles import ADMINISTRATORS, CONSOLE, ROLES, console_permission
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.limit_requests import limit_request_create
from policies.services.overage import overage_charge_refresh
from policies.services.recommend import recommendations_compute
from policies.services.restrictions import restriction_apply
from policies.services.topups import topup_offer_create
from tenants.models import ApiKey
from tests.conftest import World, event, issue
from tests.policies.anomaly_helpers import anomaly_alert_open
from tests.policies.helpers import set_rule

NO_GROUP = "staff in no group"
SUPERUSER = "superuser"
EVERY_ROLE = ["Support", "Billing", ADMINISTRATORS, NO_GROUP, SUPERUSER]
DOCS = Path(settings.BASE_DIR) / "docs" / "ROLES.md"


def signed_in(role: str) -> tuple[User, Client]:
    user = User.objects.create_user(username=re.sub(r"\W", "-", role), password="x", is_staff=True)
    if role == SUPERUSER:
        user.is_superuser = True
        user.save()
    elif role != NO_GROUP:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return User.objects.get(pk=user.pk), client  # fresh: no cached permissions


def every_action() -> list[tuple[ModelAdmin, str]]:
    """Every action the admin would offer someone holding every permission."""
    request = RequestFactory().get("/admin/")
    request.user = User(is_active=True, is_staff=True, is_superuser=True)
    return [
        (model_admin, name)
        for model_admin in admin.site._registry.values()
        for name in model_admin.get_actions(request)
    ]


def every_custom_url() -> list[tuple[ModelAdmin, URLPattern]]:
    """Every URL a model admin adds to Django's own (change list, add, change, …)."""
    found: list[tuple[ModelAdmin, URLPattern]] = []
    for model_admin in admin.site._registry.values():
        own = {pattern.name for pattern in ModelAdmin.get_urls(model_admin)}
        found.extend(
            (model_admin, pattern)
            for pattern in model_admin.get_urls()
            if isinstance(pattern, URLPattern) and pattern.name not in own
        )
    return found


def in_matrix(model_admin: ModelAdmin, name: str | None) -> str | None:
    opts = model_admin.model._meta
    return console_permission(opts.app_label, opts.model_name, name or "")


def required(model_admin: ModelAdmin, name: str | None) -> str:
    permission = in_matrix(model_admin, name)
    assert permission is not None, f"{model_admin} {name} is not in the role matrix"
    return permission


def one_of(model: type[Model]) -> Model:
    instance = model._default_manager.order_by("pk").first()
    assert instance is not None, f"the console fixture has no {model.__name__}: add one"
    return instance


def changelist_url(model_admin: ModelAdmin) -> str:
    opts = model_admin.model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


def offered(client: Client, model_admin: ModelAdmin) -> set[str]:
    response = client.get(changelist_url(model_admin))
    if response.status_code == 403:
        return set()
    assert response.status_code == 200
    form = response.context_data["action_form"]
    return {value for value, _ in form.fields["action"].choices if value} if form else set()


def run_action(client: Client, model_admin: ModelAdmin, name: str) -> bool:
    """POST the action as the changelist's action bar does, on one object; whether it ran
    (Django's "delete selected" only asks for a confirmation here)."""
    response = client.post(
        changelist_url(model_admin),
        {"action": name, "index": "0", "_selected_action": [one_of(model_admin.model).pk]},
    )
    if response.status_code == 403:
        return False
    messages = [str(message) for message in get_messages(response.wsgi_request)]
    if "No action selected." in messages:
        return False
    # A role with no action at all on this list gets the list back, untouched.
    shown = getattr(response, "template_name", None) or []
    return not (response.status_code == 200 and "admin/change_list.html" in shown)


@pytest.fixture
def console(world: World) -> World:
    """One object of every model the console lists with actions or custom views."""
    sms = Channel.objects.get(code="sms")
    pack = TopUpPack.objects.create(channel=sms, units=500, price=Decimal("29.00"))
    AutoTopUp.objects.create(tenant=world.alpha, channel=sms, pack=pack, threshold_units=10)
    topup_offer_create(tenant=world.alpha, pack=pack, actor=None)
    set_rule(world.alpha, "sms", included_units=100, action="notify_only")
    fee_schedule_notify(
        schedule=fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.10")])
    )
    world.alice_api.ingest([event("a", channel="sms", quantity=300)])
    period = BillingPeriod.objects.get(tenant=world.alpha)
    overage_charge_refresh(tenant=world.alpha, channel=sms, period=period)
    fee_schedule_create(channel=sms, name="SMS from next year", tiers=[(None, "0.12")])
    restriction_apply(
        tenant=world.gamma, channel=None, kind="suspend", limit_units=None, window="",
        duration=None, reason="test", customer_reason="test", actor=None,
    )  # fmt: skip
    recommendations_compute(tenants=[world.alpha])
    limit_request_create(
        tenant=world.alpha, channel=sms, included_units=500, expected_volume=450,
        reason="campaign", requested_by=None,
    )  # fmt: skip
    PolicyVersion.objects.create(
        label="1.1-draft", text_de="x", text_en="x", effective_from=timezone.now()
    )
    issue(world.beta)
    anomaly_alert_open(world.beta, sms)
    WhatIfRun.objects.create(channel=sms, scope="Retail · SMS", reason="test",
                             created_at=timezone.now())  # fmt: skip
    AccessAttempt.objects.create(
        username="someone", ip_address="192.0.2.1", user_agent="x", http_accept="*/*",
        path_info="/admin/login/", get_data="", post_data="", failures_since_start=1,
    )  # fmt: skip
    return world


@pytest.fixture
def draft(db: None) -> PolicyVersion:
    return PolicyVersion.objects.create(
        label="2.0",
        text_de="Neu",
        text_en="New",
        summary_de="Neu in Kürze",
        summary_en="New in short",
        effective_from=timezone.now() + timedelta(days=settings.POLICY_NOTICE_DAYS + 1),
        material=True,
    )


def test_every_admin_action_declares_its_permissions(db):
    undeclared = [
        f"{model_admin}.{name}"
        for model_admin, name in every_action()
        if not getattr(model_admin.get_action(name)[0], "allowed_permissions", None)
    ]
    assert undeclared == []


def test_every_admin_action_and_custom_view_is_in_the_role_matrix(db):
    unknown = [
        f"{model_admin}.{name}"
        for model_admin, name in every_action()
        if in_matrix(model_admin, name) is None
    ] + [
        f"{model_admin} {pattern.name}"
        for model_admin, pattern in every_custom_url()
        if in_matrix(model_admin, pattern.name) is None
    ]
    assert unknown == []
    assert every_custom_url(), "the walk found no custom view: it is broken"


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_gets_exactly_the_actions_of_the_matrix(console: World, role: str):
    user, client = signed_in(role)
    wrong = []
    for model_admin, name in every_action():
        allowed = user.has_perm(required(model_admin, name))
        if (name in offered(client, model_admin)) != allowed:
            wrong.append(f"{model_admin}.{name} offered: {not allowed}")
        if name == "delete_selected" and not model_admin.model._default_manager.exists():
            continue  # Django's own action, offered by the delete permission checked above
        if run_action(client, model_admin, name) != allowed:
            wrong.append(f"{model_admin}.{name} ran: {not allowed}")
    assert wrong == []


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_each_role_opens_exactly_the_custom_views_of_the_matrix(console: World, role: str):
    user, client = signed_in(role)
    wrong = []
    for model_admin, pattern in every_custom_url():
        pk = one_of(model_admin.model).pk
        url = reverse(f"admin:{pattern.name}", kwargs=dict.fromkeys(pattern.pattern.converters, pk))
        expected = 200 if user.has_perm(required(model_admin, pattern.name)) else 403
        status = client.get(url).status_code
        if status != expected:
            wrong.append(f"{pattern.name}: {status}, not {expected}")
    assert wrong == []


@pytest.mark.parametrize("role", ["Support", "Billing", NO_GROUP])
def test_only_administrators_publish_a_policy_version(draft: PolicyVersion, world: World, role):
    _, client = signed_in(role)
    client.post(
        reverse("admin:policies_policyversion_changelist"),
        {"action": "publish", "index": "0", "_selected_action": [draft.pk]},
    )
    draft.refresh_from_db()
    assert draft.published_at is None
    assert not Notification.objects.filter(kind="policy_change").exists()


def test_administrators_publish_a_policy_version(draft: PolicyVersion, world: World):
    _, client = signed_in(ADMINISTRATORS)
    client.post(
        reverse("admin:policies_policyversion_changelist"),
        {"action": "publish", "index": "0", "_selected_action": [draft.pk]},
    )
    draft.refresh_from_db()
    assert draft.published_at is not None
    assert Notification.objects.filter(kind="policy_change").count() == 3


def revoke(client: Client, api_key: ApiKey) -> None:
    client.post(
        reverse("admin:tenants_apikey_changelist"),
        {"action": "revoke", "index": "0", "_selected_action": [api_key.pk]},
    )


@pytest.mark.parametrize("role", ["Support", "Billing", NO_GROUP])
def test_only_administrators_revoke_api_keys(world: World, role: str):
    api_key = issue(world.beta).api_key
    _, client = signed_in(role)
    revoke(client, api_key)
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_revoking_a_key_in_the_console_is_audited(world: World):
    api_key = issue(world.beta).api_key
    user, client = signed_in(ADMINISTRATORS)
    revoke(client, api_key)
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    entry = AuditEntry.objects.get(action="api_key.revoke")
    assert (entry.actor, entry.tenant, entry.object_id) == (user, world.beta, str(api_key.pk))


@pytest.mark.parametrize(
    ("role", "computes"), [("Support", False), ("Billing", False), (ADMINISTRATORS, True)]
)
def test_only_administrators_compute_recommendations(world: World, role: str, computes: bool):
    _, client = signed_in(role)
    client.post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "compute_recommendations", "index": "0", "_selected_action": [world.alpha.pk]},
    )
    assert LimitRecommendation.objects.filter(tenant=world.alpha).exists() == computes


def matrix_rows() -> list[str]:
    roles = ["Support", "Billing", ADMINISTRATORS]
    held = {
        role: {
            f"{app_label}.{codename}"
            for app_label, codename in Group.objects.get(name=role).permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        for role in roles
    }
    return [
        f"| {entry.what} | `{entry.permission}` | "
        + " | ".join("✓" if entry.permission in held[role] else "—" for role in roles)
        + " |"
        for entry in CONSOLE.values()
    ]


def test_the_roles_document_shows_the_matrix_of_the_code(db):
    text = DOCS.read_text()
    documented = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    assert documented == matrix_rows()
    assert set(ROLES) | {ADMINISTRATORS} <= set(re.findall(r"\*\*(\w+)\*\*", text))


def test_api_keys_are_revoked_never_deleted(world: World):
    api_key = issue(world.beta).api_key
    _, client = signed_in(SUPERUSER)
    assert "delete_selected" not in offered(client, admin.site._registry[ApiKey])
    url = reverse("admin:tenants_apikey_delete", args=[api_key.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=api_key.pk).exists()


@pytest.mark.parametrize("model", [Restriction, TopUpOffer], ids=lambda model: model.__name__)
def test_restrictions_and_offers_are_history_never_deleted(console: World, model):
    _, client = signed_in(SUPERUSER)
    instance = one_of(model)
    opts = model._meta
    assert "delete_selected" not in offered(client, admin.site._registry[model])
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[instance.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=instance.pk).exists()


def test_a_published_policy_version_is_never_deleted_a_draft_may_be(draft: PolicyVersion):
    published = PolicyVersion.objects.exclude(published_at=None).get()
    _, client = signed_in(ADMINISTRATORS)
    for version in (published, draft):
        client.post(
            reverse("admin:policies_policyversion_delete", args=[version.pk]), {"post": "yes"}
        )
    assert list(PolicyVersion.objects.all()) == [published]


def test_a_notified_fee_schedule_is_never_deleted(console: World):
    notified = FeeSchedule.objects.exclude(notices=None).get()
    _, client = signed_in(ADMINISTRATORS)
    url = reverse("admin:policies_feeschedule_delete", args=[notified.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert FeeSchedule.objects.filter(pk=notified.pk).exists()


def test_superusers_clean_up_expired_login_attempts_without_a_500(db):
    attempt = AccessAttempt.objects.create(
        username="someone", ip_address="192.0.2.1", user_agent="x", http_accept="*/*",
        path_info="/admin/login/", get_data="", post_data="", failures_since_start=5,
    )  # fmt: skip
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(minutes=1)
    )
    _, client = signed_in(SUPERUSER)
    response = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "cleanup_expired_attempts", "index": "0", "_selected_action": [attempt.pk]},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
