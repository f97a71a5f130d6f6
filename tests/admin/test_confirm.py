"""Destructive or customer-visible console actions are confirmed on a page that names what
they do and shows the text the customer will receive; nothing happens before "Confirm",
and every action ends with a message saying what happened and who was told."""

from __future__ import annotations

from datetime import timedelta
from html import escape

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.messages import render_message
from notifications.models import AlertRecipient, Delivery, Notification
from policies.models import LimitRecommendation, LimitRule, Restriction
from policies.services.restrictions import restriction_apply
from tenants.models import Tenant
from tests.admin.test_console import staff
from tests.conftest import NOW, World
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")

REASONS = {
    "reason": "Ticket 4711: SIM farm",
    "customer_reason": "Unusual traffic from your account",
}


@pytest.fixture
def alpha(world: World) -> Tenant:
    """A German tenant with a contact address and an alert recipient: two addresses."""
    Tenant.objects.filter(pk=world.alpha.pk).update(
        contact_email="ops@alpha.example", language="de"
    )
    AlertRecipient.objects.create(tenant=world.alpha, email="oncall@alpha.example", created_at=NOW)
    world.alpha.refresh_from_db()
    return world.alpha


def restrict_url(tenant: Tenant) -> str:
    return reverse("admin:policies_tenant_restrict", args=[tenant.pk])


def told_nothing() -> None:
    assert not Restriction.objects.exists()
    assert not Notification.objects.filter(kind="restriction_applied").exists()
    assert not AuditEntry.objects.filter(action="restriction.apply").exists()
    assert not Delivery.objects.filter(notification__kind="restriction_applied").exists()


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_restrict_form_starts_at_the_least_harmful_restriction(alpha: Tenant):
    form = staff(superuser=True).get(restrict_url(alpha)).context["form"]
    assert form["kind"].value() == "throttle"
    assert form["window"].value() == "hour"
    assert form["hours"].value() == 24
    assert form["channel"].value() in (None, "")  # to be chosen: no default channel
    choices = dict(form.fields["channel"].choices)
    assert choices[""] == "Choose a channel" and "all" in choices


def test_a_restriction_without_a_chosen_channel_is_refused(alpha: Tenant):
    page = staff(superuser=True).post(
        restrict_url(alpha), {"kind": "throttle", "limit_units": "100", "window": "hour",
                              "hours": "24", **REASONS},
    )  # fmt: skip
    assert page.status_code == 200 and "channel" in page.context["form"].errors
    told_nothing()


def test_a_throttle_needs_its_units(alpha: Tenant):
    sms = Channel.objects.get(code="sms")
    page = staff(superuser=True).post(
        restrict_url(alpha), {"channel": sms.pk, "kind": "throttle", "window": "hour",
                              "hours": "24", **REASONS},
    )  # fmt: skip
    assert "limit_units" in page.context["form"].errors
    told_nothing()


def test_a_suspension_of_all_channels_for_good_is_only_shown_until_confirmed(
    alpha: Tenant, django_capture_on_commit_callbacks
):
    client = staff(superuser=True)
    form = {"channel": "all", "kind": "suspend", "hours": "", **REASONS}
    with django_capture_on_commit_callbacks() as after_commit:
        page = client.post(restrict_url(alpha), form)
    assert after_commit == []  # no delivery enqueued, no event counted: all rolled back
    assert page.status_code == 200
    assert page.templates[0].name == "admin/console/confirm.html"
    html = page.content.decode()
    assert "Suspend: every authorization" in html
    assert "All channels: the whole tenant is suspended" in html
    assert "Permanent: it stays until someone lifts it." in html
    assert "ops@alpha.example, oncall@alpha.example" in html and "German" in html
    told_nothing()
    alpha.refresh_from_db()
    assert alpha.status == "active"

    # Confirmed: the same form posted again, as the page does.
    with django_capture_on_commit_callbacks() as after_commit:
        done = client.post(restrict_url(alpha), {**dict(page.context["posted"]), "confirmed": "1"})
    assert done.status_code == 302 and after_commit  # now the deliveries go out
    restriction = Restriction.objects.get(tenant=alpha)
    assert (restriction.channel, restriction.kind, restriction.ends_at) == (None, "suspend", None)
    # The page showed the exact text the tenant received, in its language.
    sent = Notification.objects.get(tenant=alpha, kind="restriction_applied")
    message = render_message(sent, language="de")
    assert message.language == "de"
    for line in (message.subject, *message.lines):
        assert escape(line) in html, line


