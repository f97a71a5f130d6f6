"""One write path: every change made in the staff console goes through the service of its
change, which validates it, writes its audit row and notifies; the admin saves nothing
itself."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.forms import MultiWidget
from django.test import Client
from django.urls import reverse

from creditguard.errors import Conflict, InvalidInput
from creditguard.models import AuditEntry
from metering.models import BillingPeriod, Channel
from policies.models import AutoTopUp, CohortDefault, FeeSchedule, LimitRule, TopUpPack
from policies.services.fees import (
    fee_schedule_create,
    fee_schedule_delete,
    fee_schedule_notify,
    fee_schedule_update,
)
from tenants.models import Tenant
from tenants.services import tenant_update
from tests.conftest import World, event
from tests.policies.helpers import authorize, set_rule


def superuser() -> tuple[User, Client]:
    user = User.objects.create_user(
        username="root-user", password="x", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(user)
    return user, client


def form_data(response: Any) -> dict[str, Any]:
    """What a browser would post back from an admin add or change page left as it is:
    the main form's values and every inline's management form and rows."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for bound in form:
            value = bound.value()
            if value is None:
                continue
            if isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
                continue
            widget = bound.field.widget
            if isinstance(widget, MultiWidget):  # a date and a time
                for index, part in enumerate(widget.decompress(value) or []):
                    data[f"{bound.html_name}_{index}"] = part
                continue
            data[bound.html_name] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.initial_forms:
            add(form)
    return data


# Tenants


def test_adding_a_tenant_in_the_admin_gives_it_limit_rules_and_an_audit_row(world: World):
    user, client = superuser()
    url = reverse("admin:tenants_tenant_add")
    data = form_data(client.get(url))
    data.update(
        name="Delta", slug="delta", industry="retail", size_band="10-49", language="en",
        currency="EUR", time_zone="Europe/Vienna",
    )  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    delta = Tenant.objects.get(slug="delta")
    active = Channel.objects.filter(active=True).count()
    assert LimitRule.objects.filter(tenant=delta, version=1).count() == active > 0
    entry = AuditEntry.objects.get(action="tenant.create", tenant=delta)
    assert (entry.actor, entry.tenant, entry.after["time_zone"]) == (user, delta, "Europe/Vienna")


def test_editing_a_tenant_in_the_admin_is_audited_with_what_changed(world: World):
    user, client = superuser()
    url = reverse("admin:tenants_tenant_change", args=[world.beta.pk])
    data = form_data(client.get(url))
    data["contact_name"] = "Bea Beta"
    assert client.post(url, data).status_code == 302
    world.beta.refresh_from_db()
    assert world.beta.contact_name == "Bea Beta"
    entry = AuditEntry.objects.get(action="tenant.update")
    assert (entry.actor, entry.tenant) == (user, world.beta)
    assert (entry.before, entry.after) == ({"contact_name": ""}, {"contact_name": "Bea Beta"})


def test_saving_a_tenant_unchanged_writes_no_audit_row(world: World):
    _, client = superuser()
    url = reverse("admin:tenants_tenant_change", args=[world.beta.pk])
    assert client.post(url, form_data(client.get(url))).status_code == 302
    assert not AuditEntry.objects.filter(action="tenant.update").exists()


@time_machine.travel(datetime(2030, 6, 15, 12, tzinfo=UTC), tick=True)
def test_time_zone_and_currency_are_read_only_once_the_tenant_has_a_period(
    world: World, settings: Any
):
    """A time zone changed under existing periods made the services that open the current
    period (a limit change, a reduction, a top-up) fail with BillingPeriod.DoesNotExist:
    periods are found by their start, while their label is unique."""
    settings.AUTHORIZATION_FAST_PATH = False
    world.beta_api.ingest([event("b1", quantity=1)])
    assert BillingPeriod.objects.filter(tenant=world.beta).exists()
    _, client = superuser()
    url = reverse("admin:tenants_tenant_change", args=[world.beta.pk])
    page = client.get(url)
    assert {"time_zone", "currency"} <= set(page.context["adminform"].readonly_fields)
    data = form_data(page)
    data.update(time_zone="Asia/Tokyo", currency="USD", contact_name="Bea")
    assert client.post(url, data).status_code == 302
    world.beta.refresh_from_db()
    assert (world.beta.time_zone, world.beta.currency) == ("America/New_York", "EUR")
    assert world.beta.contact_name == "Bea"
    response = authorize(world.beta_api, "sms", 1)
    assert response.status_code == 200, response.content
    assert response.json()["decision"] in {"allow", "allow_overage"}
    assert set_rule(world.beta, "sms", included_units=5).included_delta_applied != 0


