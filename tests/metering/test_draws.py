"""The draw planning is pure: grants in memory, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from metering.models import Grant
from metering.services.draws import Draw, draw_plan, grant_is_drawable, reduction_plan

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def grant(
    pk: int,
    *,
    units: int = 10,
    kind: str = Grant.Kind.PROMOTIONAL,
    expires_in_days: int | None = None,
    priority: int = 100,
    drawn: int = 0,
) -> Grant:
    return Grant(
        pk=pk,
        kind=kind,
        units=units,
        drawn_units=drawn,
        priority=priority,
        expires_at=None if expires_in_days is None else NOW + timedelta(days=expires_in_days),
        created_at=NOW - timedelta(days=30) + timedelta(seconds=pk),
    )


def test_usage_draws_soonest_expiry_first_and_never_expiring_last():
    never, later, sooner = grant(1), grant(2, expires_in_days=9), grant(3, expires_in_days=2)

    plan = draw_plan([never, later, sooner], 25, NOW)

    assert plan == [Draw(grant=sooner, units=10), Draw(grant=later, units=10), Draw(never, 5)]


def test_equal_expiry_draws_the_lowest_priority_number_then_the_oldest():
    older, newer, preferred = grant(1), grant(2), grant(3, priority=10)

    plan = draw_plan([newer, older, preferred], 25, NOW)

    assert [draw.grant for draw in plan] == [preferred, older, newer]


def test_usage_beyond_every_grant_is_a_draw_without_grant():
    plan = draw_plan([grant(1, units=4, drawn=1)], 5, NOW)

    assert plan == [Draw(grant=plan[0].grant, units=3), Draw(grant=None, units=2)]


def test_expired_and_exhausted_grants_are_not_drawable():
    expired = grant(1, expires_in_days=-1)
    exhausted = grant(2, drawn=10)

    assert not grant_is_drawable(expired, NOW)
    assert not grant_is_drawable(exhausted, NOW)
    assert draw_plan([expired, exhausted], 3, NOW) == [Draw(grant=None, units=3)]


def test_reduction_takes_included_credits_first_then_what_would_be_used_last():
    included = grant(1, kind=Grant.Kind.INCLUDED, expires_in_days=15)
    sooner = grant(2, expires_in_days=2)
    never = grant(3)

    plan = reduction_plan([sooner, never, included], 25, NOW)

    assert plan == [Draw(grant=included, units=10), Draw(never, 10), Draw(sooner, 5)]


def test_reduction_never_plans_beyond_the_undrawn_credits():
    assert reduction_plan([grant(1, units=4)], 9, NOW) == [Draw(grant=grant(1, units=4), units=4)]
