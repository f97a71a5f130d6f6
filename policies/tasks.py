"""Celery tasks of the rules engine: thin adapters over the services of the same name.

Services ask for an evaluation with ``metering.services.evaluation_request``, which
sends ``policies.evaluate_pending`` by name, so the tasks import their services at the
top like any other module.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from metering.services.evaluation_request import evaluation_request_started
from metering.services.ledger import grants_expire_due
from policies.services.anomaly import anomaly_watch
from policies.services.authorization_settle import authorizations_expire
from policies.services.close import periods_close_due
from policies.services.evaluate import evaluate_pending, evaluate_sweep
from policies.services.recommend import recommendations_compute
from policies.services.restrictions import restrictions_expire
from policies.services.whatif_runs import WHATIF_RUN_TASK, whatif_run, whatif_run_continue


@shared_task(name="policies.evaluate_pending")
def evaluate_pending_task() -> int:
    evaluation_request_started()
    return evaluate_pending().notifications


@shared_task(name="policies.evaluate_sweep")
def evaluate_sweep_task() -> int:
    return evaluate_sweep().notifications


@shared_task(name="policies.expire_authorizations")
def expire_authorizations_task() -> int:
    return authorizations_expire()


@shared_task(name="policies.expire_restrictions")
def expire_restrictions_task() -> int:
    return restrictions_expire()


@shared_task(name="metering.close_periods")
def close_periods_task() -> int:
    return periods_close_due()


@shared_task(name="policies.compute_recommendations")
def compute_recommendations_task() -> int:
    return len(recommendations_compute())


@shared_task(name="metering.expire_grants")
def expire_grants_task() -> int:
    return grants_expire_due()


@shared_task(name="policies.anomaly_watch")
def anomaly_watch_task() -> int:
    return len(anomaly_watch().opened)


@shared_task(name=WHATIF_RUN_TASK)
def whatif_run_task(run_id: int) -> int:
    # Half the soft time limit per task (a 10,000-tenant run takes minutes), then the
    # next task carries on from the run's progress.
    run = whatif_run(run_id, budget_seconds=settings.CELERY_TASK_SOFT_TIME_LIMIT / 2)
    if not run.finished:
        whatif_run_continue(run_id)
    return run.done
