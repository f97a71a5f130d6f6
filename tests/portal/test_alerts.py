"""Alerts on /notifications/: per channel the policy's thresholds (read-only) and the
customer's own (removable), the recipients of the warnings; admins and owners add and
remove them through the services (audited), viewers only see; bad input is an error
beside its field, never a 500; another tenant's alert or recipient answers 404."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import AlertRecipient
from notifications.services.alert_recipients import MAX_RECIPIENTS, alert_recipient_add
from policies.models import AlertThreshold
from policies.services.alerts import MAX_THRESHOLDS_PER_CHANNEL, alert_threshold_add
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db
PAGE = "/notifications/"
ADD_THRESHOLD = "/notifications/alerts/"
ADD_RECIPIENT = "/notifications/recipients/"


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def add_threshold(client: Client, channel: str = "sms", percent: str = "65"):
    return client.post(ADD_THRESHOLD, {"threshold-channel": channel, "threshold-percent": percent})


def add_recipient(client: Client, email: str = "oncall@alpha.example"):
    return client.post(ADD_RECIPIENT, {"recipient-email": email})


def row(body: str, channel: str) -> str:
    """The alerts table's row of a channel."""
    match = re.search(rf'<tr id="alerts-{channel}">(.*?)</tr>', body, re.S)
    assert match, f"no row for {channel}"
    return match.group(1)


@pytest.fixture
def terms(people):
    set_rule(people.alpha, "sms", included_units=1000, warning_thresholds=[50, 80, 100])
    return people


def test_the_page_lists_the_policys_thresholds_and_the_customers_own(terms):
    alert_threshold_add(tenant=terms.alpha, channel=sms(), percent=65, actor=None)
    alert_threshold_add(tenant=terms.beta, channel=sms(), percent=33, actor=None)
    body = terms.client(terms.viewer).get(PAGE).content.decode()
    sms_row = row(body, "sms")
    policy_cell, own_cell = re.findall(r"<td>(.*?)</td>", sms_row, re.S)[:2]
    assert re.findall(r'pill-neutral"[^>]*>([^<]+)<', policy_cell) == ["50%", "80%", "100%"]
    assert re.findall(r'pill-ok">([^<]+)<', own_cell) == ["65%"]
    assert "33%" not in body  # beta's


def test_an_admin_adds_a_threshold(terms):
    client = terms.client(terms.admin)
    response = add_threshold(client, percent="65")
    assert response.status_code == 302 and response["Location"] == PAGE + "#alerts"
    alert = AlertThreshold.objects.get(tenant=terms.alpha)
    assert (alert.channel.code, alert.percent, alert.created_by) == ("sms", 65, terms.admin)
    assert AuditEntry.objects.filter(action="alert_threshold.add", actor=terms.admin).exists()
    body = client.get(PAGE).content.decode()
    assert "You will be warned at 65% of your SMS credits." in body
    assert re.findall(r'pill-ok">([^<]+)<', row(body, "sms")) == ["65%"]


def test_an_owner_removes_a_threshold(terms):
    alert = alert_threshold_add(tenant=terms.alpha, channel=sms(), percent=65, actor=None)
    client = terms.client(terms.owner)
    response = client.post(f"/notifications/alerts/{alert.pk}/remove/")
    assert response.status_code == 302
    assert not AlertThreshold.objects.exists()
    assert AuditEntry.objects.filter(action="alert_threshold.remove", actor=terms.owner).exists()
    assert "The alert at 65% on SMS is removed." in client.get(PAGE).content.decode()


