"""End to end through a real Celery worker process on real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection

from creditguard.celery import app
from notifications.models import Delivery, Notification
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from notifications.tasks import retry_deliveries_task
from policies.tasks import EVALUATION_SCHEDULED_KEY, evaluate_sweep_task
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api, event
from tests.factories import TenantFactory
from tests.notifications.receiver import Receiver, signature_is_valid
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Worker:
    """A `celery worker` subprocess on the test database and the test Redis."""

    def __init__(self, env: dict[str, str]) -> None:
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "creditguard",
                "worker",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(
            lambda: any(" ready." in line for line in self.log) or self.process.poll() is not None,
            what="the worker to start",
        )
        assert self.process.poll() is None, "".join(self.log)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker_env(tmp_path, settings) -> dict[str, str]:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.EVALUATION_COALESCE_SECONDS = 0.2
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="creditguard.settings",
        CREDITGUARD_ENV="test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=django_settings.REDIS_URL,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path / "mail"),
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        EVALUATION_COALESCE_SECONDS="0.2",
        DELIVERY_LEASE_SECONDS="2",
    )
    app.control.purge()
    # An earlier test may have opened a coalescing window moments ago.
    cache.delete(EVALUATION_SCHEDULED_KEY)
    return env


@pytest.fixture
def workers(worker_env) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()
        print("".join(worker.log))  # shown by pytest when the test failed


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_usage_past_80_percent_warns_once_by_email_webhook_and_in_app(
    worker_env, workers, receiver, tmp_path
):
    tenant = TenantFactory.create(slug="e2e", language="de", contact_email="ops@e2e.example")
    set_rule(tenant, "sms", included_units=100, warning_thresholds=[80, 100])
    endpoint = webhook_endpoint_create(tenant=tenant, url=receiver.url)
    api = Api(api_key_create(tenant=tenant, name="e2e", scopes=ALL_SCOPES).raw_key)
    workers.append(Worker(worker_env))

    assert api.ingest([event("e1", channel="sms", quantity=85)]).status_code == 200

    def all_delivered() -> bool:
        warned = Notification.objects.filter(tenant=tenant, kind="threshold_warning").exists()
        return warned and not Delivery.objects.exclude(status="delivered").exists()

    wait_for(all_delivered, what="every delivery")
    # Exactly one threshold warning (a forecast warning may come with it, depending on
    # the day of the month the test runs).
    warning = Notification.objects.get(tenant=tenant, kind="threshold_warning")
    assert warning.payload["threshold"] == 80
    assert set(Notification.objects.filter(tenant=tenant).values_list("kind", flat=True)) <= {
        "limit_changed",
        "threshold_warning",
        "forecast_warning",
    }
    # The webhook, checked against the specification by an independent implementation.
    [received] = [
        r for r in receiver.received if r.headers["webhook-id"] == f"msg_{warning.public_id.hex}"
    ]
    assert signature_is_valid(endpoint.secret, received)
    # The e-mail, in the tenant's language.
    mails = [path.read_text() for path in (tmp_path / "mail").iterdir()]
    assert sum("SMS: 80 % Ihres Inklusivkontingents verbraucht" in text for text in mails) == 1
    # In-app.
    listed = api.get("/api/v1/notifications").json()["results"]
    assert str(warning.public_id) in [n["id"] for n in listed]
    sent = len(receiver.received)

    # Redelivery: the same evaluation, run again twice by the worker, notifies nobody again.
    evaluate_sweep_task.delay()
    evaluate_sweep_task.delay()
    wait_for(
        lambda: (
            sum(
                "policies.evaluate_sweep" in line and "succeeded" in line for line in workers[0].log
            )
            == 2
        ),
        what="two sweeps",
    )
    assert Notification.objects.filter(tenant=tenant, kind="threshold_warning").count() == 1
    assert len(receiver.received) == sent


def test_a_worker_killed_during_a_webhook_delivery_delivers_it_once_more_with_one_id(
    worker_env, workers, receiver
):
    tenant = TenantFactory.create(slug="kill", contact_email="")
    webhook_endpoint_create(tenant=tenant, url=receiver.url)
    receiver.delay = 30
    workers.append(Worker(worker_env))

    notify(tenant=tenant, kind="limit_reached", dedupe_key="kill-1", payload={"channel": "sms"})
    wait_for(lambda: len(receiver.received) == 1, what="the first attempt to arrive")
    workers[0].kill()
    assert Delivery.objects.get().status == "sending"

    receiver.delay = 0
    workers.append(Worker(worker_env))
    time.sleep(2.5)  # the dead worker's lease (2 s) lapses
    retry_deliveries_task.delay()
    wait_for(lambda: Delivery.objects.get().status == "delivered", what="the redelivery")
    assert len(receiver.received) == 2
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
