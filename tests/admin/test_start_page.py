"""The staff start page: each work queue counted by one query, its count held to the data
(what belongs in it and what only looks like it), and its link filtering the changelist
to exactly those objects."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from console.queues import work_queues
from metering.models import Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import period_bounds
from notifications.models import Delivery, Notification, WebhookEndpoint
from policies.models import AnomalyAlert, LimitRecommendation, OverageCharge
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.limit_requests import limit_request_create
from policies.services.overage import overage_charge_refresh
from policies.services.restrictions import restriction_apply, restriction_lift
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.anomaly_helpers import anomaly_alert_open
from tests.policies.helpers import balance_of, set_rule

pytestmark = pytest.mark.django_db

QUEUES = 7
# The admin's own reads of the index (session, user, recent actions) and the
# queues, one each.
INDEX_QUERIES = 3 + QUEUES


def _overage_last_month(tenant: Tenant, sms: Channel, now: datetime) -> None:
    last_month = period_bounds(tenant=tenant, at=now).starts_at - timedelta(days=10)
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event("past", quantity=sms.default_included_units + 200,
                                  occurred_at=last_month.isoformat())]},
        now=last_month + timedelta(minutes=1),
    )  # fmt: skip


def _recommendation(tenant: Tenant, channel: Channel, current: int, suggested: int,
                    computed_at: datetime, applied: bool = False) -> LimitRecommendation:  # fmt: skip
    return LimitRecommendation.objects.create(
        tenant=tenant, channel=channel, computed_at=computed_at, current_included=current,
        suggested_included=suggested, suggested_hard_limit=suggested // 10, cohort="test",
        cohort_size=1, explanation="test", applied_at=computed_at if applied else None,
    )  # fmt: skip


def _endpoint(tenant: Tenant, name: str, **fields: object) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        public_id=uuid.uuid4(), tenant=tenant, url=f"https://{name}.example/hook",
        secret_encrypted="unused", created_at=timezone.now(), **fields,
    )  # fmt: skip


def _delivery(notification: Notification, endpoint: WebhookEndpoint, status: str,
              error: str, age: timedelta) -> None:  # fmt: skip
    Delivery.objects.create(
        notification=notification, transport="webhook", endpoint=endpoint, status=status,
        last_error=error, next_attempt_at=timezone.now(), created_at=timezone.now() - age,
    )  # fmt: skip


@pytest.fixture
def queues_data(settings) -> dict[str, int]:
    """Data for every queue, with near misses beside each; returns the expected counts."""
    now = timezone.now()
    sms, email = Channel.objects.get(code="sms"), Channel.objects.get(code="email")
    near = TenantFactory.create(slug="near", name="Near", time_zone="UTC")
    over = TenantFactory.create(slug="over", name="Over", time_zone="UTC")
    calm = TenantFactory.create(slug="calm", name="Calm", time_zone="Europe/Berlin")
    closed_over = TenantFactory.create(slug="last-month", name="Last Month", time_zone="UTC")
    schedule = fee_schedule_create(
        channel=sms, name="SMS overage", tiers=[(None, "0.10")],
        effective_from=now - timedelta(days=120), now=now - timedelta(days=120),
    )  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=now - timedelta(days=120))
    for tenant, used in ((near, 85), (over, 130), (calm, 10)):
        set_rule(tenant, "sms", included_units=100)
        usage_record_batch(tenant=tenant, payload={"events": [event("now", quantity=used)]})
    # Overage: last month's final charge awaits a decision; Over's charge of this period,
    # still open, is not yet for deciding.
    _overage_last_month(closed_over, sms, now)
    periods_close_due(now=now)
    overage_charge_refresh(tenant=over, channel=sms, period=balance_of(over).period)
    assert OverageCharge.objects.filter(status="pending").count() == 2

    # Restrictions: one ends in two hours; others end later, never, or were lifted.
    def restrict(tenant: Tenant, hours: int | None) -> object:
        return restriction_apply(
            tenant=tenant, channel=sms, kind="suspend", reason="test", customer_reason="test",
            actor=None, duration=timedelta(hours=hours) if hours else None,
        )  # fmt: skip

    restrict(calm, 2)
    restrict(near, 72)
    restrict(over, None)
    restriction_lift(restriction=restrict(over, 3), reason="test", actor=None)  # type: ignore[arg-type]

    for tenant in (near, calm):
        limit_request_create(
            tenant=tenant, channel=sms, included_units=300, expected_volume=250,
            reason="A campaign", requested_by=None,
        )  # fmt: skip

    # Recommendations: the latest of each tenant × channel, unapplied, > 20 % from the
    # limit in force (its latest rule version in effect; tenant_create wrote one per channel).
    _recommendation(near, sms, 100, 300, now - timedelta(days=2))  # superseded below
    _recommendation(near, sms, 100, 110, now)  # within 20 %
    _recommendation(near, email, 10_000, 12_000, now)  # exactly 20 %: not more
    _recommendation(over, sms, 100, 130, now)  # counted
    _recommendation(over, email, 100, 500, now, applied=True)  # applied
    _recommendation(calm, sms, 50, 110, now)  # 50 when computed; the rule in force is 100
    _recommendation(closed_over, sms, 1000, 1500, now)  # the rule in force is 2000: counted

    # Webhook endpoints: failed, retrying after an error, disabled by the receiver: three.
    notification = Notification.objects.create(
        public_id=uuid.uuid4(), tenant=near, kind="limit_reached", dedupe_key="q", created_at=now
    )
    day, old = timedelta(days=1), timedelta(days=10)
    _delivery(notification, _endpoint(near, "failed"), "failed", "HTTP 500", day)
    _delivery(notification, _endpoint(near, "retrying"), "pending", "HTTP 503", day)
    _delivery(notification, _endpoint(near, "healthy"), "delivered", "", day)
    _delivery(notification, _endpoint(near, "long-ago"), "failed", "HTTP 500", old)
    _endpoint(near, "gone", active=False, disabled_reason="The receiver answered 410 Gone.")
    _delivery(notification, _endpoint(near, "deleted", deleted_at=now), "failed", "HTTP 500", day)

    anomaly_alert_open(calm, email)
    assert AnomalyAlert.objects.filter(status="open").count() == 1
    return {
        "overage": 1, "near_limit": 2, "restrictions": 1, "limit_requests": 2,
        "recommendations": 2, "webhooks": 3, "anomalies": 1,
    }  # fmt: skip


def test_each_queue_is_one_query_and_counts_what_belongs_in_it(
    queues_data, django_assert_num_queries
):
    superuser = User.objects.create_superuser("boss", "boss@creditguard.example", "x")
    with django_assert_num_queries(QUEUES):
        queues = work_queues(user=superuser)
    assert {queue.key: queue.count for queue in queues} == queues_data
    by_key = {queue.key: queue for queue in queues}
    assert by_key["overage"].detail.startswith("€20.00 in all; the oldest waiting")
    assert by_key["near_limit"].detail == "1 of them over a limit"


def test_each_link_filters_the_changelist_to_its_queue(queues_data):
    superuser = User.objects.create_superuser("boss", "boss@creditguard.example", "x")
    client = Client()
    client.force_login(superuser)
    for queue in work_queues(user=superuser):
        response = client.get(queue.url)
        assert response.status_code == 200, queue.url
        assert response.context["cl"].result_count == queue.count, queue.key


def test_the_start_page_shows_the_queues_in_a_fixed_number_of_queries(
    queues_data, django_assert_num_queries
):
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@creditguard.example", "x"))
    with django_assert_num_queries(INDEX_QUERIES):
        page = client.get("/admin/").content.decode()
    assert 'id="work-queues"' in page
    assert "Overage charges awaiting a decision" in page
    assert "/admin/policies/overagecharge/?ready=yes" in page
    # An app's page extends the index template: the queues are the start page's alone.
    with django_assert_num_queries(2):  # the session and the user
        app_page = client.get("/admin/policies/").content.decode()
    assert "Overage charges" in app_page and 'id="work-queues"' not in app_page


def test_a_role_sees_the_queues_and_staff_in_no_group_none(queues_data):
    billing = User.objects.create_user("billing", password="x", is_staff=True)
    billing.groups.add(Group.objects.get(name="Billing"))
    nobody = User.objects.create_user("nobody", password="x", is_staff=True)
    assert len(work_queues(user=User.objects.get(pk=billing.pk))) == QUEUES
    assert work_queues(user=User.objects.get(pk=nobody.pk)) == []
    client = Client()
    client.force_login(nobody)
    response = client.get("/admin/")
    assert response.status_code == 200 and 'id="work-queues"' not in response.content.decode()
