"""GET /metrics: the counters move by what happened, the live gauges read the system,
the endpoint is protected, and Redis down still scrapes."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from creditguard.api.throttling import clear_local_windows
from creditguard.celery import app
from creditguard.metrics import registered_names
from creditguard.redis_guard import redis_breaker_reset
from notifications.models import Delivery
from notifications.services.deliver import delivery_attempt
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from tests.conftest import World, event
from tests.notifications.receiver import Receiver
from tests.policies.helpers import authorize, set_rule
from tests.workers import Worker, app_environment, gunicorn, wait_for, worker_environment

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-0123456789abcdef"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> Iterator[None]:
    redis_breaker_reset()
    yield
    redis_breaker_reset()
    clear_local_windows()


def scrape(client, **headers: str) -> Samples:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- counters ----------------------------------------------------------------------------


def test_ingesting_counts_accepted_and_duplicate_events_and_the_request(world: World, client):
    before = scrape(client)
    first = event("m1")
    batch = [first, event("m2", quantity=5), event("m3", channel="call")]
    assert world.alice_api.ingest(batch).status_code == 200
    assert world.alice_api.ingest([first, event("m4")]).status_code == 200
    # A conflicting batch records nothing, and counts nothing.
    assert world.alice_api.ingest([{**first, "quantity": 9}, event("m5")]).status_code == 409
    after = scrape(client)
    ingested = "creditguard_usage_events_ingested_total"
    assert moved(before, after, ingested, result="accepted") == 4
    assert moved(before, after, ingested, result="duplicate") == 1
    requests = "creditguard_http_requests_total"
    labels = {"route": "v1:usage-events", "method": "POST"}
    assert moved(before, after, requests, **labels, status="200") == 2
    assert moved(before, after, requests, **labels, status="409") == 1
    assert moved(before, after, "creditguard_http_request_duration_seconds_count", **labels) == 3
    # The live gauges see the two balances waiting for their evaluation.
    assert value(after, "creditguard_evaluation_pending_balances") == 2
    assert value(after, "creditguard_evaluation_lag_seconds") >= 0


def test_requests_are_counted_by_route_name_never_by_path(world: World, client):
    before = scrape(client)
    for _ in range(3):
        world.alice_api.get(f"/api/v1/authorizations/{timezone.now().timestamp():.0f}")
        world.alice_api.get(f"/api/v1/authorizations/{uuid.uuid4()}")
    client.get("/no/such/page")
    client.generic("BREW", "/healthz")
    after = scrape(client)
    requests = "creditguard_http_requests_total"
    assert moved(before, after, requests, route="v1:authorization", method="GET", status="404") == 3
    assert moved(before, after, requests, route="<unmatched>", method="GET", status="404") == 4
    assert moved(before, after, requests, route="healthz", method="other", status="200") == 1
    assert not any("authorizations/" in str(labels) for _, labels in after)


def test_authorizations_are_counted_by_decision_and_reason_and_replays_are_not(
    world: World, client
):
    set_rule(world.alpha, "sms", included_units=100, hard_limit=50)
    before = scrape(client)
    assert authorize(world.alice_api, "sms", 90).json()["decision"] == "allow"
    assert authorize(world.alice_api, "sms", 40).json()["decision"] == "allow_overage"
    for key in ("a", "a", "b"):  # the second "a" is a replay: not a new decision
        body = authorize(world.alice_api, "sms", 100, idempotency_key=key).json()
        assert body["reason"] == "hard_limit_reached"
    after = scrape(client)
    name = "creditguard_authorizations_total"
    assert moved(before, after, name, decision="allow", reason="none") == 1
    assert moved(before, after, name, decision="allow_overage", reason="overage") == 1
    assert moved(before, after, name, decision="deny", reason="hard_limit_reached") == 2


def test_rate_limit_refusals_are_counted(world: World, client, settings):
    settings.API_RATE_LIMIT_PER_SECOND = 1
    before = scrape(client)
    statuses = [world.alice_api.get("/api/v1/balances").status_code for _ in range(3)]
    assert statuses.count(429) >= 1
    after = scrape(client)
    refused = moved(before, after, "creditguard_rate_limit_refusals_total", limit="rate_limit")
    assert refused == statuses.count(429)


def test_notifications_and_delivery_attempts_by_status_and_deliveries_waiting(
    world: World, client, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver().start()
    try:
        receiver.status = 500
        webhook_endpoint_create(tenant=world.alpha, url=receiver.url)
        # Enqueueing after commit needs a broker; the attempts are made here instead.
        monkeypatch.setattr("notifications.services.notify.enqueue_deliveries", lambda ids: None)
        before = scrape(client)
        with django_capture_on_commit_callbacks(execute=True):
            notify(tenant=world.alpha, kind="threshold_warning", dedupe_key="k1", payload={})
            notify(tenant=world.alpha, kind="threshold_warning", dedupe_key="k1", payload={})
        waiting = scrape(client)
        email, webhook = (
            Delivery.objects.get(transport=transport) for transport in ("email", "webhook")
        )
        assert delivery_attempt(delivery_id=email.pk) == "delivered"
        assert delivery_attempt(delivery_id=webhook.pk) == "pending"  # to retry
        after = scrape(client)
    finally:
        receiver.stop()
    assert moved(before, after, "creditguard_notifications_created_total",
                 kind="threshold_warning") == 1  # fmt: skip
    attempts = "creditguard_delivery_attempts_total"
    assert moved(before, after, attempts, transport="email", status="delivered") == 1
    assert moved(before, after, attempts, transport="webhook", status="pending") == 1
    gauge = "creditguard_deliveries_waiting"
    assert value(waiting, gauge, transport="email", status="pending") == 1
    assert value(waiting, gauge, transport="webhook", status="pending") == 1
    assert value(after, gauge, transport="email", status="pending") == 0
    assert value(after, gauge, transport="webhook", status="pending") == 1


def test_a_scrape_reads_the_database_twice_whatever_the_history(
    world: World, client, django_assert_num_queries
):
    world.alice_api.ingest([event(f"q{i}", channel=c) for i, c in enumerate(["sms", "call"])])
    # The evaluation lag (one aggregate), the deliveries waiting (one grouped count) and
    # the months of partitions ahead (one catalog query).
    with django_assert_num_queries(3):
        assert client.get("/metrics").status_code == 200


# --- Redis down ----------------------------------------------------------------------------


def test_a_scrape_with_redis_down_answers_200_and_says_degraded(db, client, settings):
    up = scrape(client)
    assert value(up, "creditguard_redis_degraded") == 0
    assert value(up, "creditguard_celery_queue_length", queue="celery") >= 0
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    down = scrape(client)
    assert value(down, "creditguard_redis_degraded") == 1
    assert ("creditguard_celery_queue_length", frozenset({("queue", "celery")})) not in down
    assert moved(up, down, "creditguard_redis_failures_total", feature="metrics") == 1
    # While the breaker is open the next scrape does not wait for Redis at all.
    again = scrape(client)
    assert value(again, "creditguard_redis_degraded") == 1
    assert moved(down, again, "creditguard_redis_failures_total", feature="metrics") == 0


# --- protection ----------------------------------------------------------------------------


def test_without_any_setting_metrics_do_not_exist(db, client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


def test_outside_the_allowed_networks_is_404(db, client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    # X-Forwarded-For counts only from a trusted proxy (creditguard.client_address).
    spoofed = client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3", REMOTE_ADDR="192.0.2.1")
    assert spoofed.status_code == 404


def test_a_token_is_required_when_set_and_a_wrong_one_is_401(db, client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    wrong = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")
    assert wrong.status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_with_both_set_both_must_hold(db, client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    outside = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="192.0.2.1")
    assert outside.status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


# --- the dashboard -------------------------------------------------------------------------


def test_every_metric_the_dashboard_queries_exists_and_every_metric_is_on_it(db, client):
    dashboard = json.loads((ROOT / "deploy/grafana/creditguard.json").read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queried = {name for expr in queries for name in re.findall(r"\bcreditguard_\w+", expr)}
    names = registered_names()
    assert queried <= names, queried - names
    # Each metric (a histogram by any of its series) is shown somewhere.
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in queried}
    assert bases <= shown, bases - shown
    # And what a scrape shows is what the registry names (no name drifted).
    scraped = {name for name, _ in scrape(client)}
    assert {n for n in scraped if n.startswith("creditguard_")} <= names


# --- Celery workers -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_prefork_worker_serves_the_counts_of_its_pool_processes(tmp_path, broker):
    port = free_port()
    directory = tmp_path / "prometheus"
    env = worker_environment(
        redis_url=broker.url,
        mail_dir=tmp_path / "mail",
        CELERY_METRICS_PORT=str(port),
        CELERY_METRICS_ADDRESS="127.0.0.1",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    app.control.purge()
    worker = Worker(env, pool="prefork")
    try:
        for _ in range(2):
            app.send_task("creditguard.worker_heartbeat")

        def counted() -> float:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "creditguard_celery_tasks_total" and sample.labels == {
                        "task": "creditguard.worker_heartbeat",
                        "state": "SUCCESS",
                    }:
                        return sample.value
            return 0.0

        wait_for(lambda: counted() == 2, what="two heartbeats counted")
    finally:
        worker.stop()
    # The pool process wrote them, in a file named by host and pid.
    assert any(path.name.startswith("counter_") for path in directory.iterdir())


# --- gunicorn ------------------------------------------------------------------------------


def test_under_gunicorn_every_scrape_sums_the_counts_of_every_worker(db, tmp_path):
    """gunicorn.conf.py's multiprocess mode: two workers, each scrape the whole count
    (a worker's own registry would show only the requests it served)."""
    directory = tmp_path / "prometheus"
    env = app_environment(PROMETHEUS_MULTIPROC_DIR=str(directory), LOG_LEVEL="WARNING")
    with gunicorn(env) as base:

        def healthz_counted() -> float:
            text = requests.get(f"{base}/metrics", timeout=5).text
            return sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "creditguard_http_requests_total"
                and sample.labels["route"] == "healthz"
            )

        before = healthz_counted()  # the probes that found it up
        # 40 more, eight at a time: both workers must serve.
        with ThreadPoolExecutor(8) as pool:
            statuses = pool.map(
                lambda _: requests.get(f"{base}/healthz", timeout=10).status_code, range(40)
            )
            assert set(statuses) == {200}
        counts = [healthz_counted() - before for _ in range(6)]
    assert before >= 1 and counts == [40] * 6
    # Both workers served and counted, each in its file (named by host and pid): so each
    # scrape, whichever worker answered it, read the other's counts too.
    served = [
        sum(
            value
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
            if "creditguard_http_requests" in key and '"healthz"' in key
        )
        for path in directory.glob("counter_*.db")
    ]
    assert len(served) == 2 and min(served) > 0 and sum(served) == before + 40, served