def test_a_new_tenant_without_history_may_still_change_its_time_zone(world: World):
    _, client = superuser()
    url = reverse("admin:tenants_tenant_change", args=[world.gamma.pk])
    page = client.get(url)
    assert "time_zone" not in page.context["adminform"].readonly_fields
    data = form_data(page)
    data["time_zone"] = "Europe/Lisbon"
    assert client.post(url, data).status_code == 302
    world.gamma.refresh_from_db()
    assert world.gamma.time_zone == "Europe/Lisbon"
    entry = AuditEntry.objects.get(action="tenant.update")
    assert (entry.before, entry.after) == ({"time_zone": "UTC"}, {"time_zone": "Europe/Lisbon"})


def test_tenant_update_refuses_a_time_zone_change_once_the_tenant_has_a_period(world: World):
    world.beta_api.ingest([event("b1", quantity=1)])
    with pytest.raises(InvalidInput) as raised:
        tenant_update(tenant=world.beta, changes={"time_zone": "Asia/Tokyo"}, actor=None)
    assert raised.value.errors[0]["field"] == "time_zone"
    world.beta.refresh_from_db()
    assert world.beta.time_zone == "America/New_York"
    assert not AuditEntry.objects.filter(action="tenant.update").exists()


def test_tenant_update_validates_every_field(world: World):
    with pytest.raises(InvalidInput):
        tenant_update(tenant=world.gamma, changes={"time_zone": "Mars/Olympus"}, actor=None)
    with pytest.raises(InvalidInput):
        tenant_update(tenant=world.gamma, changes={"status": "closed"}, actor=None)
    world.gamma.refresh_from_db()
    assert (world.gamma.time_zone, world.gamma.status) == ("UTC", "active")


def test_the_tenant_admin_keeps_no_request_on_the_shared_instance(world: World):
    """One admin instance serves every thread: a request kept on it is another thread's."""
    _, client = superuser()
    model_admin = admin.site._registry[Tenant]
    before = set(vars(model_admin))
    set_rule(world.alpha, "sms", included_units=100)
    world.alice_api.ingest([event("a", quantity=85)])
    html = client.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert "SMS 85 %" in html
    assert set(vars(model_admin)) == before


# The limit form


def limit_page(client: Client, tenant: Tenant, channel: str = "sms") -> Any:
    url = reverse("admin:policies_tenant_limit", args=[tenant.pk])
    return client.get(url, {"channel": Channel.objects.get(code=channel).pk})


def as_posted(form: Any) -> dict[str, Any]:
    """The form as a browser posts it back untouched: shown values and hidden initials."""
    data: dict[str, Any] = {}
    for bound in form:
        value = bound.field.prepare_value(bound.value())
        data[bound.html_name] = "" if value is None else value
        if bound.field.show_hidden_initial:
            data[bound.html_initial_name] = data[bound.html_name]
    return data


@pytest.fixture
def capped(world: World) -> Tenant:
    """Alpha's SMS rule: 100 included, a ceiling of 50 beyond, warnings at 70 and 95 %."""
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50, warning_thresholds=[70, 95])
    world.alice_api.ingest([event("a", quantity=40)])
    return world.alpha


def latest_rule(tenant: Tenant) -> LimitRule:
    return LimitRule.objects.filter(tenant=tenant, channel__code="sms").order_by("-version")[0]


def test_the_limit_form_shows_the_current_terms_and_this_periods_usage(capped: Tenant):
    _, client = superuser()
    page = limit_page(client, capped)
    data = as_posted(page.context["form"])
    assert (data["included_units"], data["hard_limit"], data["warning_thresholds"]) == (
        100, 50, "70,95"
    )  # fmt: skip
    html = page.content.decode()
    assert 'value="70,95"' in html and "40 / 100" in html and "40 %" in html


def test_changing_only_the_included_units_keeps_every_other_term(capped: Tenant):
    """The form was not pre-filled and took its blanks as values: this change silently
    produced hard_limit=None and thresholds=[50, 80, 90, 100]."""
    _, client = superuser()
    data = as_posted(limit_page(client, capped).context["form"])
    data.update(included_units="300", reason="Campaign")
    response = client.post(limit_page(client, capped).wsgi_request.get_full_path(), data)
    assert response.status_code == 302
    rule = latest_rule(capped)
    assert (rule.version, rule.included_units, rule.hard_limit, rule.warning_thresholds) == (
        3, 300, 50, [70, 95]
    )  # fmt: skip
    entry = AuditEntry.objects.filter(action="limit_rule.set").latest("id")
    assert entry.after["hard_limit"] == 50 and entry.reason == "Campaign"