@pytest.mark.parametrize(
    ("percent", "error"),
    [
        ("0", "Ensure this value is greater than or equal to 1."),
        ("1001", "Ensure this value is less than or equal to 1000."),
        ("abc", "Enter a whole number."),
        ("", "This field is required."),
        ("65.5", "Enter a whole number."),
        ("9" * 40, "Ensure this value is less than or equal to 1000."),
    ],
)
def test_a_bad_percentage_is_an_error_beside_the_field(terms, percent, error):
    response = add_threshold(terms.client(terms.admin), percent=percent)
    assert response.status_code == 400
    assert re.search(
        r'id="id_threshold-percent".*?<p class="field-error" role="alert">'
        + re.escape(error), response.content.decode(), re.S,
    )  # fmt: skip
    assert not AlertThreshold.objects.exists()


def test_an_unknown_or_inactive_channel_is_an_error_beside_the_field(terms):
    Channel.objects.create(code="fax", name="Fax", active=False)
    client = terms.client(terms.admin)
    for channel in ("fax", "pigeon", ""):
        response = add_threshold(client, channel=channel)
        assert response.status_code == 400
        assert re.search(r'id="id_threshold-channel".*?class="field-error"',
                         response.content.decode(), re.S)  # fmt: skip
    assert not AlertThreshold.objects.exists()


def test_a_duplicate_threshold_and_one_too_many_are_errors(terms):
    client = terms.client(terms.admin)
    add_threshold(client, percent="65")
    response = add_threshold(client, percent="65")
    assert response.status_code == 400
    assert "You have an alert at this percentage on this channel already." in text(response)
    for percent in range(1, MAX_THRESHOLDS_PER_CHANNEL):
        alert_threshold_add(tenant=terms.alpha, channel=sms(), percent=percent, actor=None)
    response = add_threshold(client, percent="99")
    assert response.status_code == 400
    assert f"at most {MAX_THRESHOLDS_PER_CHANNEL} alerts of your own" in text(response)
    assert AlertThreshold.objects.count() == MAX_THRESHOLDS_PER_CHANNEL


def test_an_admin_adds_and_removes_a_recipient(terms):
    client = terms.client(terms.admin)
    response = add_recipient(client, " oncall@alpha.example ")
    assert response.status_code == 302 and response["Location"] == PAGE + "#alerts"
    recipient = AlertRecipient.objects.get(tenant=terms.alpha)
    assert recipient.email == "oncall@alpha.example"
    body = text(client.get(PAGE))
    assert "oncall@alpha.example will receive your warnings." in body
    assert f'id="recipient-{recipient.pk}"' in client.get(PAGE).content.decode()
    response = client.post(f"/notifications/recipients/{recipient.pk}/remove/")
    assert response.status_code == 302
    assert not AlertRecipient.objects.exists()
    assert "oncall@alpha.example no longer receives your warnings." in text(client.get(PAGE))
    assert [e.action for e in AuditEntry.objects.filter(action__startswith="alert_recipient.")
            .order_by("pk")] == ["alert_recipient.add", "alert_recipient.remove"]  # fmt: skip


@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("not-an-address", "Enter a valid email address."),
        ("", "This field is required."),
        ("a" * 250 + "@x.example", "Ensure this value has at most 254 characters"),
        ("ops@alpha.example", "This is your account's contact address"),
        ("OnCall@Alpha.example", "This address receives the warnings already."),
    ],
)
def test_a_bad_recipient_is_an_error_beside_the_field(terms, email, error):
    terms.alpha.contact_email = "ops@alpha.example"
    terms.alpha.save()
    alert_recipient_add(tenant=terms.alpha, email="oncall@alpha.example", actor=None)
    response = add_recipient(terms.client(terms.owner), email)
    assert response.status_code == 400
    assert re.search(
        r'id="id_recipient-email".*?<p class="field-error" id="recipient-email-error" '
        r'role="alert">' + re.escape(error).replace("'", "(?:'|&#x27;)"),
        response.content.decode(), re.S,
    )  # fmt: skip
    assert AlertRecipient.objects.count() == 1


def test_one_recipient_too_many_is_an_error(terms):
    for n in range(MAX_RECIPIENTS):
        alert_recipient_add(tenant=terms.alpha, email=f"r{n}@alpha.example", actor=None)
    response = add_recipient(terms.client(terms.admin), "one-more@alpha.example")
    assert response.status_code == 400
    assert f"at most {MAX_RECIPIENTS} recipients" in text(response)


