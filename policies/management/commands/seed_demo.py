"""A realistic demo: a dozen tenants, months of daily usage, staff and customer logins.

Safe to run twice: tenants and users are looked up before they are created, and
usage goes through the ingestion service with deterministic event ids, so a
repeated run records nothing twice. It sends nothing: what its history would have
notified is recorded as history (``notifications.services.notify.history_recorded``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from metering.models import Channel, UsageEvent
from metering.services.ingest import usage_record_batch
from metering.services.periods import month_bounds, period_bounds
from notifications.models import AlertRecipient
from notifications.services.alert_recipients import alert_recipient_add
from notifications.services.notify import history_recorded
from policies.management.demo_anomaly import anomaly_alert, anomaly_traffic
from policies.management.demo_staff import staff_role_users
from policies.models import (
    AlertThreshold,
    FeeSchedule,
    LimitRecommendation,
    LimitRequest,
    PolicyVersion,
    TopUpPack,
)
from policies.selectors import effective_rule
from policies.services.alerts import alert_threshold_add
from policies.services.close import periods_close_due
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.limit_requests import limit_request_create
from policies.services.policy import policy_version_publish
from policies.services.recommend import recommendations_compute
from tenants.models import ApiKey, Membership, Scope, Tenant
from tenants.services import api_key_create, membership_add, tenant_create

STAFF_USERNAME, STAFF_PASSWORD = "staff", "creditguard-staff"
CUSTOMER_USERNAME, CUSTOMER_PASSWORD = "customer", "creditguard-customer"
# The customer portal's logins of the first tenant, one per role (all with
# CUSTOMER_PASSWORD); the owner is also a viewer of the second tenant, to switch to.
CUSTOMER_LOGINS = [
    (CUSTOMER_USERNAME, Membership.Role.OWNER),
    ("customer-admin", Membership.Role.ADMIN),
    ("customer-viewer", Membership.Role.VIEWER),
]

# slug, name, industry, size band, language, time zone, share of the included
# credits used by now this month (email, sms, call), monthly growth of usage
DemoTenant = tuple[str, str, str, str, str, str, tuple[float, float, float], float]
TENANTS: list[DemoTenant] = [
    ("nordlicht-moebel", "Nordlicht Möbel GmbH", "retail", "50-249", "de", "Europe/Berlin",
     (0.45, 0.86, 0.30), 0.10),
    ("alpenblick-hotels", "Alpenblick Hotels AG", "hospitality", "250-999", "de", "Europe/Vienna",
     (0.62, 0.93, 0.55), 0.05),
    ("praxis-dr-weber", "Praxis Dr. Weber", "healthcare", "1-9", "de", "Europe/Berlin",
     (0.20, 0.35, 0.12), 0.00),
    ("brightcart", "BrightCart Ltd", "ecommerce", "50-249", "en", "Europe/London",
     (1.00, 1.25, 0.40), 0.15),
    ("kontor-finanz", "Kontor Finanz eG", "finance", "250-999", "de", "Europe/Berlin",
     (0.51, 0.48, 0.81), 0.02),
    ("lernwerk", "Lernwerk Akademie", "education", "10-49", "de", "Europe/Zurich",
     (0.30, 0.58, 0.22), -0.05),
    ("swiftfreight", "SwiftFreight Logistics", "logistics", "1000+", "en", "America/New_York",
     (0.74, 1.12, 0.95), 0.08),
    ("stadtwerke-musterstadt", "Stadtwerke Musterstadt", "public_sector", "1000+", "de",
     "Europe/Berlin", (0.40, 0.52, 0.33), 0.01),
    ("codecraft", "CodeCraft Software", "software", "10-49", "en", "Europe/Dublin",
     (0.92, 0.81, 0.10), 0.20),
    ("baeckerei-huber", "Bäckerei Huber", "retail", "1-9", "de", "Europe/Berlin",
     (0.15, 0.99, 0.05), 0.00),
    ("medicare-plus", "MediCare Plus", "healthcare", "250-999", "en", "Europe/London",
     (0.66, 0.71, 1.05), 0.04),
    ("urbanstay", "UrbanStay Apartments", "hospitality", "10-49", "en", "Europe/Lisbon",
     (0.55, 0.89, 0.60), 0.12),
]  # fmt: skip
HISTORY_MONTHS = 3
# Tenants that went past their included credits last month, by channel (the share used):
# the months close with final overage charges in the staff console's decision queue.
LAST_MONTH_OVER: dict[str, dict[str, float]] = {
    "brightcart": {"sms": 1.18},
    "swiftfreight": {"call": 1.09},
}
EVENTS_PER_DAY = 3


class Command(BaseCommand):
    help = "Load the demo: tenants with months of usage history, a staff and a customer login."

    def handle(self, *args: Any, **options: Any) -> None:
        # The demo's past is recorded, not sent: its welcomes, back-dated fee notices and
        # the closes of its past months are history nobody is to receive now. What the
        # demo's current figures call for, the worker's first evaluation sends: at most
        # one message per tenant and channel.
        with history_recorded():
            self._load()

    def _load(self) -> None:
        now = timezone.now()
        channels = list(
            Channel.objects.filter(code__in=["email", "sms", "call"]).order_by("sort_order")
        )
        created_tenants = 0
        recorded = 0
        tenants = []
        for row in TENANTS:
            tenant, created = self._tenant(row)
            created_tenants += created
            tenants.append(tenant)
        # The fee schedules first, told to the tenants months ago: last month's overage
        # is priced by them when the month closes.
        self._offers_and_fees(now)
        for index, (tenant, row) in enumerate(zip(tenants, TENANTS, strict=True)):
            if not UsageEvent.objects.for_tenant(tenant).exists():
                recorded += self._history(tenant, row, channels, now, seed=index)
                recorded += anomaly_traffic(tenant=tenant, now=now)
        # Past months close as the worker closes them: charges final, overage carried.
        periods_close_due(now=now)

        first = Tenant.objects.get(slug=TENANTS[0][0])
        staff = self._user(STAFF_USERNAME, STAFF_PASSWORD, staff=True)
        role_users = staff_role_users(password=STAFF_PASSWORD)
        customers = self._customers(first, Tenant.objects.get(slug=TENANTS[1][0]))
        key_line = self._demo_key(first, customers[0][0])
        if not LimitRecommendation.objects.exists():
            recommendations_compute(now=now)
        self._limit_request(first, customers[0][0], now)
        self._alerts(first, customers[0][0], now)
        self._announced_policy(now)
        anomaly_alert(now=now)

        self.stdout.write(
            f"Demo ready: {len(TENANTS)} tenants ({created_tenants} new), "
            f"{recorded} usage events recorded by this run."
        )
        self.stdout.write(
            f"  Staff login (admin): {staff.username} / {STAFF_PASSWORD} (superuser); one per role:"
        )
        for user, role in role_users:
            self.stdout.write(f"    {role:<14} {user.username} / {STAFF_PASSWORD}")
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        self.stdout.write(f"  Customer portal ({first.name}): {base}/login/")
        for user, role in customers:
            self.stdout.write(f"    {role:<6} {user.username} / {CUSTOMER_PASSWORD}")
        self.stdout.write(f"  {key_line}")

    def _offers_and_fees(self, now: datetime) -> None:
        """Top-up packs per channel and a notified overage fee schedule (once)."""
        prices = {"email": (5000, "9.90", "0.002"), "sms": (500, "29.00", "0.065"),
                  "call": (200, "24.00", "0.13")}  # fmt: skip
        for code, (units, price, unit_price) in prices.items():
            channel = Channel.objects.get(code=code)
            TopUpPack.objects.get_or_create(
                channel=channel, units=units, defaults={"price": Decimal(price)}
            )
            if not FeeSchedule.objects.filter(channel=channel, tenant__isnull=True).exists():
                schedule = fee_schedule_create(
                    channel=channel,
                    name=f"{channel.name} overage",
                    tiers=[(10_000, unit_price), (None, str(Decimal(unit_price) * Decimal("0.8")))],
                    effective_from=now - timedelta(days=120),
                    reason="Demo price list",
                    now=now - timedelta(days=120),
                )
                fee_schedule_notify(schedule=schedule, now=now - timedelta(days=120))

    def _tenant(self, row: DemoTenant) -> tuple[Tenant, bool]:
        slug, name, industry, size_band, language, time_zone = row[:6]
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is not None:
            return tenant, False
        tenant = tenant_create(
            slug=slug,
            name=name,
            industry=industry,
            size_band=size_band,
            language=language,
            time_zone=time_zone,
            contact_email=f"billing@{slug}.example",
            contact_name="Accounts team",
        )
        return tenant, True

    def _history(
        self, tenant: Tenant, row: DemoTenant, channels: list[Channel], now: datetime, *, seed: int
    ) -> int:
        """Daily usage from HISTORY_MONTHS months back until now, shaped so that this
        month stands at the row's share of the included credits."""
        shares, growth = row[6], row[7]
        over_last_month = LAST_MONTH_OVER.get(tenant.slug, {})
        rng = random.Random(seed)  # noqa: S311 - demo data, not security
        current = period_bounds(tenant=tenant, at=now)
        local_start = current.starts_at.astimezone(tenant.tzinfo)
        year, month = local_start.year, local_start.month
        for _ in range(HISTORY_MONTHS):
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        day = month_bounds(year, month, tenant.tzinfo).starts_at
        elapsed_days = max((now - current.starts_at).total_seconds() / 86400, 0.25)

        # Events are sent a week at a time, each batch "now" just after its last
        # event, as the tenant's platform would have sent them back then.
        batches: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        while day < now:
            for channel, share in zip(channels, shares, strict=True):
                for slot in range(EVENTS_PER_DAY):
                    at = day + timedelta(hours=8 + slot * 4, minutes=rng.randint(0, 59))
                    if at >= now:
                        continue
                    bounds = period_bounds(tenant=tenant, at=at)
                    months_back = round((current.starts_at - bounds.starts_at).days / 30.4)
                    level = share / ((1 + growth) ** months_back)
                    if months_back == 0:
                        daily = level * channel.default_included_units / elapsed_days
                    elif months_back == 1 and channel.code in over_last_month:
                        days = (bounds.ends_at - bounds.starts_at).days
                        share_used = over_last_month[channel.code]
                        daily = share_used * channel.default_included_units / days
                    else:
                        days = (bounds.ends_at - bounds.starts_at).days
                        daily = level * 0.9 * channel.default_included_units / days
                    quantity = max(1, round(daily / EVENTS_PER_DAY * rng.uniform(0.8, 1.2)))
                    batches[(bounds.label, at.isocalendar()[1])].append(
                        {
                            "id": f"demo-{channel.code}-{at:%Y%m%d}-{slot}",
                            "channel": channel.code,
                            "quantity": quantity,
                            "occurred_at": at.isoformat(),
                            "metadata": {
                                "campaign": rng.choice(["newsletter", "reminder", "alert"])
                            },
                        }
                    )
            day += timedelta(days=1)

        recorded = 0
        with transaction.atomic():
            for events in sorted(batches.values(), key=lambda batch: batch[0]["occurred_at"]):
                latest = max(datetime.fromisoformat(event["occurred_at"]) for event in events)
                result = usage_record_batch(
                    tenant=tenant,
                    payload={"events": events},
                    now=latest.astimezone(UTC) + timedelta(minutes=1),
                )
                recorded += result.accepted
        return recorded

    def _limit_request(self, tenant: Tenant, owner: User, now: datetime) -> None:
        """An open limit request of the first tenant (once), for the staff console's queue
        and the portal's list, through the service the portal uses (audited)."""
        if LimitRequest.objects.for_tenant(tenant).exists():
            return
        sms = Channel.objects.get(code="sms")
        current = effective_rule(tenant=tenant, channel=sms, at=now).included_units
        limit_request_create(
            tenant=tenant, channel=sms, included_units=current * 2,
            expected_volume=current * 2 - current // 10, requested_by=owner, now=now,
            reason="Our spring campaign doubles the appointment reminders by SMS until June.",
        )  # fmt: skip

    def _announced_policy(self, now: datetime) -> None:
        """A version 1.1 of the fair use policy announced for after the notice period, with
        its summary (once): the portal's policy page and overview show what is coming."""
        if PolicyVersion.objects.filter(label="1.1").exists():
            return
        current = PolicyVersion.objects.get(label="1.0")
        days = settings.POLICY_NOTICE_DAYS
        version = PolicyVersion.objects.create(
            label="1.1",
            text_de=current.text_de.replace(
                "rechtzeitig in Kenntnis gesetzt",
                f"mindestens {days} Tage vor ihrem Inkrafttreten mit einer Zusammenfassung im "
                "Kundenportal in Kenntnis gesetzt, wo sie sie bestätigen",
            ),
            text_en=current.text_en.replace(
                "informed of material changes to the policy in good time",
                f"informed of material changes to the policy at least {days} days before they "
                "take effect, with a summary in the customer portal, where they acknowledge "
                "them",
            ),
            summary_de=(
                f"Abschnitt 8 sagt genauer, wie wir Änderungen ankündigen: mindestens {days} "
                "Tage im Voraus, mit einer Zusammenfassung wie dieser im Kundenportal, wo Sie "
                "sie bestätigen. Ihre Guthaben, Grenzen und Gebühren ändern sich nicht."
            ),
            summary_en=(
                f"Section 8 says more precisely how we announce changes: at least {days} days "
                "ahead, with a summary like this one in the customer portal, where you "
                "acknowledge them. Your credits, limits and fees do not change."
            ),
            effective_from=now + timedelta(days=days + 14),
            material=True,
        )
        policy_version_publish(version=version, actor=None, now=now)

    def _alerts(self, tenant: Tenant, owner: User, now: datetime) -> None:
        """The first tenant's own alerts (once): a warning at 65 % of its SMS credits and
        an on-call address that receives the warnings, through the portal's services."""
        if not AlertThreshold.objects.for_tenant(tenant).exists():
            alert_threshold_add(
                tenant=tenant, channel=Channel.objects.get(code="sms"), percent=65,
                actor=owner, now=now,
            )  # fmt: skip
        if not AlertRecipient.objects.for_tenant(tenant).exists():
            alert_recipient_add(
                tenant=tenant, email=f"bereitschaft@{tenant.slug}.example", actor=owner, now=now
            )

    def _customers(self, first: Tenant, second: Tenant) -> list[tuple[User, str]]:
        """The portal's demo logins, made members through the service (audited)."""
        customers: list[tuple[User, str]] = []
        for username, role in CUSTOMER_LOGINS:
            user = self._user(username, CUSTOMER_PASSWORD, staff=False)
            if not Membership.objects.filter(user=user, tenant=first).exists():
                membership_add(tenant=first, user=user, role=role, actor=None)
            customers.append((user, role))
        owner = customers[0][0]
        if not Membership.objects.filter(user=owner, tenant=second).exists():
            membership_add(tenant=second, user=owner, role=Membership.Role.VIEWER, actor=None)
        return customers

    def _user(self, username: str, password: str, *, staff: bool) -> User:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@creditguard.example"}
        )
        user.is_staff = staff
        user.is_superuser = staff
        user.set_password(password)
        user.save()
        return user

    def _demo_key(self, tenant: Tenant, user: User) -> str:
        if ApiKey.objects.for_tenant(tenant).filter(name="demo key", revoked_at=None).exists():
            return (
                f"The demo API key of {tenant.slug} was shown when it was created; issue "
                f"another with: manage.py create_api_key --tenant {tenant.slug} "
                "--scopes usage:write,usage:read"
            )
        issued = api_key_create(
            tenant=tenant,
            name="demo key",
            scopes=[Scope.USAGE_WRITE, Scope.USAGE_READ, Scope.WEBHOOKS_MANAGE],
            created_by=user,
        )
        return f"API key of {tenant.slug} (shown once): {issued.raw_key}"
