"""Every notification in the tenant's language: every kind renders in German and English,
with figures, money, days and times as the language writes them, channel names and units
translated, and every catalogue entry it uses translated."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polib
import pytest
from babel.messages.extract import extract
from django.utils.translation.template import templatize

from notifications.messages import Message, render_message
from notifications.models import Notification

K = Notification.Kind
ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "de" / "LC_MESSAGES"
BERLIN = ZoneInfo("Europe/Berlin")
NBSP = "\u00a0"

CALL = {
    "channel": "call",
    "channel_name": "Phone calls",
    "unit": "minute",
    "channel_labels": {
        "en": {"name": "Phone calls", "unit": "minute"},
        "de": {"name": "Telefonate", "unit": "Minute"},
    },
}
FIGURES = {
    **CALL,
    "period": "2026-11",
    "used": 1815,
    "available": 2000,
    "remaining": 185,
    "overage_units": 0,
    "percent": 91,
    "forecast_used": 2764,
    "limit_reached_on": "2026-11-23",
}
PAST_LIMIT = {
    "action_past_limit": "restrict",
    "restrict_units": 50,
    "restrict_window": "day",
    "hard_limit": 2520,
}
OFFER = {
    "id": "0b9c7a52-5c43-4d2e-9a8e-1a0f4c1f6f11",
    "units": 1500,
    "price": "29.00",
    "currency": "EUR",
    "expires_at": "2026-11-27T12:00:00+00:00",
}
OVER = {**FIGURES, "used": 3234, "percent": 162, "overage_units": 1234, "remaining": 0}

# One payload per kind, as its producer writes it; a new kind needs its sample here.
SAMPLES: dict[str, dict[str, Any]] = {
    K.THRESHOLD_WARNING: {**FIGURES, "threshold": 90, **PAST_LIMIT, "offer": OFFER},
    K.FORECAST_WARNING: {**FIGURES, **PAST_LIMIT},
    K.LIMIT_REACHED: {**OVER, "threshold": 100, **PAST_LIMIT, "action_past_limit": "suspend"},
    K.OVERAGE_FEE_NOTICE: {**OVER, **PAST_LIMIT, "action_past_limit": "notify_only"},
    K.RESTRICTION_APPLIED: {
        **CALL,
        "kind": "throttle",
        "limit_units": 10,
        "window": "hour",
        "starts_at": "2026-11-20T12:00:00+00:00",
        "ends_at": "2026-11-20T14:00:00+00:00",
        "reason": "Spamwelle",
    },
    K.RESTRICTION_LIFTED: {
        **CALL,
        "kind": "suspend",
        "limit_units": None,
        "window": "day",
        "starts_at": "2026-11-20T12:00:00+00:00",
        "ends_at": "2026-11-20T14:00:00+00:00",
        "reason": "Spamwelle",
        "ended": "expired",
        "ended_at": "2026-11-20T14:00:00+00:00",
    },
    K.TOPUP_OFFER: {**CALL, "offer": OFFER},
    K.TOPUP_BOOKED: {
        **CALL,
        "units": 1500,
        "price": "29.00",
        "currency": "EUR",
        "period": "2026-11",
    },
    K.FEE_SCHEDULE_NOTICE: {
        **CALL,
        "currency": "EUR",
        "mode": "graduated",
        "tiers": [[1000, "0.002"], [None, "0.0015"]],
        "effective_from": "2026-12-04T12:30:00+00:00",
    },
    K.LIMIT_CHANGED: {
        **CALL,
        "effective_from": "2026-12-04T12:30:00+00:00",
        "included_units": 1500,
        "before_included_units": 2000,
        "hard_limit": 1800,
        "action_past_limit": "charge_overage",
        "restrict_units": None,
        "restrict_window": "hour",
    },
    K.POLICY_CHANGE: {"version": "1.1", "effective_from": "2026-12-20T23:00:00+00:00"},
    K.OVERAGE_CARRIED: {
        **OVER,
        "next_period": "2026-12",
        "carried_units": 1000,
        "charged_units": 234,
        "amount": "0.47",
        "currency": "EUR",
        "status": "billed",
    },
    K.OVERAGE_DECIDED: {
        **OVER,
        "charged_units": 1234,
        "status": "partly_waived",
        "amount": "2.47",
        "billed_amount": "1.47",
        "waived_amount": "1.00",
        "currency": "EUR",
        "reason": "Erstes Mal",
    },
    K.LIMIT_REQUEST_APPROVED: {
        **CALL,
        "requested_included_units": 5000,
        "before_included_units": 2000,
        "included_units": 4000,
        "effective_from": "2026-11-20T12:00:00+00:00",
        "reason": "Viel Erfolg mit der Kampagne",
    },
    K.LIMIT_REQUEST_DECLINED: {
        **CALL,
        "requested_included_units": 5000,
        "before_included_units": 2000,
        "included_units": None,
        "effective_from": None,
        "reason": "Ihre Nutzung liegt weit darunter",
    },
    K.WELCOME: {
        "tenant_name": "Alpha",
        "channels": [
            {
                **CALL,
                "included_units": 2000,
                "hard_limit": 2520,
                "action_past_limit": "restrict",
                "restrict_units": 50,
                "restrict_window": "day",
                "carry_over": "carry",
                "fee_schedules": [
                    {
                        "currency": "EUR",
                        "mode": "graduated",
                        "tiers": [[1000, "0.002"], [None, "0.0015"]],
                        "effective_from": "2026-12-04T12:30:00+00:00",
                    }
                ],
            },
            {
                **CALL,
                "included_units": 500,
                "hard_limit": None,
                "action_past_limit": "notify_only",
                "carry_over": "forgive",
                "fee_schedules": [],
            },
        ],
    },
    K.CREDITS_REDUCED: {
        **CALL,
        "period": "2026-11",
        "reduced_units": 500,
        "available_before": 2000,
        "available": 1500,
        "used": 1200,
        "reason": "Nutzung außerhalb der Vereinbarung",
    },
    K.WEBHOOK_TEST: {
        "endpoint": "5f0c2a8e-1d7b-4c8e-9a51-3b1f2e4d6c7a",
        "url": "https://hooks.example.com/creditguard",
    },
}

# Words of the English texts that a German text never needs (whole words, case kept).
ENGLISH = re.compile(
    r"\b(the|your|you|of|on|and|units?|credits?|until|from|per|fees?|Fees|sending|limited|"
    r"suspended|lifted|top|offer|booked|reached|used|Further|hour|day|policy|Phone|calls|"
    r"segment|minute|message|Reason|all channels|beyond|takes effect|Hello|Questions)\b"
    r"|E-mail|EUR"
)
# What neither language may show: ISO dates and months, currency codes instead of signs,
# placeholders left unfilled, Python's None.
RAW = re.compile(r"\d{4}-\d{2}(-\d{2})?|\bEUR\b|%\(|%%|\bNone\b|\[\]")


def render(kind: str, language: str, payload: dict[str, Any] | None = None) -> Message:
    note = Notification(kind=kind, payload=payload if payload is not None else SAMPLES[kind])
    return render_message(note, language=language, time_zone=BERLIN)


def texts(message: Message) -> list[str]:
    return [message.subject, *message.lines, *([message.offer] if message.offer else [])]


def test_every_kind_has_a_sample():
    assert set(SAMPLES) == set(K.values)


@pytest.mark.parametrize("kind", K.values)
@pytest.mark.parametrize("language", ["de", "en"])
def test_each_kind_renders_its_figures_as_the_language_writes_them(kind, language):
    for text in texts(render(kind, language)):
        assert text.strip()
        assert not RAW.search(text), text


@pytest.mark.parametrize("kind", K.values)
def test_each_kind_renders_in_german_without_english(kind):
    german, english = render(kind, "de"), render(kind, "en")
    for text in texts(german):
        assert not ENGLISH.search(text), text
    # A message left untranslated in the catalogue comes out in English, unchanged.
    assert not set(texts(german)) & set(texts(english))


def test_figures_money_and_channels_in_german():
    message = render(K.THRESHOLD_WARNING, "de")
    body = " ".join(texts(message))
    assert message.subject == f"Telefonate: 91{NBSP}% Ihres Inklusivkontingents verbraucht"
    assert "1.815 von 2.000" in body and f"(91{NBSP}%" in body
    assert "Einheit: Minute" in body and "November 2026" in body
    assert f"1.500 Einheiten für 29,00{NBSP}€" in body
    assert "gültig bis 27. November 2026, 13:00 MEZ" in body


def test_figures_money_and_channels_in_english():
    message = render(K.THRESHOLD_WARNING, "en")
    body = " ".join(texts(message))
    assert message.subject == "Phone calls: 91% of your included credits used"
    assert "1,815 of 2,000" in body and "(91%" in body and "unit: minute" in body
    assert "1,500 units for €29.00" in body
    assert "valid until 27 November 2026, 13:00 CET" in body


def test_a_throttle_says_until_what_time():
    line = render(K.RESTRICTION_APPLIED, "de").lines[0]
    assert line == (
        "Der Versand über Telefonate ist bis 20. November 2026, 15:00 MEZ auf 10 Einheiten "
        "pro Stunde begrenzt."
    )
    assert "until 20 November 2026, 15:00 CET" in render(K.RESTRICTION_APPLIED, "en").lines[0]


def test_a_restriction_of_every_channel_without_end():
    payload = {**SAMPLES[K.RESTRICTION_APPLIED], "channel": None, "channel_name": None,
               "channel_labels": None, "kind": "suspend", "ends_at": None}  # fmt: skip
    message = render(K.RESTRICTION_APPLIED, "de", payload)
    assert message.subject == "Alle Kanäle: Versand ausgesetzt"
    assert message.lines[0] == "Der Versand über alle Kanäle ist bis auf Weiteres ausgesetzt."


def test_unit_prices_keep_their_decimals():
    lines = render(K.FEE_SCHEDULE_NOTICE, "de").lines
    assert f"bis 1.000 Einheiten: 0,002{NBSP}€ pro Einheit" in lines
    assert f"darüber hinaus: 0,0015{NBSP}€ pro Einheit" in lines
    assert lines[0].startswith("Ab 4. Dezember 2026, 13:30 MEZ ")
    assert "up to 1,000 units: €0.002 per unit" in render(K.FEE_SCHEDULE_NOTICE, "en").lines


def test_a_change_from_local_midnight_is_its_day():
    payload = {**SAMPLES[K.LIMIT_CHANGED], "effective_from": "2026-12-04T00:00:00+01:00"}
    assert render(K.LIMIT_CHANGED, "de", payload).lines[0].startswith("Ab 4. Dezember 2026 ")


def test_the_policy_change_is_rendered_from_its_version():
    message = render(K.POLICY_CHANGE, "de")
    assert message.subject == "Fair-Use-Richtlinie 1.1"
    assert message.lines == [
        "Die Fair-Use-Richtlinie 1.1 gilt ab 21. Dezember 2026. Bitte lesen und bestätigen "
        "Sie sie auf der Seite „Fair-Use-Richtlinie“."
    ]
    assert render(K.POLICY_CHANGE, "en").lines == [
        "Fair use policy 1.1 takes effect on 21 December 2026. Please read it and acknowledge "
        "it on the fair use policy page."
    ]


def test_a_payload_without_channel_labels_shows_its_channel_name():
    payload = {key: value for key, value in FIGURES.items() if key != "channel_labels"}
    message = render(K.FORECAST_WARNING, "de", payload)
    assert message.subject.startswith("Phone calls: ")
    assert "Einheit: minute" in " ".join(message.lines)


def _used_msgids() -> set[str]:
    """The msgids the e-mail uses: the renderer's (every module of notifications) and its
    templates'."""
    msgids: set[str] = set()
    for module in (ROOT / "notifications").rglob("*.py"):
        with module.open("rb") as source:
            msgids |= {str(m[1]) for m in extract("python", source)}
    for template in (ROOT / "templates" / "notifications").iterdir():
        pseudo = templatize(template.read_text(), origin=str(template))
        msgids |= {str(m[1]) for m in extract("python", io.BytesIO(pseudo.encode()))}
    return msgids


def test_every_message_used_has_a_german_translation():
    entries = {e.msgid: e for e in polib.pofile(str(CATALOGUE / "django.po")) if not e.obsolete}
    used = _used_msgids()
    assert len(used) > 30
    missing = sorted(used - set(entries))
    assert not missing, f"not in the catalogue (run makemessages): {missing}"
    untranslated = sorted(m for m in used if not entries[m].msgstr or entries[m].fuzzy)
    assert not untranslated, f"untranslated or fuzzy: {untranslated}"


def test_the_catalogue_has_no_fuzzy_or_empty_entries_and_is_compiled():
    po = polib.pofile(str(CATALOGUE / "django.po"))
    assert not [e.msgid for e in po if e.fuzzy and not e.obsolete]
    assert not po.untranslated_entries()
    mo = {e.msgid: e.msgstr for e in polib.mofile(str(CATALOGUE / "django.mo")) if e.msgid}
    assert mo == {e.msgid: e.msgstr for e in po.translated_entries()}
