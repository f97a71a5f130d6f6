"""The staff start page's work queues: what waits for someone today, each counted by one
query and linked to the changelist filtered to exactly that queue.

Each queue is shown to a staff member who may view its objects; whoever may act on them
acts from the changelist the link opens (the role matrix, ``policies.roles``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from creditguard.locale_format import money_text
from metering.levels import NEAR_LIMIT_PERCENT, near_limit_q
from metering.models import Balance
from notifications.models import Delivery, WebhookEndpoint
from policies.models import (
    AnomalyAlert,
    LimitRecommendation,
    LimitRequest,
    LimitRule,
    OverageCharge,
    Restriction,
)

# A recommendation is worth a look when its suggestion is this far from the limit in force.
RECOMMENDATION_GAP_PERCENT = 20
# An endpoint is failing when a delivery to it failed (given up, or waiting to be retried
# after an error) within this window.
WEBHOOK_FAILURE_WINDOW = timedelta(days=7)
RESTRICTIONS_ENDING_WITHIN = timedelta(hours=24)


@dataclass(frozen=True)
class Queue:
    key: str
    title: str
    count: int
    detail: str  # what the count does not say: amounts, the oldest, the soonest
    url: str  # the changelist, filtered to this queue


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return ""
    seconds = max((now - since).total_seconds(), 0)
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def _changelist(model: str, **params: str) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def current_balances(now: datetime) -> QuerySet[Balance]:
    """The balances of the periods open at ``now`` (the tenants' list reads the same)."""
    return Balance.objects.filter(
        period__status="open", period__starts_at__lte=now, period__ends_at__gt=now
    )


def overage_pending(now: datetime) -> Queue:
    """Final charges (their period closed) awaiting a staff decision: the amount per
    currency (never added across) and how long the oldest has waited."""
    rows = list(
        OverageCharge.objects.filter(status="pending", finalized_at__isnull=False)
        .values("currency")
        .annotate(charges=Count("pk"), total=Sum("amount"), oldest=Min("finalized_at"))
        .order_by("currency")
    )
    oldest = min((row["oldest"] for row in rows), default=None)
    amounts = ", ".join(
        money_text(row["total"] or Decimal(0), row["currency"], language="en") for row in rows
    )
    detail = f"{amounts} in all; the oldest waiting {_age(oldest, now)}" if rows else ""
    return Queue(
        key="overage",
        title="Overage charges awaiting a decision",
        count=sum(row["charges"] for row in rows),
        detail=detail,
        url=_changelist("policies_overagecharge", ready="yes"),
    )


def tenants_near_limit(now: datetime) -> Queue:
    """Tenants at or past ``NEAR_LIMIT_PERCENT`` of a channel this period (over included):
    one pass over this period's balances, tenants counted once however many channels."""
    counts = current_balances(now).aggregate(
        near=Count("tenant", distinct=True, filter=near_limit_q()),
        over=Count("tenant", distinct=True, filter=Q(used__gt=F("available"))),
    )
    return Queue(
        key="near_limit",
        title=f"Tenants near (≥ {NEAR_LIMIT_PERCENT} %) or over a limit this period",
        count=counts["near"],
        detail=(f"{counts['over'] or 'none'} of them over a limit" if counts["near"] else ""),
        url=_changelist("tenants_tenant", usage="near"),
    )


def restrictions_ending(now: datetime) -> Queue:
    """Restrictions in force that end within ``RESTRICTIONS_ENDING_WITHIN``: extend them
    or let them end."""
    until = now + RESTRICTIONS_ENDING_WITHIN
    found = Restriction.objects.filter(
        lifted_at__isnull=True, ends_at__gt=now, ends_at__lte=until
    ).aggregate(count=Count("pk"), soonest=Min("ends_at"))
    soonest = found["soonest"]
    return Queue(
        key="restrictions",
        title="Restrictions ending in the next 24 hours",
        count=found["count"],
        detail=f"the first in {_age(now, soonest)}" if soonest else "",
        # The changelist filters by any of the model's own fields from the query string.
        url=_changelist(
            "policies_restriction",
            lifted_at__isnull="True",
            ends_at__gt=now.isoformat(),
            ends_at__lte=until.isoformat(),
        ),
    )


def limit_requests_open(now: datetime) -> Queue:
    found = LimitRequest.objects.filter(status=LimitRequest.Status.OPEN).aggregate(
        count=Count("pk"), oldest=Min("requested_at")
    )
    return Queue(
        key="limit_requests",
        title="Limit requests from customers awaiting review",
        count=found["count"],
        detail=f"the oldest waiting {_age(found['oldest'], now)}" if found["count"] else "",
        url=_changelist("policies_limitrequest", status__exact="open"),
    )


def recommendations_differing(now: datetime) -> Queue:
    gap = RECOMMENDATION_GAP_PERCENT
    return Queue(
        key="recommendations",
        title=f"Recommendations more than {gap} % from the limit in force",
        count=recommendations_far_from_limit(now).count(),
        detail="",
        url=_changelist("policies_limitrecommendation", gap="yes"),
    )


def recommendations_far_from_limit(now: datetime) -> QuerySet[LimitRecommendation]:
    """Each tenant × channel's latest recommendation, not applied, whose suggested included
    credits differ by more than ``RECOMMENDATION_GAP_PERCENT`` from the limit in force: the
    included credits of the tenant's latest rule version in effect, or, without one, those
    the recommendation was computed against (a cohort's or the channel's default)."""
    newer = LimitRecommendation.objects.filter(
        tenant=OuterRef("tenant"),
        channel=OuterRef("channel"),
        computed_at__gt=OuterRef("computed_at"),
    )
    rule = (
        LimitRule.objects.filter(
            tenant=OuterRef("tenant"), channel=OuterRef("channel"), effective_from__lte=now
        )
        .order_by("-effective_from", "-version")
        .values("included_units")[:1]
    )
    limit = Coalesce(Subquery(rule), F("current_included"), output_field=BigIntegerField())
    # |suggested - limit| > gap % of limit, in whole numbers: no division rounds the mark.
    gap = RECOMMENDATION_GAP_PERCENT
    return (
        LimitRecommendation.objects.filter(applied_at__isnull=True)
        .exclude(Exists(newer))
        .alias(limit=limit, suggested=F("suggested_included") * 100)
        .filter(
            Q(suggested__gt=F("limit") * (100 + gap)) | Q(suggested__lt=F("limit") * (100 - gap))
        )
    )


def webhooks_failing(now: datetime) -> Queue:
    found = failing_endpoints(now).count()
    return Queue(
        key="webhooks",
        title="Webhook endpoints failing",
        count=found,
        detail="a delivery failed in the last 7 days, or the receiver disabled it" if found else "",
        url=_changelist("notifications_webhookendpoint", failing="yes"),
    )


def failing_endpoints(now: datetime) -> QuerySet[WebhookEndpoint]:
    """Endpoints not deleted with a delivery that failed within ``WEBHOOK_FAILURE_WINDOW``
    (given up, or waiting for a retry after an error), or that the receiver disabled (410)."""
    failed = Delivery.objects.filter(
        endpoint=OuterRef("pk"), created_at__gte=now - WEBHOOK_FAILURE_WINDOW
    ).filter(
        Q(status=Delivery.Status.FAILED)
        | (Q(status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING]) & ~Q(last_error=""))
    )
    return WebhookEndpoint.objects.filter(deleted_at__isnull=True).filter(
        Q(Exists(failed)) | (Q(active=False) & ~Q(disabled_reason=""))
    )


