"""A payload that lacks figures (older notifications, a producer that wrote fewer) still
renders, in both languages: the in-app list, a webhook or an e-mail never fails on it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from notifications.messages import render_message
from notifications.models import Notification

CREATED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", Notification.Kind.values)
@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize(
    "payload",
    [{}, {"channel": "sms"}, {"channel": "sms", "effective_from": "soon", "used": "many",
                              "offer": {"price": "free", "expires_at": None}, "tiers": []}],
    ids=["empty", "channel only", "unreadable figures"],
)  # fmt: skip
def test_a_payload_without_its_figures_still_renders(kind, language, payload):
    note = Notification(kind=kind, payload=payload, created_at=CREATED)
    message = render_message(note, language=language, time_zone=ZoneInfo("Europe/Berlin"))
    assert message.subject.strip()


def test_a_change_without_its_date_takes_effect_when_notified():
    note = Notification(kind="limit_changed", payload={"channel": "sms"}, created_at=CREATED)
    line = render_message(note, language="de", time_zone=ZoneInfo("Europe/Berlin")).lines[0]
    assert line.startswith("Ab 20. November 2026, 13:00 MEZ ")
