"""Structured logs: a request id on every line, from the request through its evaluation
task to its deliveries; one line per request and per task; no key or secret, ever."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.http import HttpResponse
from django.test import RequestFactory

from creditguard.access import AccessMiddleware
from creditguard.celery import app
from creditguard.logs import (
    JsonLineFormatter,
    PlainFormatter,
    RequestIdFilter,
    logging_config,
    redact,
)
from metering.services.evaluation_request import EVALUATION_SCHEDULED_KEY
from notifications.models import Delivery
from notifications.services.deliver import delivery_attempt
from notifications.services.notify import notify
from notifications.services.webhooks import webhook_endpoint_create
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api, World, event
from tests.factories import TenantFactory
from tests.notifications.receiver import Receiver
from tests.policies.helpers import set_rule
from tests.workers import Worker, wait_for, worker_environment

JSON = logging_config(log_format="json", level="INFO")["formatters"]["json"]


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Every record of every logger, DEBUG and up, as the production handler writes it
    (JSON, through the redaction), collected here for the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter(JSON["format"], rename_fields=JSON["rename_fields"]))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    # import-linter's command (tests/test_layers.py) configures logging in this process
    # and disables every logger that existed; the app's must write here.
    loggers = [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    disabled = [lg for lg in loggers if lg.disabled]
    for logger in disabled:
        logger.disabled = False
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    for logger in disabled:
        logger.disabled = True


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict]:
    return [r for r in records(stream) if r["logger"] == "creditguard.access"]


# --- request id and the access line ---------------------------------------------------


def test_a_sane_request_id_is_kept_and_echoed_on_the_line(world: World, lines):
    world.alice_api.client.defaults["HTTP_X_REQUEST_ID"] = "batch-42.a:b"
    response = world.alice_api.ingest([event("r1")])
    assert response.status_code == 200
    assert response["X-Request-ID"] == "batch-42.a:b"
    (line,) = access_lines(lines)
    assert line["request_id"] == "batch-42.a:b"
    assert line["event"] == "request"
    assert (line["method"], line["route"], line["status"]) == ("POST", "v1:usage-events", 200)
    assert line["tenant"] == "alpha"
    assert line["path"] == "/api/v1/usage-events"
    assert line["duration_ms"] > 0
    assert line["level"] == "INFO" and "time" in line


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "semi;colon", "ü"])
def test_a_missing_or_insane_request_id_is_replaced_by_a_new_one(db, client, lines, given):
    headers = {} if given is None else {"HTTP_X_REQUEST_ID": given}
    response = client.get("/healthz", **headers)
    request_id = response["X-Request-ID"]
    assert request_id != given and len(request_id) == 32
    int(request_id, 16)
    (line,) = access_lines(lines)
    assert line["request_id"] == request_id
    assert line["route"] == "healthz" and line["tenant"] is None


def test_every_line_of_a_request_carries_its_id_and_none_outside(lines):
    def view(request):
        logging.getLogger("creditguard.test").warning("inside")
        return HttpResponse()

    logging.getLogger("creditguard.test").warning("outside")
    AccessMiddleware(view)(RequestFactory().get("/x", HTTP_X_REQUEST_ID="req-1"))
    logging.getLogger("creditguard.test").warning("outside again")
    by_message = {r["message"]: r for r in records(lines)}
    assert by_message["inside"]["request_id"] == "req-1"
    assert by_message["outside"]["request_id"] == "-"
    assert by_message["outside again"]["request_id"] == "-"
    assert [r["request_id"] for r in access_lines(lines)] == ["req-1"]


def test_a_404_is_one_line_and_a_500_keeps_its_traceback(db, client, lines, monkeypatch):
    assert client.get("/no/such/page").status_code == 404
    assert [r["logger"] for r in records(lines)] == ["creditguard.access"]

    def broken():
        raise RuntimeError("the view broke")

    monkeypatch.setattr("creditguard.views._health_checks", broken)
    client.raise_request_exception = False
    assert client.get("/healthz").status_code == 500
    error = [r for r in records(lines) if r["logger"] == "django.request"]
    assert len(error) == 1 and "the view broke" in error[0]["exc_info"]
    assert access_lines(lines)[-1]["status"] == 500


def test_the_plain_format_reads_as_one_line_with_the_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    RequestIdFilter().filter(record)
    line = PlainFormatter("%(levelname)s %(name)s [%(request_id)s] %(message)s").format(record)
    assert line == "INFO x [-] hello you"


# --- redaction ------------------------------------------------------------------------


def test_redact_masks_keys_tokens_headers_and_secrets_and_keeps_the_rest():
    text = (
        "key cg_0123456789ab_AbC-dEf0123 Authorization: Bearer tok.en-123 "
        "{'HTTP_AUTHORIZATION': 'Bearer cg_aa_bb'} whsec_c2VjcmV0Cg== "
        'password=hunter2 "webhook_secret": "s3cr3t" idempotency_key=k1 quantity=5'
    )
    masked = redact(text)
    for secret in ("AbC-dEf0123", "tok.en-123", "cg_aa_bb", "c2VjcmV0Cg", "hunter2", "s3cr3t"):
        assert secret not in masked
    assert "cg_0123456789ab_[redacted]" in masked  # the public prefix stays
    assert "idempotency_key=k1 quantity=5" in masked


def test_an_ingest_with_a_key_writes_neither_key_nor_secret_to_the_logs(db, lines, client):
    tenant = TenantFactory.create(slug="logs")
    raw_key = api_key_create(tenant=tenant, name="k", scopes=ALL_SCOPES).raw_key
    secret_part = raw_key.rsplit("_", 1)[1]
    api = Api(raw_key)
    assert api.ingest([event("s1")]).status_code == 200
    # The key in a query string (a client's mistake) and a wrong key of the same form.
    assert api.get("/api/v1/balances", {"api_key": raw_key}).status_code == 200
    assert Api(raw_key + "x").ingest([event("s2")]).status_code == 401
    # And a line that would carry it, as a careless log call would.
    logging.getLogger("creditguard.test").warning("client sent %s", {"Authorization": raw_key})
    output = lines.getvalue()
    assert len(access_lines(lines)) == 3
    assert secret_part not in output
    assert raw_key not in output


def test_a_failing_webhook_delivery_writes_no_secret_to_the_logs(
    world: World, lines, settings, monkeypatch
):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver().start()
    try:
        secret = webhook_endpoint_create(tenant=world.alpha, url=receiver.url).secret
        world.alpha.contact_email = ""
        world.alpha.save()

        def failing_post(**kwargs):
            # A library that puts the request in its error message.
            raise RuntimeError(f"could not send {kwargs['headers']} with secret={secret}")

        monkeypatch.setattr("notifications.services.deliver.pinned_post", failing_post)
        notify(tenant=world.alpha, kind="threshold_warning", dedupe_key="w1", payload={})
        delivery = Delivery.objects.get(transport="webhook")
        assert delivery_attempt(delivery_id=delivery.pk) == "pending"
    finally:
        receiver.stop()
    output = lines.getvalue()
    failure = [r for r in records(lines) if r["message"].startswith("delivery ")]
    assert failure and "RuntimeError" in failure[0]["exc_info"]
    assert secret.startswith("whsec_")
    assert secret not in output and secret.split("_", 1)[1] not in output


# --- tasks: one line each, the request's id carried -------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_request_id_follows_it_through_evaluation_to_its_deliveries(
    tmp_path, settings, broker
):
    settings.EVALUATION_COALESCE_SECONDS = 0.2
    env = worker_environment(redis_url=broker.url, mail_dir=tmp_path / "mail", LOG_FORMAT="json")
    app.control.purge()
    cache.delete(EVALUATION_SCHEDULED_KEY)
    tenant = TenantFactory.create(slug="trace", contact_email="ops@trace.example")
    set_rule(tenant, "sms", included_units=100, warning_thresholds=[80])
    raw_key = api_key_create(tenant=tenant, name="trace", scopes=ALL_SCOPES).raw_key
    api = Api(raw_key)
    api.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_X_REQUEST_ID="trace-77")
    worker = Worker(env)
    try:
        assert api.ingest([event("t1", quantity=85)]).status_code == 200

        def task_lines() -> list[dict]:
            parsed = []
            for line in list(worker.log):
                if line.startswith("{"):
                    parsed.append(json.loads(line))
            return [r for r in parsed if r.get("event") == "task"]

        def delivered() -> bool:
            return any(
                r["task"] == "notifications.deliver" and r["request_id"] == "trace-77"
                for r in task_lines()
            )

        wait_for(delivered, what="the delivery task's line")
    finally:
        worker.stop()
    traced = {r["task"]: r for r in task_lines() if r["request_id"] == "trace-77"}
    assert set(traced) >= {"policies.evaluate_pending", "notifications.deliver"}, task_lines()
    line = traced["notifications.deliver"]
    assert line["state"] == "SUCCESS" and line["duration_ms"] >= 0 and line["task_id"]
    warning = Delivery.objects.get(notification__kind="threshold_warning")
    assert warning.status == "delivered"
    assert raw_key.rsplit("_", 1)[1] not in "".join(worker.log)