def anomalies_open(now: datetime) -> Queue:
    found = AnomalyAlert.objects.filter(status=AnomalyAlert.Status.OPEN).aggregate(
        count=Count("pk"), oldest=Min("opened_at")
    )
    return Queue(
        key="anomalies",
        title="Anomaly alerts awaiting staff",
        count=found["count"],
        detail=f"the oldest open {_age(found['oldest'], now)}" if found["count"] else "",
        url=_changelist("policies_anomalyalert", status__exact="open"),
    )


# Each queue and the permission that shows it: its objects' view permission.
QUEUES: list[tuple[str, Callable[[datetime], Queue]]] = [
    ("policies.view_overagecharge", overage_pending),
    ("tenants.view_tenant", tenants_near_limit),
    ("policies.view_restriction", restrictions_ending),
    ("policies.view_limitrequest", limit_requests_open),
    ("policies.view_limitrecommendation", recommendations_differing),
    ("notifications.view_webhookendpoint", webhooks_failing),
    ("policies.view_anomalyalert", anomalies_open),
]


def work_queues(*, user: User | AnonymousUser, now: datetime | None = None) -> list[Queue]:
    """The queues ``user`` may see, one query each (permissions are read once, cached on
    the user)."""
    now = now or timezone.now()
    return [queue(now) for permission, queue in QUEUES if user.has_perm(permission)]
