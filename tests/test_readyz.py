"""GET /readyz: a dead worker, a stale beat or a pending migration is visible."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from creditguard import views
from creditguard.models import WorkerHeartbeat
from creditguard.services import worker_heartbeat_record
from creditguard.tasks import worker_heartbeat_task
from tests.conftest import World, event
from tests.workers import Worker, wait_for, worker_environment


def test_ready_with_a_fresh_heartbeat_and_every_migration_applied(db, client):
    worker_heartbeat_record(hostname="celery@a")
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert body["checks"]["worker"]["status"] == "ok"
    assert body["checks"]["worker"]["heartbeat_age_seconds"] < 5
    assert body["checks"]["evaluation"] == {"pending_balances": 0, "oldest_pending_seconds": None}


def test_unavailable_when_no_worker_ever_recorded_a_heartbeat(db, client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["worker"]["status"] == "no heartbeat"


def test_unavailable_when_the_newest_heartbeat_is_older_than_the_limit(db, client, settings):
    settings.READYZ_HEARTBEAT_MAX_AGE_SECONDS = 120
    worker_heartbeat_record(hostname="celery@a", now=timezone.now() - timedelta(seconds=300))
    worker_heartbeat_record(hostname="celery@b", now=timezone.now() - timedelta(seconds=121))
    response = client.get("/readyz")
    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker["status"] == "stale"
    assert 121 <= worker["heartbeat_age_seconds"] < 130


def test_unavailable_while_a_migration_is_pending(db, client, monkeypatch):
    # A process that has seen every migration applied takes it as settled: this one
    # has not (as after a deploy whose migrations did not run).
    monkeypatch.setattr(views, "_migrations_applied", False)
    worker_heartbeat_record(hostname="celery@a")
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'creditguard' AND name = %s",
            ["0002_audit_trail_from_policies"],
        )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "1 pending"


def test_reports_how_many_balances_wait_for_evaluation_and_since_when(world: World, client):
    with time_machine.travel(timezone.now() - timedelta(minutes=10), tick=False):
        world.alice_api.ingest([event("a1", channel="sms"), event("a2", channel="call")])
    world.beta_api.ingest([event("b1", channel="sms")])
    worker_heartbeat_record(hostname="celery@a")
    body = client.get("/readyz").json()
    assert body["status"] == "ready"  # the lag is reported, not judged
    assert body["checks"]["evaluation"]["pending_balances"] == 3
    assert 600 <= body["checks"]["evaluation"]["oldest_pending_seconds"] < 620


def test_a_heartbeat_per_worker_keeps_one_row_and_forgets_workers_gone_for_a_day(db):
    long_ago = timezone.now() - timedelta(days=2)
    worker_heartbeat_record(hostname="celery@gone", now=long_ago)
    worker_heartbeat_record(hostname="celery@a", now=long_ago + timedelta(days=1, hours=1))
    worker_heartbeat_record(hostname="celery@a")
    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["celery@a"]
    assert timezone.now() - WorkerHeartbeat.objects.get().seen_at < timedelta(seconds=5)


def test_beat_schedules_the_heartbeat_often_enough_for_the_limit():
    entry = django_settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]
    assert entry["task"] == worker_heartbeat_task.name
    assert isinstance(entry["schedule"], float)
    assert entry["schedule"] * 3 <= django_settings.READYZ_HEARTBEAT_MAX_AGE_SECONDS


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_turns_readyz_green_and_its_death_turns_it_red(client, tmp_path, broker):
    # A broker of the test's own: nothing of other test runs on the machine to consume.
    assert client.get("/readyz").status_code == 503
    worker = Worker(worker_environment(redis_url=broker.url, mail_dir=tmp_path))
    try:
        # A worker records a heartbeat when it starts, and whenever beat asks.
        assert client.get("/readyz").status_code == 200
        started = WorkerHeartbeat.objects.get(hostname=worker.hostname).seen_at
        worker_heartbeat_task.delay()
        wait_for(
            lambda: WorkerHeartbeat.objects.get(hostname=worker.hostname).seen_at > started,
            what="the heartbeat task",
        )
        worker.kill()
        later = timezone.now() + timedelta(
            seconds=django_settings.READYZ_HEARTBEAT_MAX_AGE_SECONDS + 1
        )
        with time_machine.travel(later):
            response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["worker"]["status"] == "stale"
    finally:
        worker.stop()
        print("".join(worker.log))
