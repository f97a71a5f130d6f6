"""What a tenant's console page shows at the top: this period's usage per channel with a
small chart of the last twelve periods (from the balances, never the events), and what
waits for staff or takes effect later — scheduled rule versions, open top-up offers,
overage charges awaiting a decision, open limit requests — each linked to where staff
act. A fixed number of queries, whatever the tenant's history."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from creditguard.locale_format import instant_text, money_text, period_text
from metering.levels import NEAR_LIMIT_PERCENT, usage_level, usage_percent
from metering.models import Balance
from metering.selectors import ChannelBalance, balances_for_tenant
from metering.services.periods import PeriodBounds, period_bounds
from policies.models import LimitRequest, LimitRule, OverageCharge, TopUpOffer
from policies.selectors import limit_rules_scheduled
from tenants.models import Tenant

CHART_PERIODS = 12  # this period and the eleven before it
LEVEL_COLOURS = {"ok": "#2f855a", "near": "#b7791f", "over": "#c53030", "none": "#a0aec0"}
CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 180, 40, 3


def level(*, used: int, available: int) -> str:
    """The level's name: "over" past the available credits, "near" from
    ``NEAR_LIMIT_PERCENT``, else "ok" (the badges of the tenants' list use the same marks)."""
    if used > available:
        return "over"
    if usage_level(used=used, available=available) >= NEAR_LIMIT_PERCENT:
        return "near"
    return "ok"


@dataclass(frozen=True)
class PeriodUsage:
    bounds: PeriodBounds
    used: int | None  # None: no balance that period (nothing granted nor used)
    available: int  # the credits granted that period


@dataclass(frozen=True)
class ChannelSummary:
    balance: ChannelBalance
    percent: int | None
    level: str
    history: list[PeriodUsage]  # oldest first, this period last

    @property
    def colour(self) -> str:
        return LEVEL_COLOURS[self.level]

    @property
    def chart(self) -> SafeString:
        return usage_history_svg(self.history, channel=self.balance.channel.name)


@dataclass(frozen=True)
class Item:
    """One line of a section: what it is, where staff act on it, and a note."""

    text: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class TenantSummary:
    period: PeriodBounds
    channels: list[ChannelSummary]
    scheduled: list[LimitRule]
    offers: list[TopUpOffer]
    charges: list[OverageCharge]  # pending: final ones await a decision
    requests: list[LimitRequest]  # open

    tenant: Tenant

    @property
    def period_name(self) -> str:
        return period_text(self.period.label, language="en")

    def _when(self, moment: datetime) -> str:
        return instant_text(moment, language="en", tz=self.tenant.tzinfo)

    @property
    def scheduled_items(self) -> list[Item]:
        """Each future version, on the limit page of its channel (where it is changed)."""
        limit = reverse("admin:policies_tenant_limit", args=[self.tenant.pk])
        items = []
        for rule in self.scheduled:
            ceiling = "no ceiling" if rule.hard_limit is None else f"ceiling {rule.hard_limit:,}"
            items.append(
                Item(
                    text=f"{rule.channel.name} v{rule.version}: {rule.included_units:,} "
                    f"included, {ceiling}, {rule.get_action_display().lower()}",
                    url=f"{limit}?channel={rule.channel_id}",
                    note=f"from {self._when(rule.effective_from)}",
                )
            )
        return items

    @property
    def offer_items(self) -> list[Item]:
        return [
            Item(
                text=f"{offer.units:,} {offer.channel.name} for "
                f"{money_text(offer.price, offer.currency, language='en')}",
                url=reverse("admin:policies_topupoffer_change", args=[offer.pk]),
                note=f"{offer.get_source_display()} · open until {self._when(offer.expires_at)}",
            )
            for offer in self.offers
        ]

    @property
    def charge_items(self) -> list[Item]:
        """Final charges link to the queue's list, filtered to this tenant, where they are
        decided; a charge of a period still open, to its own page."""
        queue = reverse("admin:policies_overagecharge_changelist")
        items = []
        for charge in self.charges:
            text = (
                f"{charge.channel.name} · {period_text(charge.period.label, language='en')}: "
                f"{charge.units:,} units over, "
                f"{money_text(charge.amount, charge.currency, language='en')}"
            )
            if charge.finalized_at is None:
                url = reverse("admin:policies_overagecharge_change", args=[charge.pk])
                note = "period still open: the charge follows the usage"
            else:
                url = f"{queue}?ready=yes&tenant__id__exact={self.tenant.pk}"
                note = f"final since {self._when(charge.finalized_at)}: awaiting a decision"
            items.append(Item(text=text, url=url, note=note))
        return items

    @property
    def request_items(self) -> list[Item]:
        return [
            Item(
                text=f"{request.channel.name}: {request.current_included_units:,} → "
                f"{request.included_units:,} included a period",
                url=reverse("admin:policies_limitrequest_review", args=[request.pk]),
                note=f"asked {self._when(request.requested_at)}",
            )
            for request in self.requests
        ]


def tenant_summary(*, tenant: Tenant, now: datetime | None = None) -> TenantSummary:
    """The summary at ``now``: ``balances_for_tenant`` for this period, one read of the
    balances of the last ``CHART_PERIODS`` periods, and one query each for the scheduled
    versions, open offers, pending charges and open requests."""
    now = now or timezone.now()
    current = balances_for_tenant(tenant=tenant, now=now)
    periods = [current.bounds]
    while len(periods) < CHART_PERIODS:
        periods.append(period_bounds(tenant=tenant, at=periods[-1].starts_at - timedelta(days=1)))
    periods.reverse()
    # What each period granted (included, promotional, bought; less reductions) rather
    # than its balance's ``available``: once a period closes, its unused credits expire
    # and ``available`` falls to what was used.
    past: dict[int, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    for row in (
        Balance.objects.for_tenant(tenant)
        .filter(period__starts_at__gte=periods[0].starts_at)
        .values("channel_id", "period__starts_at", "used")
        .annotate(granted=Sum(F("grants__units") - F("grants__reduced_units")))
    ):
        past[row["channel_id"]][row["period__starts_at"]] = (row["used"], row["granted"] or 0)

    channels = []
    for balance in current.channels:
        history = []
        for bounds in periods:
            used, available = past[balance.channel.pk].get(bounds.starts_at, (None, 0))
            if bounds is current.bounds:  # as read above, also when not opened yet
                used, available = balance.used, balance.available
            history.append(PeriodUsage(bounds=bounds, used=used, available=available))
        channels.append(
            ChannelSummary(
                balance=balance,
                percent=usage_percent(used=balance.used, available=balance.available),
                level=level(used=balance.used, available=balance.available),
                history=history,
            )
        )
    return TenantSummary(
        tenant=tenant,
        period=current.bounds,
        channels=channels,
        scheduled=limit_rules_scheduled(tenant=tenant, at=now),
        offers=list(
            TopUpOffer.objects.for_tenant(tenant)
            .filter(status=TopUpOffer.Status.OPEN, expires_at__gt=now)
            .select_related("channel")
            .order_by("expires_at")
        ),
        charges=list(
            OverageCharge.objects.for_tenant(tenant)
            .filter(status=OverageCharge.Status.PENDING)
            .select_related("tenant", "channel", "period")
            .order_by("period__starts_at", "channel__sort_order")
        ),
        requests=list(
            LimitRequest.objects.for_tenant(tenant)
            .filter(status=LimitRequest.Status.OPEN)
            .select_related("channel")
            .order_by("requested_at")
        ),
    )


def usage_history_svg(history: list[PeriodUsage], *, channel: str) -> SafeString:
    """Units used per period as bars, each coloured by its level against the credits the
    period granted (marked by a tick); a period without a balance is an empty slot."""
    top = max([1, *(p.used or 0 for p in history), *(p.available for p in history)]) * 1.05
    step = CHART_WIDTH / len(history)
    width = max(step - BAR_GAP, 1)
    shapes = []
    for index, period in enumerate(history):
        x, month = index * step, period_text(period.bounds.label, language="en")
        drawn = SafeString("")
        if period.used is None:
            title = f"{month}: no balance"
        else:
            used, granted = period.used, period.available
            percent = usage_percent(used=used, available=granted)
            share = "" if percent is None else f" ({percent} %)"
            title = f"{month}: {used:,} used of {granted:,}{share}"
            height = CHART_HEIGHT * used / top
            tick = CHART_HEIGHT - CHART_HEIGHT * granted / top
            drawn = format_html(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}"/>'
                '<line x1="{x}" x2="{x2}" y1="{tick}" y2="{tick}" stroke="#4a5568" '
                'stroke-width="1.5"/>',
                x=f"{x:.1f}", y=f"{CHART_HEIGHT - height:.1f}", w=f"{width:.1f}",
                h=f"{height:.1f}", colour=LEVEL_COLOURS[level(used=used, available=granted)],
                x2=f"{x + width:.1f}", tick=f"{tick:.1f}",
            )  # fmt: skip
        # The whole slot is the tooltip's target, however short its bar.
        shapes.append(
            format_html(
                '<g><title>{}</title><rect x="{}" y="0" width="{}" height="{}" '
                'fill="transparent"/>{}</g>',
                title,
                f"{x:.1f}",
                f"{width:.1f}",
                CHART_HEIGHT,
                drawn,
            )
        )
    return format_html(
        '<svg class="usage-history" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>{shapes}</svg>',
        w=CHART_WIDTH,
        h=CHART_HEIGHT,
        label=f"{channel}: units used in each of the last {len(history)} periods, "
        "against the credits each granted (the mark)",
        shapes=format_html_join("", "{}", ((shape,) for shape in shapes)),
    )
