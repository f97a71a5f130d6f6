"""The console's anomaly alerts: the list (rate vs normal, share of capacity, throttle, age),
the alert's page with its chart, and confirm / extend / lift with their messages; Billing
reads but does not act."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import Notification
from policies.models import AnomalyAlert, Restriction
from tests.conftest import NOW, World
from tests.policies.anomaly_helpers import anomaly_alert_open
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


def signed_in(role: str) -> tuple[User, Client]:
    user = User.objects.create_user(username=role.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def alert(world: World) -> AnomalyAlert:
    return anomaly_alert_open(world.alpha, Channel.objects.get(code="sms"))


@pytest.fixture
def throttled(world: World) -> AnomalyAlert:
    set_rule(world.alpha, included_units=10_000, action="restrict", restrict_units=50,
             restrict_window="hour")  # fmt: skip
    return anomaly_alert_open(world.alpha, Channel.objects.get(code="sms"))


def page(alert: AnomalyAlert) -> str:
    return reverse("admin:policies_anomalyalert_change", args=[alert.pk])


def act(client: Client, alert: AnomalyAlert, name: str, data: dict[str, object]):
    return client.post(reverse(f"admin:policies_anomalyalert_{name}", args=[alert.pk]), data)


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_list_shows_rate_against_normal_share_throttle_and_age(
    throttled: AnomalyAlert, world: World, django_assert_num_queries
):
    _, client = signed_in("Support")
    url = reverse("admin:policies_anomalyalert_changelist")
    client.get(url)  # the session and permissions are cached from here
    with django_assert_num_queries(8) as one:
        response = client.get(url)
    text = response.content.decode()
    assert response.status_code == 200
    assert "10× normal" in text
    assert "2,000 (200)" in text
    assert "600 units per hour until" in text
    assert "ago" in text
    for tenant in (world.beta, world.gamma):
        anomaly_alert_open(tenant, Channel.objects.get(code="sms"))
    with django_assert_num_queries(len(one.captured_queries)):
        assert client.get(url).content.decode().count("× normal") == 3


def test_the_alert_page_draws_the_evidence_as_inline_svg(alert: AnomalyAlert):
    _, client = signed_in("Billing")
    response = client.get(page(alert))
    text = response.content.decode()
    assert response.status_code == 200
    chart = text.split('<svg class="anomaly-chart"', 1)[1].split("</svg>")[0]
    assert chart.count('<rect class="bar"') == 48
    assert chart.count('fill="#ba2121"><title>') == 1  # the hour judged
    assert "2000 units (normal 200)" in chart
    assert "href" not in chart and "<script" not in chart  # nothing fetched, nothing run
    assert "Confirm" not in text and 'name="lift"' not in text  # Billing reads only


def test_support_confirms_with_a_throttle_and_is_told_the_customer_was_sent_why(
    alert: AnomalyAlert, world: World
):
    user, client = signed_in("Support")
    response = act(client, alert, "confirm", {"reason": "runaway loop", "apply_throttle": "on",
                                               "throttle_units": "500", "hours": "4"})  # fmt: skip
    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.status, alert.acted_by) == ("confirmed", user)
    throttle = Restriction.objects.get()
    assert (throttle.limit_units, throttle.ends_at, throttle.author) == (
        500,
        NOW + timedelta(hours=4),
        user,
    )
    assert said(response) == [
        "Alert confirmed and Alpha's SMS throttled to 500 units per hour until "
        f"{(NOW + timedelta(hours=4)):%Y-%m-%d %H:%M} UTC; the customer has been sent why."
    ]
    assert Notification.objects.filter(tenant=world.alpha, kind="restriction_applied").count() == 1
    assert AuditEntry.objects.filter(action="anomaly.confirm", actor=user).exists()


def test_support_extends_the_throttle(throttled: AnomalyAlert):
    _, client = signed_in("Support")
    response = act(client, throttled, "extend", {"hours": "8", "reason": "still going"})
    assert response.status_code == 302
    assert Restriction.objects.get().ends_at == throttled.opened_at + timedelta(hours=10)
    assert "the customer has been told the new end" in said(response)[0]


def test_support_lifts_an_alert_and_its_throttle(throttled: AnomalyAlert, world: World):
    _, client = signed_in("Support")
    response = act(client, throttled, "lift", {"reason": "announced campaign"})
    assert response.status_code == 302
    assert Restriction.objects.get().lifted_at is not None
    throttled.refresh_from_db()
    assert throttled.status == "lifted"
    assert said(response) == [
        "Alert lifted and the throttle of Alpha's SMS lifted; the customer has been told "
        "they can send as usual."
    ]
    assert Notification.objects.filter(tenant=world.alpha, kind="restriction_lifted").exists()


def test_a_missing_reason_or_a_second_lift_is_an_error_on_the_page_not_a_500(
    alert: AnomalyAlert,
):
    _, client = signed_in("Support")
    assert act(client, alert, "lift", {"reason": ""}).status_code == 400
    assert act(client, alert, "lift", {"reason": "fine"}).status_code == 302
    again = act(client, alert, "lift", {"reason": "again"})
    assert again.status_code == 400
    assert "lifted already" in again.content.decode()


def test_billing_may_not_act(alert: AnomalyAlert):
    _, client = signed_in("Billing")
    assert act(client, alert, "lift", {"reason": "no"}).status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open"


def test_an_unknown_alert_answers_404(alert: AnomalyAlert):
    _, client = signed_in("Support")
    assert (
        client.get(reverse("admin:policies_anomalyalert_change", args=[alert.pk + 99])).status_code
        == 404
    )
    assert act(client, alert, "lift", {}).status_code == 400
    assert (
        client.post(
            reverse("admin:policies_anomalyalert_lift", args=[alert.pk + 99]), {"reason": "x"}
        ).status_code
        == 404
    )


def test_the_alert_page_says_why_in_a_sentence_and_times_in_the_consoles_format(
    alert: AnomalyAlert,
):
    import re

    from console.formats import staff_instant

    _, client = signed_in("Billing")
    body = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get(page(alert)).content.decode()))
    why = body.split("Why an alert", 1)[1].split("Opened", 1)[0]
    assert "many times its normal" not in why
    assert re.search(r"Its hourly rate is \d+(\.\d)?× normal", why), why
    assert f"Opened {staff_instant(alert.opened_at)}" in body
    assert staff_instant(alert.opened_at).endswith(" UTC")
