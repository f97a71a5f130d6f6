"""Channels carry their German name and unit; an empty one falls back to the English."""

from __future__ import annotations

import pytest

from metering.models import Channel


@pytest.mark.parametrize(
    ("code", "name_de", "unit_de"),
    [
        ("email", "E-Mail", "Nachricht"),
        ("sms", "SMS", "Segment"),
        ("call", "Telefonate", "Minute"),
        ("push", "Push-Benachrichtigungen", "Nachricht"),
        ("chatbot", "Chatbot", "Konversation"),
        ("video", "Videoanrufe", "Minute"),
    ],
)
def test_the_seeded_channels_have_german_names_and_units(db, code, name_de, unit_de):
    assert Channel.objects.get(code=code).labels()["de"] == {"name": name_de, "unit": unit_de}


def test_a_channel_without_german_labels_shows_its_english_ones(db):
    Channel.objects.create(code="fax", name="Fax", unit="page")
    assert Channel.labels_by_code(["fax", "call"]) == {
        "fax": {"en": {"name": "Fax", "unit": "page"}, "de": {"name": "Fax", "unit": "page"}},
        "call": {
            "en": {"name": "Phone calls", "unit": "minute"},
            "de": {"name": "Telefonate", "unit": "Minute"},
        },
    }