def test_back_shows_the_form_as_filled_in_and_does_nothing(alpha: Tenant):
    client = staff(superuser=True)
    form = {"channel": "all", "kind": "suspend", "hours": "2", **REASONS}
    page = client.post(restrict_url(alpha), {**form, "back": "Back"})
    assert page.templates[0].name == "admin/console/form.html"
    assert page.context["form"]["kind"].value() == "suspend"
    assert REASONS["customer_reason"] in page.content.decode()
    told_nothing()


def test_the_confirmed_throttle_says_what_happened_and_who_was_told(alpha: Tenant):
    sms = Channel.objects.get(code="sms")
    form = {"channel": sms.pk, "kind": "throttle", "limit_units": "100", "window": "hour",
            "hours": "24", "confirmed": "1", **REASONS}  # fmt: skip
    done = staff(superuser=True).post(restrict_url(alpha), form, follow=True)
    end = (NOW + timedelta(hours=24)).astimezone(alpha.tzinfo)
    assert messages_of(done) == [
        f"Throttle to 100 units per hour on {sms.name} for Alpha until "
        f"{end:%-d November %Y, %H:%M} CET; Alpha's 2 contacts were told by e-mail and in-app."
    ]


def test_the_bulk_restriction_is_confirmed_too(world: World):
    client = staff(superuser=True)
    post = {"action": "restrict_bulk", "apply": "1", "_selected_action": [world.beta.pk],
            "channel": "all", "kind": "suspend", "hours": "1", **REASONS}  # fmt: skip
    page = client.post(reverse("admin:tenants_tenant_changelist"), post)
    assert page.templates[0].name == "admin/console/confirm.html"
    assert "Suspension on all channels for Beta for 1 hour." in page.content.decode()
    told_nothing()
    done = client.post(
        reverse("admin:tenants_tenant_changelist"), {**post, "confirmed": "1"}, follow=True
    )
    assert Restriction.objects.filter(tenant=world.beta).count() == 1
    assert messages_of(done) == [
        "Suspension on all channels for Beta for 1 hour; Beta's contact was told by e-mail and "
        "in-app."
    ]


def test_lifting_a_restriction_says_what_was_lifted_and_who_was_told(alpha: Tenant):
    sms = Channel.objects.get(code="sms")
    restriction = restriction_apply(
        tenant=alpha, channel=sms, kind="suspend", duration=timedelta(hours=2), actor=None,
        reason=REASONS["reason"], customer_reason=REASONS["customer_reason"],
    )  # fmt: skip
    done = staff(superuser=True).post(
        reverse("admin:policies_restriction_changelist"),
        {"action": "lift", "apply": "1", "_selected_action": [restriction.pk], "reason": "Ok"},
        follow=True,
    )
    end = restriction.ends_at.astimezone(alpha.tzinfo)
    assert messages_of(done) == [
        f"Lifted: Suspension on {sms.name} for Alpha until {end:%-d November %Y, %H:%M} CET; "
        "Alpha's contact was told by e-mail and in-app."  # "lifted" is no warning: no recipients
    ]


def limit_post(tenant: Tenant, **terms: str) -> dict[str, str]:
    sms = Channel.objects.get(code="sms")
    rule = LimitRule.objects.filter(tenant=tenant, channel=sms).latest("version")
    form = {"channel": str(sms.pk), "included_units": str(rule.included_units),
            "action": rule.action, "warning_thresholds": "50,80,90,100",
            "reason": "Review", **terms}  # fmt: skip
    initial = {f"initial-{name}": value for name, value in form.items() if name != "reason"}
    initial["initial-included_units"] = str(rule.included_units)
    return {**form, **initial}


def test_worse_terms_are_confirmed_first_and_better_ones_are_not(alpha: Tenant):
    set_rule(alpha, "sms", included_units=1000)
    notices = Notification.objects.filter(kind="limit_changed").count()
    client = staff(superuser=True)
    url = reverse("admin:policies_tenant_limit", args=[alpha.pk])
    worse = limit_post(alpha, included_units="500")
    page = client.post(url, worse)
    assert page.templates[0].name == "admin/console/confirm.html"
    html = page.content.decode()
    assert "Included credits per period: 1,000 → 500" in html
    assert "after the notice" in html
    assert LimitRule.objects.filter(tenant=alpha, channel__code="sms").count() == 2
    assert Notification.objects.filter(kind="limit_changed").count() == notices

    done = client.post(url, {**worse, "confirmed": "1"}, follow=True)
    assert LimitRule.objects.filter(tenant=alpha, channel__code="sms").count() == 3
    (message,) = messages_of(done)
    assert "worse terms, so Alpha's contact was told by e-mail and in-app." in message

    better = client.post(url, limit_post(alpha, included_units="2000"), follow=True)
    (message,) = messages_of(better)
    assert message.endswith("better terms: Alpha was not told.")


