"""Concurrency claims of the rules engine, shown with real threads against PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from metering.models import Authorization, Channel, Grant, LedgerEntry
from policies.models import TopUp, TopUpPack
from policies.services.restrictions import restriction_apply
from policies.services.topups import topup_offer_create
from tenants.models import Tenant
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api
from tests.factories import TenantFactory
from tests.policies.helpers import balance_of, set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def run_threads(count: int, work: Callable[[Api, int], Any], raw_key: str) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        try:
            api = Api(raw_key)
            barrier.wait()
            results[index] = work(api, index)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def tenant_and_key():
    tenant = TenantFactory.create(time_zone="UTC")
    return tenant, api_key_create(tenant=tenant, name="load", scopes=ALL_SCOPES).raw_key


@pytest.mark.usefixtures("authorization_path")
def authorize_from_32_threads(raw_key: str) -> list[dict]:
    """32 threads × 8 authorizations of 1 or 2 SMS units each: every answer."""

    def work(api: Api, index: int) -> list[dict]:
        return [
            api.post(
                "/api/v1/authorizations", {"channel": "sms", "quantity": 1 + (i + index) % 2}
            ).json()
            for i in range(8)
        ]

    return [answer for batch in run_threads(32, work, raw_key) for answer in batch]


def assert_reached_never_passed(tenant: Tenant, answers: list[dict], ceiling: int) -> int:
    """The SMS hard limit at ``ceiling`` never passed and reached (at most one unit of
    room left by a denied 2-unit request), every refusal for it, and the balance's
    reservations and their ledger holds equal to what was allowed; returns that."""
    allowed = sum(a["quantity"] for a in answers if a["decision"] != "deny")
    assert allowed <= ceiling  # never past the hard limit
    assert allowed >= ceiling - 1  # reached
    assert {a["reason"] for a in answers if a["decision"] == "deny"} == {"hard_limit_reached"}
    balance = balance_of(tenant, "sms")
    assert balance.reserved == allowed
    holds = LedgerEntry.objects.filter(balance=balance).aggregate(total=Sum("reserved_delta"))
    assert holds["total"] == allowed
    return allowed


def test_32_threads_never_pass_the_hard_limit_and_reach_it():
    tenant, raw_key = tenant_and_key()
    set_rule(tenant, "sms", included_units=100, hard_limit=50)  # ceiling 150
    assert_reached_never_passed(tenant, authorize_from_32_threads(raw_key), ceiling=150)


def test_32_threads_never_pass_a_windowed_cap_and_reach_it():
    tenant, raw_key = tenant_and_key()
    restriction_apply(
        tenant=tenant,
        channel=Channel.objects.get(code="email"),
        kind="throttle",
        limit_units=60,
        window="hour",
        reason="load test",
        customer_reason="load test",
        actor=None,
    )

    def work(api: Api, index: int) -> list[dict]:
        return [
            api.post("/api/v1/authorizations", {"channel": "email", "quantity": 1}).json()
            for _ in range(5)
        ]

    answers = [answer for batch in run_threads(32, work, raw_key) for answer in batch]
    allowed = [a for a in answers if a["decision"] == "allow"]
    assert len(allowed) == 60
    assert {a["reason"] for a in answers if a["decision"] == "deny"} == {"channel_restricted"}


@pytest.mark.usefixtures("authorization_path")
def test_10_concurrent_requests_with_one_idempotency_key_reserve_once():
    tenant, raw_key = tenant_and_key()

    def work(api: Api, index: int) -> tuple[int, dict]:
        response = api.post(
            "/api/v1/authorizations",
            {"channel": "sms", "quantity": 7, "idempotency_key": "order-42"},
        )
        return response.status_code, response.json()

    results = run_threads(10, work, raw_key)
    assert {status for status, _ in results} == {200}
    assert len({tuple(sorted(body.items())) for _, body in results}) == 1
    assert Authorization.objects.filter(tenant=tenant).count() == 1
    assert balance_of(tenant, "sms").reserved == 7


def test_a_top_up_accepted_twice_at_once_is_booked_once():
    tenant, raw_key = tenant_and_key()
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price="25.00"
    )
    offer = topup_offer_create(tenant=tenant, pack=pack)
    set_rule(tenant, "sms", included_units=100)  # opens the balance with 100 included
    before = balance_of(tenant, "sms").available

    def work(api: Api, index: int) -> tuple[int, dict]:
        response = api.post(f"/api/v1/topup-offers/{offer.public_id}/accept")
        return response.status_code, response.json()

    results = run_threads(8, work, raw_key)
    assert {status for status, _ in results} == {200}
    assert len({tuple(sorted(body.items())) for _, body in results}) == 1
    assert TopUp.objects.filter(tenant=tenant).count() == 1
    assert Grant.objects.filter(tenant=tenant, kind=Grant.Kind.PURCHASED).count() == 1
    assert balance_of(tenant, "sms").available == before + 500
