"""SIGTERM (what `docker stop` sends) loses and doubles nothing.

gunicorn, started with the compose file's web command and the project's gunicorn.conf.py,
stops accepting and lets the requests it has finish (--graceful-timeout); a request it
never took is refused or reset before the app saw it, and the client sends the batch
again with the same event ids. A Celery worker's SIGTERM is its warm shutdown: the task
it runs finishes, a task it holds unacknowledged (acks_late) goes back to Redis and the
next worker runs it."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db.models import Sum

from metering.models import Balance, LedgerEntry, UsageEvent
from notifications.models import Delivery, Notification
from notifications.services.webhooks import webhook_endpoint_create
from policies.tasks import evaluate_pending_task, evaluate_sweep_task
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api, event
from tests.factories import TenantFactory
from tests.notifications.receiver import Receiver
from tests.ops import compose, stack
from tests.ops.test_compose import in_test
from tests.policies.helpers import set_rule
from tests.workers import Worker, free_port, wait_for, worker_environment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BATCHES = 24
EVENTS_PER_BATCH = 400
SENDERS = 6


@dataclass
class Sent:
    """One POST of a batch: when it left and came back, and its status or its error."""

    batch: int
    started: float
    ended: float = 0.0
    status: int | None = None
    error: str | None = None


@dataclass
class Burst:
    url: str
    key: str
    sent: list[Sent] = field(default_factory=list)

    def body(self, batch: int) -> bytes:
        occurred = datetime.now(UTC).isoformat()
        events = [
            {"id": f"g{batch}-{i}", "channel": "sms", "quantity": 1, "occurred_at": occurred}
            for i in range(EVENTS_PER_BATCH)
        ]
        return json.dumps({"events": events}).encode()

    def post(self, batch: int, body: bytes) -> Sent:
        sent = Sent(batch, time.monotonic())
        try:
            response = requests.post(
                f"{self.url}/api/v1/usage-events",
                data=body,
                headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
                timeout=60,
            )
            sent.status = response.status_code
        except requests.ConnectionError as exc:
            text = str(exc).lower()
            sent.error = "refused" if "refused" in text else "reset" if "reset" in text else text
        sent.ended = time.monotonic()
        self.sent.append(sent)
        return sent


def gunicorn(port: int, env: dict[str, str]) -> stack.Process:
    command = compose.load()["services"]["web"]["command"]
    argv = [in_test(word, var=stack.ROOT / "var", port=port) for word in command]
    # The image's PATH: its gunicorn first.
    path = f"{Path(sys.executable).parent}:{env['PATH']}"
    process = stack.Process("gunicorn", argv, {**env, "PATH": path})
    wait_for(lambda: healthz(port) or not process.alive(), timeout=60, what="gunicorn to answer")
    assert process.alive(), process.output()
    return process


def healthz(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_gunicorn_finishes_its_requests_on_sigterm_and_a_retry_doubles_nothing(
    broker, tmp_path, settings
):
    tenant = TenantFactory.create(slug="graceful", contact_email="")
    key = api_key_create(tenant=tenant, name="graceful", scopes=ALL_SCOPES).raw_key
    env = worker_environment(redis_url=broker.url, mail_dir=tmp_path / "mail")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    env["HOME"] = str(tmp_path)  # gunicorn's control socket: ~/.gunicorn
    port = free_port()
    web = gunicorn(port, env)
    burst = Burst(f"http://127.0.0.1:{port}", key)
    bodies = {batch: burst.body(batch) for batch in range(BATCHES)}
    todo = list(range(BATCHES))
    lock = threading.Lock()

    def sender() -> None:
        while True:
            with lock:
                if not todo:
                    return
                batch = todo.pop(0)
            burst.post(batch, bodies[batch])

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    try:
        for thread in threads:
            thread.start()
        wait_for(
            lambda: sum(s.status == 200 for s in list(burst.sent)) >= 3,
            timeout=60,
            what="the first answers",
        )
        terminated = time.monotonic()
        web.terminate()
        for thread in threads:
            thread.join(timeout=90)
        assert web.process.wait(timeout=40) == 0, web.output()
    finally:
        web.stop()
    print(web.output()[-3000:])

    answered = [s for s in burst.sent if s.status is not None]
    failed = [s for s in burst.sent if s.status is None]
    # Every answer is a success: no 5xx from a worker stopped mid-request.
    assert {s.status for s in answered} == {200}, [(s.batch, s.status) for s in answered]
    # Requests under way at the SIGTERM were finished and answered, not cut off.
    finished_after = [s for s in answered if s.started < terminated < s.ended]
    assert finished_after, "no request was in flight at the SIGTERM"
    # What was answered is recorded, whole.
    for s in answered:
        recorded = UsageEvent.objects.filter(
            tenant=tenant, client_event_id__startswith=f"g{s.batch}-"
        ).count()
        assert recorded == EVENTS_PER_BATCH, s
    # The rest never reached the app (refused, or reset in the listen queue): nothing of them
    # is recorded.
    for s in failed:
        assert not UsageEvent.objects.filter(
            tenant=tenant, client_event_id__startswith=f"g{s.batch}-"
        ).exists(), s
    print(
        f"{len(answered)} answered ({len(finished_after)} finished after the SIGTERM), "
        f"{len(failed)} refused: {sorted({s.error for s in failed if s.error})}"
    )

    # The next gunicorn (a restart, a new deploy): every batch sent again with the same ids.
    web = gunicorn(port, env)
    try:
        for batch in range(BATCHES):
            again = burst.post(batch, bodies[batch])
            assert again.status == 200, again
    finally:
        assert web.stop() == 0, web.output()
    events = UsageEvent.objects.filter(tenant=tenant)
    assert events.count() == BATCHES * EVENTS_PER_BATCH
    assert events.values("client_event_id").distinct().count() == BATCHES * EVENTS_PER_BATCH
    balance = Balance.objects.get(tenant=tenant, channel__code="sms")
    booked = LedgerEntry.objects.filter(balance=balance, kind=LedgerEntry.Kind.USAGE)
    assert balance.used == BATCHES * EVENTS_PER_BATCH
    assert booked.aggregate(total=Sum("used_delta"))["total"] == BATCHES * EVENTS_PER_BATCH


# --- Celery ---------------------------------------------------------------------------

# The task the first worker holds unacknowledged when it is told to stop: due later than
# that worker takes to finish its webhook and end.
HELD_COUNTDOWN_SECONDS = 15.0
WEBHOOK_SECONDS = 4.0


@pytest.fixture
def receiver() -> Any:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def warnings_of(tenant: Any) -> int:
    return Notification.objects.filter(tenant=tenant, kind="threshold_warning").count()


def test_a_worker_stopped_mid_task_finishes_it_and_its_held_task_runs_once_elsewhere(
    broker, tmp_path, settings, receiver
):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.EVALUATION_COALESCE_SECONDS = 0.2
    env = worker_environment(
        redis_url=broker.url,
        mail_dir=tmp_path / "mail",
        # A lease (and so a send deadline) longer than the slow webhook below.
        DELIVERY_LEASE_SECONDS="60",
    )
    alpha = TenantFactory.create(slug="term-alpha", contact_email="")
    beta = TenantFactory.create(slug="term-beta", contact_email="")
    for tenant in (alpha, beta):
        set_rule(tenant, "sms", included_units=100, warning_thresholds=[50])
    webhook_endpoint_create(tenant=alpha, url=receiver.url)
    receiver.delay = WEBHOOK_SECONDS
    first = Worker(env, pool="prefork")
    second: Worker | None = None
    try:
        held = evaluate_pending_task.apply_async(countdown=HELD_COUNTDOWN_SECONDS)
        wait_for(lambda: first.logged(f"[{held.id}] received"), what="the held task to arrive")
        # Alpha passes 50 %: evaluated, warned, and its webhook sent (slowly).
        assert (
            Api(api_key_create(tenant=alpha, name="a", scopes=ALL_SCOPES).raw_key)
            .ingest([event("a1", quantity=60)])
            .status_code
            == 200
        )
        evaluate_pending_task.delay()
        wait_for(lambda: len(receiver.received) == 1, what="the webhook to be under way")
        assert Delivery.objects.get().status == "sending"

        first.process.terminate()  # SIGTERM mid-task
        # Beta passes 50 % after the first worker stopped taking tasks.
        assert (
            Api(api_key_create(tenant=beta, name="b", scopes=ALL_SCOPES).raw_key)
            .ingest([event("b1", quantity=60)])
            .status_code
            == 200
        )
        assert first.process.wait(timeout=WEBHOOK_SECONDS + 20) == 0, "".join(first.log)
        # The webhook under way was finished, once.
        assert Delivery.objects.get().status == "delivered"
        assert len(receiver.received) == 1
        assert warnings_of(alpha) == 1
        # What it held unacknowledged went back to Redis as it ended.
        assert first.logged("unacknowledged message(s)"), "".join(first.log)

        second = Worker(env, pool="prefork")
        # The held task came back to Redis and runs on the second worker.
        wait_for(
            lambda: second is not None and second.logged(f"[{held.id}] succeeded"),
            timeout=HELD_COUNTDOWN_SECONDS + 30,
            what="the held task on the second worker",
        )
        wait_for(lambda: warnings_of(beta) == 1, what="beta's warning")
        # Sweeps run again over everything: nobody is warned or sent anything twice.
        evaluate_sweep_task.delay()
        evaluate_sweep_task.delay()
        wait_for(
            lambda: (
                sum("evaluate_sweep" in line and "succeeded" in line for line in second.log) == 2
            ),
            what="two sweeps",
        )
        assert (warnings_of(alpha), warnings_of(beta)) == (1, 1)
        assert len(receiver.received) == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()
        print("".join(first.log)[-4000:])
        if second is not None:
            print("".join(second.log)[-4000:])