def test_a_reduction_is_confirmed_first(alpha: Tenant):
    set_rule(alpha, "sms", included_units=100)
    sms = Channel.objects.get(code="sms")
    client = staff(superuser=True)
    url = reverse("admin:policies_tenant_reduce", args=[alpha.pk])
    form = {"channel": sms.pk, "units": "40", "reason": "abuse", "customer_reason": "Abuse"}
    page = client.post(url, form)
    assert f"40 unused {sms.name} credits of this period are taken away" in page.content.decode()
    assert not AuditEntry.objects.filter(action="credits.reduce").exists()
    done = client.post(url, {**form, "confirmed": "1"}, follow=True)
    assert messages_of(done) == [
        f"40 unused {sms.name} credits of Alpha reduced; Alpha's contact was told by e-mail and "
        "in-app."
    ]


def recommendation(tenant: Tenant, suggested: int) -> LimitRecommendation:
    return LimitRecommendation.objects.create(
        tenant=tenant, channel=Channel.objects.get(code="sms"), computed_at=timezone.now(),
        current_included=1000, suggested_included=suggested, suggested_hard_limit=200,
        own_trend=0.1290804643759722, cohort="retail", cohort_size=3,
        explanation="Grows 13 % a month.",
    )  # fmt: skip


def apply(client: Client, rec: LimitRecommendation, **extra: str):
    return client.post(
        reverse("admin:policies_limitrecommendation_changelist"),
        {"action": "apply", "apply": "1", "_selected_action": [rec.pk], "reason": "ok", **extra},
        follow=True,
    )


def test_applying_a_recommendation_says_what_and_who(alpha: Tenant):
    set_rule(alpha, "sms", included_units=1000, hard_limit=200)
    client = staff(superuser=True)
    better = apply(client, recommendation(alpha, 1500))
    assert messages_of(better) == [
        "Applied to Alpha on SMS: 1,500 included credits a period, a ceiling 200 beyond them; "
        "Alpha was not told."
    ]
    worse = recommendation(alpha, 800)
    page = apply(client, worse)
    assert page.templates[0].name == "admin/console/confirm.html"
    assert "Worse terms for Alpha" in page.content.decode()
    worse.refresh_from_db()
    assert worse.applied_at is None
    done = apply(client, worse, confirmed="1")
    worse.refresh_from_db()
    assert worse.applied_at is not None
    assert messages_of(done)[-1].endswith("Alpha's contact was told by e-mail and in-app.")


def test_deciding_a_limit_request_says_who_was_told(alpha: Tenant):
    from tests.admin.test_limit_requests import ask

    set_rule(alpha, "sms", included_units=1000)
    client = staff(superuser=True)
    first, second = ask(alpha), ask(alpha, units=6000, channel="email")
    approved = client.post(
        reverse("admin:policies_limitrequest_approve", args=[first.pk]),
        {"included_units": "5000", "reason": "Campaign"},
        follow=True,
    )
    (message,) = messages_of(approved)
    assert message.startswith(f"Request #{first.pk} of Alpha approved: 5,000 SMS credits")
    assert message.endswith("Alpha's contact was told by e-mail and in-app.")
    declined = client.post(
        reverse("admin:policies_limitrequest_decline", args=[second.pk]),
        {"customer_reason": "One increase a month"},
        follow=True,
    )
    assert messages_of(declined) == [
        f"Request #{second.pk} of Alpha declined; Alpha's contact was told by e-mail and in-app."
    ]


def test_a_bulk_action_names_each_tenant_and_who_was_told(alpha: Tenant, world: World):
    from decimal import Decimal

    from policies.models import TopUpPack

    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("29.00")
    )
    done = staff(superuser=True).post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "send_offer", "apply": "1", "_selected_action": [alpha.pk, world.beta.pk],
         "pack": pack.pk},
        follow=True,
    )  # fmt: skip
    assert sorted(messages_of(done)) == [
        "Offer of 500 SMS for €29.00 sent to Alpha; Alpha's contact was told by e-mail and in-app.",
        "Offer of 500 SMS for €29.00 sent to Beta; Beta's contact was told by e-mail and in-app.",
    ]


def test_closing_tenants_keeps_its_own_message_and_says_who_was_told(world: World):
    done = staff(superuser=True).post(
        reverse("admin:tenants_tenant_changelist"),
        {"action": "close", "apply": "1", "_selected_action": [world.gamma.pk], "reason": "Gone"},
        follow=True,
    )
    assert messages_of(done) == ["1 tenant(s) closed; their API keys are revoked; nobody was told."]