def test_clearing_the_hard_limit_in_the_limit_form_removes_the_ceiling(capped: Tenant):
    _, client = superuser()
    data = as_posted(limit_page(client, capped).context["form"])
    data.update(hard_limit="", reason="No ceiling for this customer")
    url = reverse("admin:policies_tenant_limit", args=[capped.pk])
    assert client.post(url, data).status_code == 302
    rule = latest_rule(capped)
    assert (rule.included_units, rule.hard_limit, rule.warning_thresholds) == (100, None, [70, 95])


def test_a_limit_form_left_as_it_was_writes_no_version(capped: Tenant):
    _, client = superuser()
    data = as_posted(limit_page(client, capped).context["form"])
    data.update(reason="Just looking")
    url = reverse("admin:policies_tenant_limit", args=[capped.pk])
    response = client.post(url, data)
    assert response.status_code == 200 and "Nothing changed" in response.content.decode()
    assert latest_rule(capped).version == 2


# Fee schedules and their tiers


def billing() -> tuple[User, Client]:
    user = User.objects.create_user(username="billing-user", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Billing"))
    client = Client()
    client.force_login(user)
    return user, client


def with_tiers(data: dict[str, Any], tiers: list[tuple[str, str]], kept: int = 0) -> dict:
    """The page's data with its tier rows replaced: ``kept`` existing rows stay as they
    were posted, then ``tiers`` as (up to, unit price), written over the next rows."""
    start = kept
    for index, (up_to, price) in enumerate(tiers, start=start):
        data[f"tiers-{index}-up_to"] = up_to
        data[f"tiers-{index}-unit_price"] = price
    data["tiers-TOTAL_FORMS"] = str(start + len(tiers))
    return data


def test_a_fee_schedule_added_in_the_admin_is_created_and_audited_by_the_service(world: World):
    user, client = billing()
    url = reverse("admin:policies_feeschedule_add")
    data = form_data(client.get(url))
    data.update(
        channel=Channel.objects.get(code="sms").pk, name="SMS 2031", mode="graduated",
        currency="EUR", effective_from_0="2031-01-01", effective_from_1="00:00:00",
        reason="New year prices",
    )  # fmt: skip
    response = client.post(url, with_tiers(data, [("1000", "0.10"), ("", "0.08")]))
    assert response.status_code == 302, response.context and response.context["errors"]
    schedule = FeeSchedule.objects.get(name="SMS 2031")
    assert schedule.author == user
    assert [(t.up_to, str(t.unit_price)) for t in schedule.tiers.all()] == [
        (1000, "0.100000"), (None, "0.080000")
    ]  # fmt: skip
    entry = AuditEntry.objects.get(action="fee_schedule.create", object_id=str(schedule.pk))
    assert entry.actor == user and entry.reason == "New year prices"
    assert entry.after["tiers"] == [[1000, "0.10"], [None, "0.08"]]


def test_editing_fee_tiers_in_the_admin_is_audited_with_the_tiers_before_and_after(
    world: World,
):
    schedule = fee_schedule_create(
        channel=Channel.objects.get(code="sms"), name="SMS", tiers=[(None, "0.10")]
    )
    user, client = billing()
    url = reverse("admin:policies_feeschedule_change", args=[schedule.pk])
    data = form_data(client.get(url))
    tier = schedule.tiers.get()
    data.update({"tiers-0-up_to": "500", "tiers-0-unit_price": "0.12", "tiers-0-id": tier.pk})
    response = client.post(url, with_tiers(data, [("", "0.09")], kept=1))
    assert response.status_code == 302, response.context and response.context["errors"]
    assert [(t.up_to, str(t.unit_price)) for t in schedule.tiers.all()] == [
        (500, "0.120000"), (None, "0.090000")
    ]  # fmt: skip
    entry = AuditEntry.objects.get(action="fee_schedule.edit")
    assert entry.actor == user
    assert (entry.before["tiers"], entry.after["tiers"]) == (
        [[None, "0.100000"]], [[500, "0.12"], [None, "0.09"]]
    )  # fmt: skip


def test_tiers_that_make_no_schedule_are_a_form_error_and_save_nothing(world: World):
    schedule = fee_schedule_create(
        channel=Channel.objects.get(code="sms"), name="SMS", tiers=[(None, "0.10")]
    )
    _, client = billing()
    url = reverse("admin:policies_feeschedule_change", args=[schedule.pk])
    data = with_tiers(form_data(client.get(url)), [("", "0.20")], kept=1)  # two open tiers
    response = client.post(url, data)
    assert response.status_code == 200
    assert "Only the last tier is open-ended" in response.content.decode()
    assert [str(t.unit_price) for t in schedule.tiers.all()] == ["0.100000"]
    assert not AuditEntry.objects.filter(action="fee_schedule.edit").exists()


def test_deleting_a_draft_fee_schedule_is_audited(world: World):
    schedule = fee_schedule_create(
        channel=Channel.objects.get(code="sms"), name="Draft", tiers=[(None, "0.10")]
    )
    _, client = superuser()
    url = reverse("admin:policies_feeschedule_delete", args=[schedule.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not FeeSchedule.objects.filter(pk=schedule.pk).exists()
    entry = AuditEntry.objects.get(action="fee_schedule.delete")
    assert entry.object_id == str(schedule.pk) and entry.before["name"] == "Draft"


def test_the_fee_services_refuse_to_change_or_delete_a_notified_schedule(world: World):
    sms = Channel.objects.get(code="sms")
    schedule = fee_schedule_create(channel=sms, name="SMS", tiers=[(None, "0.10")])
    fee_schedule_notify(schedule=schedule)
    with pytest.raises(Conflict):
        fee_schedule_update(
            schedule=schedule, channel=sms, name="SMS", tiers=[(None, "0.50")], currency="EUR",
            mode="graduated", tenant=None, effective_from=schedule.effective_from,
        )  # fmt: skip
    with pytest.raises(Conflict):
        fee_schedule_delete(schedule=schedule)
    assert [str(t.unit_price) for t in schedule.tiers.all()] == ["0.100000"]


# Cohort defaults, top-up packs, automatic top-ups, channels


def setting_fields(model: type[Model], world: World) -> dict[str, Any]:
    sms = Channel.objects.get(code="sms")
    if model is CohortDefault:
        return {"industry": "retail", "channel": sms.pk, "included_units": "500",
                "warning_thresholds": "[50, 80, 90, 100]", "action": "notify_only",
                "carry_over": "forgive"}  # fmt: skip
    if model is TopUpPack:
        return {"channel": sms.pk, "units": "500", "price": "29.00", "currency": "EUR"}
    if model is AutoTopUp:
        pack = TopUpPack.objects.create(channel=sms, units=100, price=Decimal("9.00"))
        return {"tenant": world.alpha.pk, "channel": sms.pk, "pack": pack.pk,
                "threshold_units": "10", "max_per_period": "1", "enabled": "on"}  # fmt: skip
    return {"code": "fax", "name": "Fax", "unit": "page", "active": "on",
            "default_included_units": "0", "sort_order": "100"}  # fmt: skip


CHANGED = {CohortDefault: "included_units", TopUpPack: "units", AutoTopUp: "threshold_units",
           Channel: "default_included_units"}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "action"),
    [(CohortDefault, "cohort_default"), (TopUpPack, "topup_pack"), (AutoTopUp, "auto_topup"),
     (Channel, "channel")],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)  # fmt: skip
def test_settings_added_changed_and_deleted_in_the_admin_are_audited(
    world: World, model: type[Model], action: str
):
    user, client = superuser()
    opts = model._meta
    add_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
    data = {**form_data(client.get(add_url)), **setting_fields(model, world)}
    response = client.post(add_url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    instance = model._default_manager.latest("pk")
    created = AuditEntry.objects.get(action=f"{action}.create")
    assert (created.actor, created.object_id) == (user, str(instance.pk))

    change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk])
    data = form_data(client.get(change_url))
    data[CHANGED[model]] = "700"
    assert client.post(change_url, data).status_code == 302
    updated = AuditEntry.objects.get(action=f"{action}.update")
    assert updated.after[CHANGED[model]] == 700 and updated.before[CHANGED[model]] != 700

    delete_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[instance.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not model._default_manager.filter(pk=instance.pk).exists()
    deleted = AuditEntry.objects.get(action=f"{action}.delete")
    assert (deleted.actor, deleted.before[CHANGED[model]], deleted.after) == (user, 700, None)
