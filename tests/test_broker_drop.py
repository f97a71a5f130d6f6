"""A worker survives its broker dropping while it holds an unacknowledged message.

With celery / kombu 5.7.0 and redis-py 7.4 or 8.1 the worker died for good right after
"Restoring 1 unacknowledged message(s)" with AttributeError("'NoneType' object has no
attribute 'hostname'"); pyproject.toml pins the versions that pass this test.
"""

from __future__ import annotations

import time

import pytest

from notifications.models import Notification
from policies.tasks import evaluate_pending_task
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api, event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule
from tests.workers import Worker, wait_for, worker_environment

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The countdown of the evaluation task: the window in which it sits unacknowledged in the
# worker. Sent by the test itself rather than through ingestion's coalescing (whose Redis
# circuit breaker an earlier test in this process may have opened), and long enough for
# a loaded machine.
COUNTDOWN_SECONDS = 5.0
BROKER_DOWN_SECONDS = 8.0


def test_a_worker_survives_the_broker_dropping_while_it_holds_an_unacknowledged_task(
    broker, tmp_path
):
    tenant = TenantFactory.create(slug="drop", contact_email="")
    set_rule(tenant, "sms", included_units=100, warning_thresholds=[50, 80])
    api = Api(api_key_create(tenant=tenant, name="drop", scopes=ALL_SCOPES).raw_key)
    worker = Worker(
        worker_environment(
            redis_url=broker.url,
            mail_dir=tmp_path / "mail",
        ),
        pool="prefork",
    )
    try:
        # The evaluation task arrives with its countdown and waits, unacknowledged.
        assert api.ingest([event("e1", quantity=55)]).status_code == 200
        waiting = evaluate_pending_task.apply_async(countdown=COUNTDOWN_SECONDS)
        wait_for(
            lambda: worker.logged(f"evaluate_pending[{waiting.id}] received"),
            timeout=COUNTDOWN_SECONDS,
            what="the evaluation task to reach the worker",
        )
        broker.stop()
        time.sleep(BROKER_DOWN_SECONDS)
        broker.start()

        wait_for(
            lambda: sum("Connected to redis://" in line for line in worker.log) >= 2,
            timeout=20,
            what="the worker to reconnect",
        )
        assert worker.process.poll() is None, "".join(worker.log)
        assert not worker.logged("Unrecoverable error")

        # And it still works: usage after the outage is evaluated, the earlier usage with it.
        assert api.ingest([event("e2", quantity=30)]).status_code == 200
        evaluate_pending_task.delay()
        wait_for(
            lambda: (
                Notification.objects.filter(tenant=tenant, kind="threshold_warning").count() == 2
            ),
            timeout=15,
            what="the warnings at 50 % and 80 %",
        )
        thresholds = Notification.objects.filter(
            tenant=tenant, kind="threshold_warning"
        ).values_list("payload__threshold", flat=True)
        assert sorted(thresholds) == [50, 80]
        assert worker.process.poll() is None
    finally:
        worker.stop()
        print("".join(worker.log))  # shown by pytest when the test failed