def test_a_viewer_sees_the_alerts_but_cannot_change_them(terms):
    alert = alert_threshold_add(tenant=terms.alpha, channel=sms(), percent=65, actor=None)
    recipient = alert_recipient_add(tenant=terms.alpha, email="oncall@alpha.example", actor=None)
    client = terms.client(terms.viewer)
    body = client.get(PAGE).content.decode()
    assert "oncall@alpha.example" in body and "65%" in body
    assert ADD_THRESHOLD not in body and ADD_RECIPIENT not in body
    assert "/remove/" not in body
    assert "An admin or owner of your account can change the alerts and recipients." in body
    assert add_threshold(client).status_code == 403
    assert add_recipient(client, "x@alpha.example").status_code == 403
    assert client.post(f"/notifications/alerts/{alert.pk}/remove/").status_code == 403
    assert client.post(f"/notifications/recipients/{recipient.pk}/remove/").status_code == 403
    assert AlertThreshold.objects.count() == 1 and AlertRecipient.objects.count() == 1


def test_another_tenants_alert_or_recipient_answers_404(terms):
    alert = alert_threshold_add(tenant=terms.beta, channel=sms(), percent=65, actor=None)
    recipient = alert_recipient_add(tenant=terms.beta, email="x@beta.example", actor=None)
    client = terms.client(terms.owner)
    assert client.post(f"/notifications/alerts/{alert.pk}/remove/").status_code == 404
    assert client.post(f"/notifications/recipients/{recipient.pk}/remove/").status_code == 404
    assert client.post("/notifications/alerts/999999/remove/").status_code == 404
    assert AlertThreshold.objects.filter(pk=alert.pk).exists()
    assert AlertRecipient.objects.filter(pk=recipient.pk).exists()


def test_the_actions_are_post_only_and_need_a_login(terms):
    alert = alert_threshold_add(tenant=terms.alpha, channel=sms(), percent=65, actor=None)
    assert (
        terms.client(terms.owner).get(f"/notifications/alerts/{alert.pk}/remove/").status_code
        == 405
    )
    anonymous = Client().post(ADD_THRESHOLD, {"threshold-channel": "sms", "threshold-percent": "5"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert AlertThreshold.objects.count() == 1


def test_the_alerts_are_in_german(terms):
    alert_threshold_add(tenant=terms.alpha, channel=sms(), percent=65, actor=None)
    client = terms.client(terms.admin)
    client.post("/i18n/setlang/", {"language": "de", "next": PAGE})
    body = client.get(PAGE).content.decode()
    assert "Ihre eigenen Warnungen" in body
    assert re.findall(r'pill-ok">([^<]+)<', row(body, "sms")) == ["65\xa0%"]
    add_threshold(client, percent="70")
    # (text() makes the non-breaking space before % a space)
    assert "Wir warnen Sie bei 70 % Ihres Guthabens für SMS." in text(client.get(PAGE))


def test_the_page_takes_a_fixed_number_of_queries_whatever_the_alerts(
    terms, django_assert_num_queries
):
    client = terms.client(terms.admin)
    client.get(PAGE)
    with django_assert_num_queries(QUERIES) as few:
        client.get(PAGE)
    for channel in Channel.objects.filter(active=True):
        for percent in (11, 22, 33):
            alert_threshold_add(tenant=terms.alpha, channel=channel, percent=percent, actor=None)
    for n in range(5):
        alert_recipient_add(tenant=terms.alpha, email=f"r{n}@alpha.example", actor=None)
    with django_assert_num_queries(QUERIES):
        assert client.get(PAGE).status_code == 200
    assert few


# session, user, memberships; the unread count; the list's count and rows; the alerts:
# the active channels, their rules in force, the tenant's own thresholds, its recipients
QUERIES = 10
