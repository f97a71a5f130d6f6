"""The limit-change notice says every term that changes, before and after, and from when,
in the tenant's language (the figures come from limit_rule_set's payload)."""

from __future__ import annotations

import pytest

from notifications.models import Notification
from tests.notifications.test_language import CALL, ENGLISH, RAW, render, texts

K = Notification.Kind

CHANGES = {
    **CALL,
    "effective_from": "2026-12-04T12:00:00+00:00",
    "changes": [
        {"term": "warning_thresholds", "before": [50, 80, 90, 100], "after": [60, 90],
         "effective_from": "2026-11-20T12:00:00+00:00"},
        {"term": "hard_limit", "before": None, "after": 420,
         "effective_from": "2026-12-04T12:00:00+00:00"},
        {"term": "action", "before": "notify_only", "after": "charge_overage",
         "effective_from": "2026-12-04T12:00:00+00:00"},
        {"term": "carry_over", "before": "carry", "after": "forgive",
         "effective_from": "2026-12-04T12:00:00+00:00"},
        {"term": "included_units", "before": 2000, "after": 1500,
         "effective_from": "2026-12-31T23:00:00+00:00"},
    ],
    "included_units": 1500,
    "before_included_units": 2000,
    "hard_limit": 420,
    "before_hard_limit": None,
    "action_past_limit": "charge_overage",
    "restrict_units": None,
    "restrict_window": "",
    "enforcement": False,
    "customer_reason": "",
}  # fmt: skip


def test_each_changing_term_is_said_with_its_date_in_english():
    lines = render(K.LIMIT_CHANGED, "en", CHANGES).lines
    assert lines == [
        "From 20 November 2026, 13:00 CET, we warn you at 60%, 90% of your credits.",
        "From 4 December 2026, 13:00 CET, at most 420 units beyond your credits can be "
        "used (before: no ceiling).",
        "From 4 December 2026, 13:00 CET: Further use is charged per unit as your fee "
        "schedule sets out.",
        "From 4 December 2026, 13:00 CET, use beyond your credits is no longer carried "
        "into the next period.",
        "From 1 January 2027, your Phone calls credits are 1,500 units per period (before: "
        "2,000; unit: minute).",
    ]


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_notice_has_no_raw_figures(language):
    for text in texts(render(K.LIMIT_CHANGED, language, CHANGES)):
        assert not RAW.search(text), text


def test_the_notice_is_german_for_a_german_tenant():
    german = render(K.LIMIT_CHANGED, "de", CHANGES)
    assert german.lines[1].startswith("Ab 4. Dezember 2026")
    assert "420 Einheiten" in german.lines[1] and "keine Obergrenze" in german.lines[1]
    for text in texts(german):
        assert not ENGLISH.search(text), text


def test_an_enforcement_measure_gives_the_reason_written_for_the_customer():
    payload = {**CHANGES, "enforcement": True, "customer_reason": "Spam-Beschwerden."}
    assert render(K.LIMIT_CHANGED, "de", payload).lines[-1] == (
        "Diese Änderung gilt sofort, als Maßnahme nach der Fair-Use-Richtlinie: Spam-Beschwerden."
    )
