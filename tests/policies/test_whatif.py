"""What-if (issue 13): the preview's figures, read by one statement for the whole cohort,
equal a recomputation tenant by tenant through the ORM and the project's own readers
(``effective_rule``, ``fee_schedule_in_effect``, ``forecast``); applying it changes
exactly the previewed tenants, through the services, with notices."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db.models import Case, F, Sum, When

from creditguard.errors import Conflict, InvalidInput
from creditguard.models import AuditEntry
from metering.levels import usage_level
from metering.models import Balance, BillingPeriod, Channel, Grant
from metering.selectors import forecast
from metering.services.ingest import usage_record_batch
from metering.services.ledger import grant_create, grants_expire_due
from metering.services.periods import PeriodBounds, period_bounds, period_get_or_open
from notifications.models import Notification
from policies.models import CohortDefault, FeeSchedule, FeeScheduleNotice, LimitRule
from policies.selectors import effective_rule
from policies.services.fees import (
    fee_for_units,
    fee_schedule_create,
    fee_schedule_in_effect,
    fee_schedule_notify,
)
from policies.services.whatif import whatif_apply
from policies.whatif import Proposal, ProposedSchedule, Scope, whatif_preview
from tenants.models import Tenant
from tests.conftest import event
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 1, 1, tzinfo=UTC)
RETAIL, SMALL = Tenant.Industry.RETAIL, Tenant.SizeBand.SMALL
TIERS = ((100, Decimal("0.08")), (None, Decimal("0.05")))


def use(tenant: Tenant, key: str, quantity: int, at: datetime) -> None:
    usage_record_batch(
        tenant=tenant,
        payload={"events": [event(key, quantity=quantity, occurred_at=at.isoformat())]},
        now=at + timedelta(minutes=5),
    )


@pytest.fixture
def cohort(db) -> list[Tenant]:
    """Fourteen retail × 10–49 tenants with varied terms and use in October and November
    (UTC and Berlin), one of them on the cohort default without a rule of its own; two
    tenants outside the cohort; a global SMS schedule and one tenant's own."""
    rng = random.Random(13)
    sms = Channel.objects.get(code="sms")
    CohortDefault.objects.create(industry=RETAIL, size_band=SMALL, channel=sms,
                                 included_units=300, hard_limit=50)  # fmt: skip
    tenants = []
    with time_machine.travel(OCTOBER - timedelta(hours=1), tick=False):
        for n in range(14):
            tenants.append(TenantFactory.create(
                slug=f"shop-{n}", name=f"Shop {n:02}", industry=RETAIL, size_band=SMALL,
                time_zone="UTC" if n % 3 else "Europe/Berlin",
            ))  # fmt: skip
        outside = [
            TenantFactory.create(slug="bank", name="Bank", industry="finance", size_band=SMALL),
            TenantFactory.create(slug="big-shop", name="Big shop", industry=RETAIL,
                                 size_band=Tenant.SizeBand.LARGE),
        ]  # fmt: skip
    LimitRule.objects.filter(tenant=tenants[0]).delete()  # on the cohort default
    for n, tenant in enumerate(tenants[1:], start=1):
        set_rule(
            tenant, "sms", included_units=rng.choice([200, 400, 600]),
            hard_limit=rng.choice([None, 0, 100, 300]),
            action=rng.choice(["notify_only", "charge_overage", "suspend"]),
            warning_thresholds=rng.choice([[50, 80, 100], [75, 100, 150]]), now=OCTOBER,
        )  # fmt: skip
    everyone = tenants + outside
    # A promotional grant that expired within October (only what was drawn counted) and
    # October's included credits expired at the sweep after its end (all of them counted).
    for tenant in tenants[4:7]:
        period = period_get_or_open(tenant=tenant, bounds=period_bounds(tenant=tenant, at=OCTOBER))
        grant_create(tenant=tenant, channel=sms, period=period, kind="promotional", units=200,
                     expires_at=datetime(2026, 10, 12, tzinfo=UTC), now=OCTOBER)  # fmt: skip
    for n, tenant in enumerate(everyone):
        use(tenant, "oct", rng.randrange(0, 900), datetime(2026, 10, 10 + n % 10, 9, tzinfo=UTC))
        if n % 5:
            use(tenant, "nov", rng.randrange(1, 500), datetime(2026, 11, 5 + n % 10, 9, tzinfo=UTC))
    grants_expire_due(now=datetime(2026, 10, 25, tzinfo=UTC))
    grants_expire_due(now=NOW)
    schedule = fee_schedule_create(channel=sms, name="SMS standard", tiers=[(None, "0.10")],
                                   now=OCTOBER)  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=OCTOBER - timedelta(days=40))
    own = fee_schedule_create(
        channel=sms,
        name="Shop 3's",
        tenant=tenants[3],
        tiers=[(50, "0.20"), (None, "0.02")],
        mode="volume",
        now=OCTOBER,
    )
    FeeScheduleNotice.objects.create(schedule=own, tenant=tenants[3], notified_at=OCTOBER,
                                     effective_at=OCTOBER)  # fmt: skip
    return tenants


