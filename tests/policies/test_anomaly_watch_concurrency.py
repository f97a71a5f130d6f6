"""Two runs of the anomaly watch at once (beat's next run while a slow one is still at
work, or two workers): one alert, one throttle, one notice — shown with real threads
against PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from metering.models import Channel
from notifications.models import Notification
from policies.models import AnomalyAlert, Restriction
from policies.services.anomaly import WatchRun, anomaly_watch
from tests.conftest import NOW
from tests.factories import TenantFactory
from tests.policies.anomaly_helpers import steady_traffic
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_parallel_runs_open_one_alert_and_throttle_once(frozen_clock):
    tenant = TenantFactory.create()
    sms = Channel.objects.get(code="sms")
    set_rule(tenant, included_units=10_000, action="restrict", restrict_units=50,
             restrict_window="hour")  # fmt: skip
    steady_traffic(tenant, sms, until=NOW, per_hour=200, last=2000)
    count = 4
    barrier = threading.Barrier(count)
    runs: list[WatchRun] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            barrier.wait()
            runs.append(anomaly_watch(now=NOW))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=watch) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    alert = AnomalyAlert.objects.get()
    assert sorted(len(run.opened) for run in runs) == [0, 0, 0, 1]
    assert sum(len(run.updated) for run in runs) == count - 1
    assert [run.throttled for run in runs if run.throttled] == [[alert.pk]]
    assert Restriction.objects.count() == 1
    assert Notification.objects.filter(tenant=tenant, kind="restriction_applied").count() == 1
