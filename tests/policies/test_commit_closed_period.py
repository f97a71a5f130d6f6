"""Authorizations against a closed billing period: nothing is reserved into it, and a
reservation whose period closed cannot become usage. Each test runs on the fast and the
full authorization path (tests/policies/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from creditguard.errors import Unprocessable
from metering.models import Authorization, UsageEvent
from policies.services.authorization_settle import authorization_commit
from policies.services.authorize import authorization_create
from policies.services.close import periods_close_due
from tenants.services import api_key_create
from tests.conftest import ALL_SCOPES, Api
from tests.metering.test_closed_period_races import (
    CLOSING_TIME,
    Held,
    InThread,
    charge_of,
    lock_november_sms,
    november_sms,
    november_with_overage,
)

racing = pytest.mark.django_db(transaction=True, serialized_rollback=True)
pytestmark = pytest.mark.usefixtures("authorization_path")

# A request whose clock still reads November while the closer's reads 1 Dec 01:30.
LATE_NOVEMBER = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def assert_refused_as_period_closed(error: BaseException | None) -> None:
    assert isinstance(error, Unprocessable), error
    assert error.extra == {"code": "period_closed"}


@racing
def test_commit_waiting_behind_a_close_books_nothing_and_releases_the_reservation():
    tenant = november_with_overage("commit-race")
    held = authorization_create(tenant=tenant, channel_code="sms", quantity=5, now=LATE_NOVEMBER)
    assert held.status == Authorization.Status.HELD
    blocker = Held(lock_november_sms(tenant))
    close = InThread(lambda: periods_close_due(now=CLOSING_TIME))
    assert close.waits_for_a_lock()
    commit = InThread(
        lambda: authorization_commit(tenant=tenant, public_id=held.public_id, now=LATE_NOVEMBER)
    )
    assert commit.waits_for_a_lock()
    blocker.release()

    assert close.join() == 1
    commit.join()
    assert_refused_as_period_closed(commit.error)
    held.refresh_from_db()
    assert (held.status, held.committed_quantity) == (Authorization.Status.RELEASED, None)
    balance = november_sms(tenant)
    assert (balance.used, balance.reserved) == (130, 0)
    assert not UsageEvent.objects.filter(client_event_id=f"authorization:{held.public_id}").exists()
    assert charge_of(tenant) == (30, Decimal("30.00"), True)


@racing
def test_authorization_waiting_behind_a_close_reserves_nothing():
    tenant = november_with_overage("create-race")
    blocker = Held(lock_november_sms(tenant))
    close = InThread(lambda: periods_close_due(now=CLOSING_TIME))
    assert close.waits_for_a_lock()
    create = InThread(
        lambda: authorization_create(
            tenant=tenant, channel_code="sms", quantity=5, now=LATE_NOVEMBER
        )
    )
    assert create.waits_for_a_lock()
    blocker.release()

    assert close.join() == 1
    create.join()
    assert_refused_as_period_closed(create.error)
    assert not Authorization.objects.filter(tenant=tenant).exists()
    assert november_sms(tenant).reserved == 0


def test_authorization_in_a_closed_period_reserves_nothing(db):
    tenant = november_with_overage("create-closed")
    assert periods_close_due(now=CLOSING_TIME) == 1
    with pytest.raises(Unprocessable) as refused:
        authorization_create(tenant=tenant, channel_code="sms", quantity=5, now=LATE_NOVEMBER)
    assert_refused_as_period_closed(refused.value)
    assert not Authorization.objects.filter(tenant=tenant).exists()
    assert november_sms(tenant).reserved == 0


def test_commit_after_the_close_answers_422_period_closed_and_releases(db, settings):
    settings.AUTHORIZATION_TTL_SECONDS = 3 * 3600  # outlives the grace window
    tenant = november_with_overage("commit-closed")
    api = Api(api_key_create(tenant=tenant, name="k", scopes=ALL_SCOPES).raw_key)
    with time_machine.travel(LATE_NOVEMBER, tick=False):
        created = api.post("/api/v1/authorizations", {"channel": "sms", "quantity": 5}).json()
    assert created["status"] == "held"
    with time_machine.travel(CLOSING_TIME, tick=False):
        assert periods_close_due() == 1
        response = api.post(f"/api/v1/authorizations/{created['id']}/commit", {})
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "period_closed"
    assert Authorization.objects.get(public_id=created["id"]).status == "released"
    balance = november_sms(tenant)
    assert (balance.used, balance.reserved) == (130, 0)
    assert charge_of(tenant) == (30, Decimal("30.00"), True)
