"""The anomaly watch on PostgreSQL: spikes read from the usage rollups open one alert per
tenant × channel (a re-run updates its evidence), the tenant is throttled at once only when
its rule allows and is told why in its language, quiet alerts close; and staff's confirm,
extend and lift."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from creditguard.errors import Conflict
from creditguard.models import AuditEntry
from metering.models import Channel
from notifications.models import Notification
from policies.models import AnomalyAlert, Restriction
from policies.services.anomaly import anomaly_watch, trailing_hours
from policies.services.anomaly_actions import (
    anomaly_alert_confirm,
    anomaly_alert_extend,
    anomaly_alert_lift,
)
from tenants.models import Tenant
from tests.conftest import NOW, World
from tests.policies.anomaly_helpers import add_hour, steady_traffic
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture
def sms(db: None) -> Channel:
    return Channel.objects.get(code="sms")


def spiking(tenant: Tenant, sms: Channel, *, normal: int = 200, last: int = 2000) -> None:
    steady_traffic(tenant, sms, until=NOW, per_hour=normal, last=last)


def test_a_spike_opens_an_alert_with_its_evidence(world: World, sms: Channel):
    spiking(world.alpha, sms)
    run = anomaly_watch()
    alert = AnomalyAlert.objects.get()
    assert run.opened == [alert.pk]
    assert (alert.tenant, alert.channel, alert.status) == (world.alpha, sms, "open")
    assert (alert.rate, alert.baseline, alert.ratio) == (2000, 200.0, 10.0)
    assert alert.reasons == ["ratio"]
    assert sms.capacity_per_day
    assert alert.capacity_share == pytest.approx(2000 / (sms.capacity_per_day / 24))
    series = alert.evidence["series"]
    assert len(series) == 48
    assert series[-1] == {
        "at": (NOW - timedelta(hours=1)).isoformat(),
        "units": 2000,
        "normal": 200.0,
    }
    assert {point["units"] for point in series[:-1]} == {200}
    assert alert.evidence["history"] == [200, 200, 200, 200]
    assert AuditEntry.objects.filter(action="anomaly.open", object_id=str(alert.pk)).count() == 1


def test_a_rerun_updates_the_evidence_not_a_second_alert(world: World, sms: Channel, frozen_clock):
    spiking(world.alpha, sms)
    first = anomaly_watch()
    add_hour(world.alpha, sms, NOW, 3000)
    frozen_clock.shift(timedelta(hours=1))
    second = anomaly_watch()
    alert = AnomalyAlert.objects.get()
    assert (first.opened, second.opened, second.updated) == ([alert.pk], [], [alert.pk])
    assert (alert.rate, alert.peak_rate, alert.opened_at) == (3000, 3000, NOW)
    assert alert.evidence["series"][-1]["units"] == 3000


def test_usual_traffic_and_small_tenants_open_nothing(world: World, sms: Channel):
    steady_traffic(world.alpha, sms, until=NOW, per_hour=500, last=600)  # 1.2× normal
    steady_traffic(world.beta, sms, until=NOW, per_hour=2, last=90)  # 45×, under the minimum
    assert anomaly_watch().opened == []
    assert not AnomalyAlert.objects.exists()


def test_one_statement_reads_every_tenants_trailing_hour(
    world: World, sms: Channel, django_assert_num_queries
):
    spiking(world.alpha, sms)
    spiking(world.beta, sms, normal=300, last=400)
    with django_assert_num_queries(1):
        found = trailing_hours(end=NOW, weeks=4, min_rate=100)
    assert [(c.tenant_id, c.rate, c.history) for c in found] == [
        (world.alpha.pk, 2000, [200] * 4),
        (world.beta.pk, 400, [300] * 4),
    ]


def test_a_large_share_of_the_channels_capacity_opens_an_alert(world: World, sms: Channel):
    Channel.objects.filter(pk=sms.pk).update(capacity_per_day=24 * 4000)  # 4,000 an hour
    steady_traffic(world.alpha, sms, until=NOW, per_hour=1200)  # usual for it, 30 % of capacity
    anomaly_watch()
    alert = AnomalyAlert.objects.get()
    assert alert.reasons == ["capacity"]
    assert alert.capacity_share == pytest.approx(0.3)


def test_a_restricting_rule_allows_a_throttle_at_once_and_the_tenant_is_told_why(
    world: World, sms: Channel
):
    Tenant.objects.filter(pk=world.alpha.pk).update(language="de")
    world.alpha.refresh_from_db()
    set_rule(world.alpha, included_units=10_000, action="restrict", restrict_units=50,
             restrict_window="hour")  # fmt: skip
    spiking(world.alpha, sms)
    run = anomaly_watch()
    alert = AnomalyAlert.objects.select_related("restriction").get()
    assert run.throttled == [alert.pk]
    throttle = alert.restriction
    assert throttle is not None
    assert (throttle.kind, throttle.limit_units, throttle.window) == ("throttle", 600, "hour")
    assert (throttle.starts_at, throttle.ends_at) == (NOW, NOW + timedelta(hours=2))
    world.alpha.refresh_from_db()
    assert world.alpha.status == "restricted"
    told = Notification.objects.get(tenant=world.alpha, kind="restriction_applied")
    assert told.payload["reason"] == throttle.customer_reason
    assert "2.000" in throttle.customer_reason and "10-mal" in throttle.customer_reason
    assert "600" in throttle.customer_reason
    # A re-run neither throttles again nor tells the tenant twice.
    assert anomaly_watch().throttled == []
    assert Restriction.objects.count() == 1


def test_without_the_rules_consent_staff_decide_and_the_tenant_hears_nothing(
    world: World, sms: Channel
):
    set_rule(world.alpha, included_units=10_000, action="charge_overage")
    spiking(world.alpha, sms)
    assert anomaly_watch().throttled == []
    assert AnomalyAlert.objects.get().restriction is None
    assert not Restriction.objects.exists()
    assert not Notification.objects.filter(kind="restriction_applied").exists()


def test_a_confirmed_alert_quiet_for_hours_with_its_throttle_over_is_closed(
    world: World, sms: Channel, frozen_clock, staff: User
):
    set_rule(world.alpha, included_units=10_000, action="suspend")
    spiking(world.alpha, sms)
    anomaly_watch()
    alert = anomaly_alert_confirm(alert=AnomalyAlert.objects.get(), reason="seen", actor=staff)
    frozen_clock.shift(timedelta(hours=2, minutes=30))  # throttle over, quiet 2.5 hours
    assert anomaly_watch().closed == []
    frozen_clock.shift(timedelta(hours=1))
    assert anomaly_watch().closed == [alert.pk]
    alert.refresh_from_db()
    assert (alert.status, alert.closed_at) == ("closed", NOW + timedelta(hours=3, minutes=30))
    assert AuditEntry.objects.filter(action="anomaly.close", object_id=str(alert.pk)).exists()


def test_an_open_alert_waits_for_staff_however_quiet(world: World, sms: Channel, frozen_clock):
    spiking(world.alpha, sms)
    anomaly_watch()
    frozen_clock.shift(timedelta(days=2))
    assert anomaly_watch().closed == []
    assert AnomalyAlert.objects.get().status == "open"


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user(username="support", is_staff=True)


def test_confirming_applies_a_throttle_when_there_is_none(world: World, sms: Channel, staff: User):
    spiking(world.alpha, sms)
    anomaly_watch()
    alert = anomaly_alert_confirm(
        alert=AnomalyAlert.objects.get(), reason="campaign gone wrong", actor=staff,
        throttle_units=500, duration=timedelta(hours=4),
    )  # fmt: skip
    assert (alert.status, alert.acted_by, alert.note) == ("confirmed", staff, "campaign gone wrong")
    assert alert.restriction is not None
    assert (alert.restriction.limit_units, alert.restriction.ends_at) == (
        500,
        NOW + timedelta(hours=4),
    )
    assert Notification.objects.filter(tenant=world.alpha, kind="restriction_applied").count() == 1
    assert AuditEntry.objects.filter(action="anomaly.confirm", actor=staff).count() == 1


def test_extending_moves_the_throttles_end_and_tells_the_tenant(
    world: World, sms: Channel, staff: User
):
    set_rule(world.alpha, included_units=10_000, action="restrict", restrict_units=50,
             restrict_window="hour")  # fmt: skip
    spiking(world.alpha, sms)
    anomaly_watch()
    alert = anomaly_alert_extend(
        alert=AnomalyAlert.objects.get(), duration=timedelta(hours=6), reason="still at it",
        actor=staff,
    )  # fmt: skip
    assert alert.status == "extended"
    assert Restriction.objects.get().ends_at == NOW + timedelta(hours=8)
    told = Notification.objects.filter(tenant=world.alpha, kind="restriction_applied")
    assert [n.payload["ends_at"] for n in told.order_by("pk")] == [
        (NOW + timedelta(hours=2)).isoformat(),
        (NOW + timedelta(hours=8)).isoformat(),
    ]
    assert AuditEntry.objects.filter(action="restriction.extend").count() == 1


def test_extending_an_alert_without_a_throttle_is_refused(world: World, sms: Channel, staff: User):
    spiking(world.alpha, sms)
    anomaly_watch()
    with pytest.raises(Conflict):
        anomaly_alert_extend(
            alert=AnomalyAlert.objects.get(), duration=timedelta(hours=1), reason="x", actor=staff
        )
    assert AnomalyAlert.objects.get().status == "open"


def test_lifting_lifts_the_throttle_tells_the_tenant_and_ends_the_alert(
    world: World, sms: Channel, staff: User
):
    set_rule(world.alpha, included_units=10_000, action="restrict", restrict_units=50,
             restrict_window="hour")  # fmt: skip
    spiking(world.alpha, sms)
    anomaly_watch()
    alert = anomaly_alert_lift(alert=AnomalyAlert.objects.get(), reason="expected", actor=staff)
    assert (alert.status, alert.closed_at) == ("lifted", NOW)
    assert Restriction.objects.get().lifted_by == staff
    assert Notification.objects.filter(tenant=world.alpha, kind="restriction_lifted").count() == 1
    world.alpha.refresh_from_db()
    assert world.alpha.status == "active"
    with pytest.raises(Conflict):
        anomaly_alert_lift(alert=alert, reason="again", actor=staff)


def test_after_a_lifted_alert_a_new_spike_opens_a_new_one(world: World, sms: Channel, staff: User):
    spiking(world.alpha, sms)
    anomaly_watch()
    anomaly_alert_lift(alert=AnomalyAlert.objects.get(), reason="expected", actor=staff)
    anomaly_watch()
    assert list(AnomalyAlert.objects.order_by("pk").values_list("status", flat=True)) == [
        "lifted",
        "open",
    ]


def test_a_new_spike_after_a_quiet_spell_is_throttled_again_on_the_open_alert(
    world: World, sms: Channel, frozen_clock
):
    set_rule(world.alpha, included_units=10_000, action="restrict", restrict_units=50,
             restrict_window="hour")  # fmt: skip
    spiking(world.alpha, sms)
    first = anomaly_watch()
    frozen_clock.shift(timedelta(days=1))  # the throttle ended long ago; nobody acted
    steady_traffic(world.alpha, sms, until=NOW + timedelta(days=1), per_hour=0, weeks=0,
                   hours=1, last=2500)  # fmt: skip
    second = anomaly_watch()
    alert = AnomalyAlert.objects.get()
    assert (first.throttled, second.throttled) == ([alert.pk], [alert.pk])
    assert Restriction.objects.count() == 2
    # Within the quiet spell, a re-run neither throttles again nor tells the tenant.
    frozen_clock.shift(timedelta(minutes=5))
    assert anomaly_watch().throttled == []
    assert Notification.objects.filter(tenant=world.alpha, kind="restriction_applied").count() == 2
