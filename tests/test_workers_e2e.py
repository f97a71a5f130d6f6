"""End to end through a real Celery worker process on real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_string, policy

import pytest
from django.core.cache import cache

from creditguard.celery import app
from metering.services.evaluation_request import EVALUATION_SCHEDULED_KEY
from notifications.models import Delivery, Notification
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from notifications.tasks import retry_deliveries_task
from policies.tasks import evaluate_sweep_task
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api, event
from tests.factories import TenantFactory
from tests.notifications.receiver import Receiver, signature_is_valid
from tests.policies.helpers import set_rule
from tests.workers import Worker, wait_for, worker_environment

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def worker_env(tmp_path, settings, broker) -> dict[str, str]:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.EVALUATION_COALESCE_SECONDS = 0.2
    # A Redis of the test's own, so no other test run on the machine shares its queue.
    env = worker_environment(redis_url=broker.url, mail_dir=tmp_path / "mail")
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
    # The file backend writes each message as MIME (an encoded subject), then a rule.
    subjects = [
        message_from_string(text, policy=policy.default)["Subject"]
        for path in (tmp_path / "mail").iterdir()
        for text in path.read_text().split("-" * 79)
        if text.strip()
    ]
    warned = "SMS: 85\u00a0% Ihres Inklusivkontingents verbraucht"
    assert sum(str(subject).strip().endswith(warned) for subject in subjects) == 1
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