def credits_of(balance: Balance | None, period: BillingPeriod) -> tuple[int, int] | None:
    if balance is None:
        return None
    grants = Grant.objects.filter(balance=balance)
    value = Case(
        When(expired_at__lt=period.ends_at, then=F("drawn_units")),
        default=F("units") - F("reduced_units"),
    )
    total = grants.aggregate(units=Sum(value))["units"] or 0
    included = grants.filter(kind="included").aggregate(
        units=Sum(F("units") - F("reduced_units"))
    )["units"] or 0  # fmt: skip
    return total, included


def expected(tenant: Tenant, changes: dict, schedule_proposed: ProposedSchedule | None):
    """The tenant's figures recomputed on their own: (last period, this period), each
    ((thresholds, denied, overage units, amount) now, (…) proposed)."""
    sms = Channel.objects.get(code="sms")
    rule = effective_rule(tenant=tenant, channel=sms, at=NOW).terms()
    after = rule.with_changes(changes)
    schedule = fee_schedule_in_effect(tenant=tenant, channel=sms, at=NOW)
    figures = []
    for period in BillingPeriod.objects.filter(tenant=tenant).order_by("starts_at"):
        balance = Balance.objects.filter(tenant=tenant, channel=sms, period=period).first()
        credits = credits_of(balance, period)
        available = credits[0] if credits else rule.included_units
        used = balance.used if balance else 0
        if period.ends_at > NOW:
            bounds = PeriodBounds(period.label, period.starts_at, period.ends_at)
            projected = forecast(used=used, available=available, bounds=bounds, now=NOW)[0]
            used = projected if projected is not None else used
        pair = []
        for terms, fees, room in (
            (rule, schedule, available),
            (after, schedule_proposed or schedule, available + after.included_units
             - rule.included_units),
        ):  # fmt: skip
            if terms.action == "suspend":
                allowed = min(used, room)
            elif terms.hard_limit is not None:
                allowed = min(used, room + terms.hard_limit)
            else:
                allowed = used
            overage = max(allowed - room, 0)
            amount = Decimal("0.00")
            if fees is not None:
                tiers = fees.tiers_read if hasattr(fees, "tiers_read") else list(
                    fees.tiers.all())  # fmt: skip
                amount = fee_for_units(mode=fees.mode, tiers=tiers, units=overage,
                                       currency=fees.currency)  # fmt: skip
            level = usage_level(used=used, available=room)
            crossed = tuple(t for t in terms.warning_thresholds if level >= t)
            pair.append((crossed, used - allowed, overage, amount))
        figures.append((period.label, tuple(pair)))
    return rule, after, figures


def summary_of(row) -> tuple:
    return tuple((f.crossed, f.denied_units, f.overage_units, f.overage_amount) for f in row)


CHANGES = {"included_units": 250, "hard_limit": 150, "warning_thresholds": [60, 90, 100]}


