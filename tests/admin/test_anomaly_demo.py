"""The demo has an open anomaly alert staff can try (its other tenants' usage, three lumps
a day per channel, may add one when a lump falls in the last hour: not asserted)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from policies.models import AnomalyAlert

pytestmark = pytest.mark.django_db


def test_the_demo_has_one_open_alert_with_its_chart():
    call_command("seed_demo", verbosity=0)
    alert = AnomalyAlert.objects.select_related("tenant", "channel").get(tenant__slug="codecraft")
    assert (alert.channel.code, alert.status) == ("email", "open")
    assert 6 <= alert.ratio <= 10
    assert alert.restriction is None  # its rule does not restrict: staff decide
    assert len(alert.evidence["series"]) == 48
    alerts = AnomalyAlert.objects.count()
    call_command("seed_demo", verbosity=0)  # twice: nothing more
    assert AnomalyAlert.objects.count() == alerts
    client = Client()
    client.force_login(User.objects.get(username="staff"))
    response = client.get(reverse("admin:policies_anomalyalert_change", args=[alert.pk]))
    assert response.status_code == 200
    assert "anomaly-chart" in response.content.decode()
