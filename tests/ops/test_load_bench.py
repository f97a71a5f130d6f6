"""bench.load's harness, for a few seconds at tiny rates: the samples it records are
well formed, and nothing the clients sent is lost — every event accepted is stored and
booked as usage in the ledger, every authorization allowed is stored, no answer is an
error. Real gunicorn, Celery worker and beat processes on the test database and a Redis
of the test's own; the figures themselves are not judged (they come from the bench)."""

from __future__ import annotations

import pytest

from bench.load import SECTION, LoadRun, load_run, plot, report, run_from_json, run_to_json
from tests.workers import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_short_load_run_loses_nothing_and_samples_every_interval(broker, settings, tmp_path):
    settings.LIMIT_NOTICE_DAYS = 0  # set by the bench's tenants' setup; restored after
    run = load_run(
        database_url=database_url(),
        redis_url=broker.url,
        seconds=5,
        interval=1,
        ingest_rate=2000,  # two batches of 1000 events a second
        authorize_rate=20,
        ingest_clients=2,
        authorize_clients=2,
        authorize_tenants=2,
        web_workers=2,
        worker_concurrency=1,
        background_tenants=20,
        drain_timeout=60,
        progress=False,
    )

    assert [sample.t for sample in run.samples] == [1, 2, 3, 4, 5]
    for sample in run.samples:
        assert sample.events_per_s >= 0 and sample.authorizations_per_s >= 0
        assert sample.errors == {}
        assert sample.denied == 0
        # /metrics answered every scrape, and the gauges the harness reads are in it.
        assert sample.lag_seconds is not None and sample.lag_seconds >= 0
        assert sample.pending_balances is not None and sample.queue_depth is not None
        assert sample.oldest_unevaluated_seconds >= 0
        assert sample.load1 >= 0 and sample.cores_busy >= 0
        assert set(sample.cpu) >= {"web", "worker", "clients", "postgres (this database)"}
        # /readyz answered: the worker's heartbeat (sent when it started) is fresh.
        assert sample.ready_status == 200 and sample.heartbeat_age_seconds is not None
    assert sum(s.events_per_s for s in run.samples) > 0
    assert sum(s.authorizations_per_s for s in run.samples) > 0
    assert any(s.authorize_p99_ms is not None for s in run.samples)
    assert any(s.batch_p99_ms is not None for s in run.samples)

    totals = run.totals
    assert totals["errors"] == {}
    assert totals["events_accepted"] > 0
    assert totals["events_stored"] == totals["events_accepted"]
    assert (
        totals["quantity_sent"]
        == totals["quantity_stored"]
        == totals["usage_booked"]
        == totals["balances_used"]
    )
    assert totals["authorizations_allowed"] > 0
    assert totals["authorizations_stored"] == totals["authorizations_allowed"]
    # The worker evaluated what the load moved once it stopped.
    assert totals["pending_after"] == 0 and totals["drain_seconds"] is not None
    assert totals["queue_drain_seconds"] is not None and totals["queue_after"] == 0
    assert totals["evaluations"] >= 1

    assert len(run.minutes) == 1
    text = report([run])
    assert "(all equal)" in text and SECTION not in text  # write_section adds the heading
    again = run_from_json(run_to_json(run))
    assert isinstance(again, LoadRun) and again.samples == run.samples
    assert "### Run of" in report([again, run])  # two runs: a subsection each
    plot([again, run], tmp_path / "load.png")
    assert (tmp_path / "load.png").read_bytes().startswith(b"\x89PNG")