def test_preview_equals_a_recomputation_tenant_by_tenant(cohort):
    sms = Channel.objects.get(code="sms")
    proposal = Proposal(changes=CHANGES, schedule=ProposedSchedule("graduated", "EUR", TIERS))
    preview = whatif_preview(
        scope=Scope(channel=sms, industry=RETAIL, size_band=SMALL), proposal=proposal, now=NOW
    )
    assert [row.slug for row in preview.rows] == [t.slug for t in cohort]
    by_slug = {t.slug: t for t in cohort}
    totals: dict[str, dict[int, Counter]] = {
        "last": defaultdict(Counter),
        "this": defaultdict(Counter),
    }
    for row in preview.rows:
        current, proposed, periods = expected(by_slug[row.slug], CHANGES, proposal.schedule)
        assert (row.current, row.proposed) == (current, proposed)
        assert set(row.worse) == set(worse_terms_of(current, proposed))
        notice = NOW + timedelta(days=settings.LIMIT_NOTICE_DAYS)
        if "included_units" in row.worse:  # at the next period start in its time zone
            tenant = by_slug[row.slug]
            assert row.takes_effect == period_bounds(tenant=tenant, at=notice).ends_at
            assert row.takes_effect > notice
        else:
            assert row.takes_effect == (notice if row.worse else NOW)
        labels = [label for label, _ in periods]
        assert row.last_label == "2026-10" and labels[0] == "2026-10"
        assert summary_of(row.last) == periods[0][1]
        assert row.this_label == ("2026-11" if "2026-11" in labels else "")
        if row.this is not None:
            assert summary_of(row.this) == periods[1][1]
        for name, pair in (("last", row.last), ("this", row.this)):
            for side, figures in enumerate(pair or ()):
                totals[name][side].update(figures.crossed)
                totals[name][side]["denied"] += figures.denied_units > 0
    assert sum(1 for row in preview.rows if row.this) == 11  # three had no November use
    for name, summary in (("last", preview.last), ("this", preview.this)):
        for threshold, now_count, proposed_count in summary.crossing:
            assert (now_count, proposed_count) == (
                totals[name][0][threshold],
                totals[name][1][threshold],
            )
        assert summary.denied == (totals[name][0]["denied"], totals[name][1]["denied"])
    assert preview.last.overage[1] == {
        "proposed (EUR)": sum(
            (r.last[1].overage_amount for r in preview.rows if r.last), Decimal(0)
        )
    }
    assert sum(preview.last.overage[0].values(), Decimal(0)) == sum(
        (r.last[0].overage_amount for r in preview.rows if r.last), Decimal(0)
    )
    assert preview.last.denied[1] > 0 and preview.worse  # the seed makes the test bite


def worse_terms_of(before, after):
    from policies.terms import worse_terms

    return worse_terms(before, after)


def test_one_tenant_scope_and_the_cohort_default(cohort):
    sms = Channel.objects.get(code="sms")
    one = whatif_preview(scope=Scope(channel=sms, tenant=cohort[0]),
                         proposal=Proposal(changes={"included_units": 500}), now=NOW)  # fmt: skip
    assert [row.slug for row in one.rows] == ["shop-0"]
    row = one.rows[0]
    assert row.current.included_units == 300 and row.current.hard_limit == 50  # the default
    assert not row.worse and row.takes_effect == NOW


def test_apply_changes_exactly_the_previewed_tenants_with_notices(cohort):
    sms = Channel.objects.get(code="sms")
    scope = Scope(channel=sms, industry=RETAIL, size_band=SMALL)
    proposal = Proposal(changes=CHANGES, schedule=ProposedSchedule("graduated", "EUR", TIERS))
    preview = whatif_preview(scope=scope, proposal=proposal, now=NOW)
    rules_before = set(LimitRule.objects.values_list("pk", flat=True))
    applied = whatif_apply(scope=scope, proposal=proposal, digest=preview.digest(),
                           reason="Retail review", actor=None, now=NOW)  # fmt: skip
    changed = {row.slug for row in preview.rows if row.changes_terms}
    written = set(
        LimitRule.objects.exclude(pk__in=rules_before).values_list("tenant__slug", flat=True)
    )
    assert written == changed and changed
    assert applied.changed == len(preview.rows) == 14
    for row in preview.rows:
        tenant = Tenant.objects.get(slug=row.slug)
        assert row.takes_effect is not None
        before = effective_rule(
            tenant=tenant, channel=sms, at=row.takes_effect - timedelta(seconds=1)
        )
        later = effective_rule(tenant=tenant, channel=sms, at=row.takes_effect)
        assert later.terms() == row.proposed
        assert before.terms() != row.proposed or row.takes_effect == NOW
    worse = {row.slug for row in preview.rows if row.worse}
    told = set(Notification.objects.filter(kind="limit_changed", created_at__gte=NOW)
               .values_list("tenant__slug", flat=True))  # fmt: skip
    assert told == worse and applied.notified_worse == len(worse)
    own = FeeSchedule.objects.filter(tenant__isnull=False, created_at=NOW)
    assert sorted(own.values_list("tenant__slug", flat=True)) == sorted(t.slug for t in cohort)
    assert applied.notified_fees == 14
    assert set(
        Notification.objects.filter(kind="fee_schedule_notice", created_at__gte=NOW).values_list(
            "tenant__slug", flat=True
        )
    ) == {t.slug for t in cohort}
    assert (
        not LimitRule.objects.filter(tenant__slug__in=["bank", "big-shop"])
        .exclude(pk__in=rules_before)
        .exists()
    )
    entry = AuditEntry.objects.get(action="whatif.apply")
    assert entry.after["changed"] == 14 and entry.reason == "Retail review"
    # The same change again: what worsens is already announced, the rest in force.
    again = whatif_preview(scope=scope, proposal=Proposal(changes=CHANGES), now=NOW)
    assert {row.slug for row in again.rows if row.already_scheduled} == worse
    assert again.changed == [] and again.worse == []
    rules = LimitRule.objects.count()
    whatif_apply(scope=scope, proposal=Proposal(changes=CHANGES), digest=again.digest(),
                 reason="twice", actor=None, now=NOW)  # fmt: skip
    assert LimitRule.objects.count() == rules


