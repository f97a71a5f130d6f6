"""Every portal page takes a pinned number of queries, the same for a tenant with one
month of use on three channels and for one with three years of it on twenty: months
closed with their charges and carried credits, hundreds of notifications, keys, webhook
deliveries, limit requests, purchases, policy versions, members and invitations. A page
whose count grew with the history would fail here (issue 11, speed and correctness)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from metering.services.periods import grace, period_bounds
from notifications.models import Notification
from notifications.services.notify import NotificationSpec, notifications_create
from notifications.services.webhooks import webhook_endpoint_create
from policies.models import PolicyVersion, TopUpPack
from policies.services.close import periods_close_due
from policies.services.limit_requests import limit_request_create, limit_request_decline
from policies.services.policy import policy_acknowledge, policy_version_publish
from policies.services.purchases import topup_pack_buy
from tenants.invitations import invitation_create, invitation_revoke
from tenants.models import Membership, Tenant
from tenants.services import api_key_create, api_key_revoke, membership_add
from tests.conftest import event
from tests.factories import UserFactory
from tests.notifications.test_language import SAMPLES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_clock")]

# Each page's queries, the same whatever the history: the session, the user, the
# memberships with their tenants and the unread count beside the menu (4), and what
# the page itself reads (its own test names each). Both tenants have a channel without a
# rule of their own, whose terms come from the defaults: one more read of the rules.
PINNED = {
    "/dashboard/": 14,
    "/credits/": 10,
    "/notifications/": 11,
    "/limits/requests/": 8,
    "/developers/": 8,
    "/policy/": 7,
    "/team/": 6,
}
THREE_YEARS = 36


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("stella", is_staff=True)


def ingest(tenant: Tenant, channels: list[Channel], at, tag: str) -> None:
    """Two days of use on each channel around ``at``, booked as ingestion books it."""
    usage_record_batch(
        tenant=tenant,
        payload={
            "events": [
                event(
                    f"{tag}-{c.code}-{day}",
                    channel=c.code,
                    quantity=40 + day,
                    occurred_at=(at + timedelta(days=day)).isoformat(),
                )
                for c in channels
                for day in (0, 1)
            ]  # fmt: skip
        },
        now=at + timedelta(days=1, minutes=1),
    )


def notify(tenant: Tenant, count: int, at, tag: str) -> None:
    kinds = [Notification.Kind.TOPUP_BOOKED, Notification.Kind.LIMIT_CHANGED]
    notifications_create(
        specs=[
            NotificationSpec(
                tenant_id=tenant.pk,
                kind=kinds[n % 2],
                dedupe_key=f"{tag}:{n}",
                payload=SAMPLES[kinds[n % 2]],
            )
            for n in range(count)
        ],
        now=at,
    )


def one_of_each(people, staff, channels: list[Channel], tag: str, at) -> None:
    """What both tenants have, so that every page takes its every branch: a purchase, a
    decided limit request, keys (one revoked), a webhook endpoint, a notification, an
    acknowledged policy version, an invitation."""
    tenant = people.alpha
    for channel in channels:
        pack, _ = TopUpPack.objects.get_or_create(
            channel=channel, units=500, defaults={"price": Decimal("19.90")}
        )
        topup_pack_buy(tenant=tenant, pack_id=pack.pk, purchase_key=uuid.uuid4(), actor=None)
        request = limit_request_create(
            tenant=tenant, channel=channel, included_units=10**6, expected_volume=10**6,
            reason="campaign", requested_by=people.owner, now=at,
        )  # fmt: skip
        limit_request_decline(limit_request=request, customer_reason="no", actor=staff, now=at)
    for n in range(len(channels)):
        issued = api_key_create(tenant=tenant, name=f"{tag}{n}", scopes=["usage:read"])
        if n % 2:
            api_key_revoke(api_key=issued.api_key)
        invitation_create(tenant=tenant, email=f"{tag}{n}@example.com", role="viewer",
                          actor=people.owner, now=at)  # fmt: skip
    notify(tenant, 2 * len(channels), at, tag)


def channels_added(first: int, count: int) -> list[Channel]:
    """Channels staff added after the tenant was created: it has no rule of its own for
    them, their terms come from the defaults (one more read, whatever their number)."""
    return Channel.objects.bulk_create(
        Channel(code=f"channel_{n}", name=f"Channel {n}", default_included_units=100,
                sort_order=200 + n)
        for n in range(first, first + count)
    )  # fmt: skip


@pytest.fixture
def month_of_use(people, staff, settings):
    """One month on four channels (one added since the tenant was), one of each thing."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    channels_added(0, 1)
    channels = list(Channel.objects.filter(active=True))
    assert len(channels) == 4
    webhook_endpoint_create(tenant=people.alpha, url="http://127.0.0.1:9/hook")
    now = timezone.now()
    ingest(people.alpha, channels, now - timedelta(days=3), "now")
    one_of_each(people, staff, channels[:1], "k", now)
    policy_acknowledge(tenant=people.alpha, by="olga")
    return people


@pytest.fixture
def three_years(month_of_use, staff):
    """Then three years before it on twenty channels: each month's use booked and the
    month closed as the worker closes it, a month's notifications (each with its
    webhook delivery), a policy version a year acknowledged; keys, members and
    invitations by the dozen."""
    people = month_of_use
    tenant = people.alpha
    channels_added(1, 16)
    channels = list(Channel.objects.filter(active=True))
    assert len(channels) == 20
    now = timezone.now()
    bounds = period_bounds(tenant=tenant, at=now)
    for _ in range(THREE_YEARS):
        bounds = period_bounds(tenant=tenant, at=bounds.starts_at - timedelta(days=1))
        ingest(tenant, channels, bounds.starts_at + timedelta(days=10), bounds.label)
        notify(tenant, 30, bounds.starts_at + timedelta(days=12), bounds.label)
        periods_close_due(now=bounds.ends_at + grace() + timedelta(hours=1))
    for year in range(1, 4):
        past = now - timedelta(days=365 * year)
        version = PolicyVersion.objects.create(
            label=f"0.{year}", text_de="Alt", text_en="Old", effective_from=past
        )
        policy_version_publish(version=version, actor=None, now=past)
        policy_acknowledge(tenant=tenant, by="olga", label=version.label, now=past)
    one_of_each(people, staff, channels[1:], "old", now - timedelta(days=20))
    for n in range(12):
        membership_add(tenant=tenant, user=UserFactory.create(username=f"member{n}"),
                       role=Membership.Role.VIEWER, actor=None)  # fmt: skip
        issued = invitation_create(tenant=tenant, email=f"gone{n}@example.com", role="viewer",
                                   actor=people.owner)  # fmt: skip
        invitation_revoke(tenant=tenant, invitation_id=issued.invitation.pk, actor=people.owner)
    return people


def counted(people) -> dict[str, int]:
    """Each page's queries, as ``django_assert_num_queries`` counts them, after the
    page was rendered once (the session is read once)."""
    client = people.client(people.owner)
    counts = {}
    for path in PINNED:
        assert client.get(path).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        counts[path] = len(queries)
    return counts


def test_every_page_takes_its_pinned_queries_with_a_month_of_use(month_of_use):
    assert counted(month_of_use) == PINNED


def test_every_page_takes_the_same_queries_after_three_years_on_twenty_channels(three_years):
    assert Notification.objects.filter(tenant=three_years.alpha).count() > 1000
    assert counted(three_years) == PINNED