def test_apply_refuses_when_the_scope_changed_since_the_preview(cohort):
    sms = Channel.objects.get(code="sms")
    scope = Scope(channel=sms, industry=RETAIL, size_band=SMALL)
    proposal = Proposal(changes={"included_units": 1000})
    digest = whatif_preview(scope=scope, proposal=proposal, now=NOW).digest()
    TenantFactory.create(slug="newcomer", name="Newcomer", industry=RETAIL, size_band=SMALL)
    before = LimitRule.objects.count()
    with pytest.raises(Conflict):
        whatif_apply(scope=scope, proposal=proposal, digest=digest, reason="x", actor=None,
                     now=NOW)  # fmt: skip
    assert LimitRule.objects.count() == before
    with pytest.raises(InvalidInput):
        whatif_apply(scope=scope, proposal=proposal, digest=digest, reason=" ", actor=None,
                     now=NOW)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "proposed_october"),
    [
        # Fewer included credits: less room to carry into; 110 over, 20 carried, 90 owed.
        ({"included_units": 20}, (110, 20, Decimal("9.00"))),
        # Carry-over ended: October's 30 over are all owed.
        ({"carry_over": "forgive"}, (30, 0, Decimal("3.00"))),
    ],
)
def test_overage_under_a_carry_rule_is_carried_as_far_as_the_next_credits_go(
    db, changes, proposed_october
):
    """The close carries a carry rule's overage into the next period's included credits
    as far as they go, and charges only the rest: the what-if prices what is owed so."""
    sms = Channel.objects.get(code="sms")
    with time_machine.travel(OCTOBER - timedelta(hours=1), tick=False):
        tenant = TenantFactory.create(slug="carrier", name="Carrier", time_zone="UTC")
    set_rule(tenant, "sms", included_units=100, action="charge_overage", carry_over="carry",
             now=OCTOBER)  # fmt: skip
    schedule = fee_schedule_create(channel=sms, name="SMS standard", tiers=[(None, "0.10")],
                                   now=OCTOBER)  # fmt: skip
    fee_schedule_notify(schedule=schedule, now=OCTOBER - timedelta(days=40))
    use(tenant, "oct", 130, datetime(2026, 10, 10, 9, tzinfo=UTC))  # 30 over 100
    preview = whatif_preview(scope=Scope(channel=sms, tenant=tenant),
                             proposal=Proposal(changes=changes), now=NOW)  # fmt: skip
    (row,) = preview.rows
    assert row.last is not None
    now_terms, proposed = row.last
    # In force: the 30 over all fit in November's 100 included credits; nothing owed.
    assert (now_terms.overage_units, now_terms.carried_units) == (30, 30)
    assert now_terms.overage_amount == Decimal("0.00")
    assert (proposed.overage_units, proposed.carried_units, proposed.overage_amount) == (
        proposed_october
    )
    assert preview.last.overage_tenants == (0, 1)
    assert preview.last.overage == ({}, {"SMS standard (EUR)": proposed_october[2]})
