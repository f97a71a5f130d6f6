"""Every staff and system action that concerns a tenant notifies it, in its language."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import polib
import pytest
from django.core import mail

from metering.models import Channel
from notifications.messages import render_message
from notifications.models import Notification
from notifications.services.deliver import deliveries_due, delivery_attempt
from policies.models import TopUpPack
from policies.services.fees import fee_schedule_create, fee_schedule_notify
from policies.services.restrictions import restriction_apply, restriction_lift
from policies.services.topups import topup_offer_accept, topup_offer_create
from tests.conftest import World
from tests.policies.helpers import set_rule


@pytest.fixture(autouse=True)
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def only(tenant, kind: str) -> Notification:
    return Notification.objects.get(tenant=tenant, kind=kind)


@pytest.mark.parametrize("language", ["en", "de"])
def test_each_kind_renders_in_both_languages(world: World, language):
    world.alpha.language = language
    world.alpha.save()
    restriction = restriction_apply(
        tenant=world.alpha,
        channel=sms(),
        kind="throttle",
        limit_units=10,
        window="hour",
        duration=timedelta(days=2),
        reason="spam wave",
        customer_reason="spam wave",
        actor=None,
    )
    restriction_lift(restriction=restriction, reason="resolved", actor=None)
    pack = TopUpPack.objects.create(channel=sms(), units=500, price=Decimal("29.00"))
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    topup_offer_accept(tenant=world.alpha, public_id=offer.public_id)
    set_rule(world.alpha, "sms", included_units=10, action="suspend")
    schedule = fee_schedule_create(
        channel=sms(), name="SMS", tiers=[(1000, "0.08"), (None, "0.06")]
    )
    fee_schedule_notify(schedule=schedule)
    kinds = set(Notification.objects.filter(tenant=world.alpha).values_list("kind", flat=True))
    assert kinds == {
        "restriction_applied",
        "restriction_lifted",
        "topup_offer",
        "topup_booked",
        "limit_changed",
        "fee_schedule_notice",
    }
    statuses = {delivery_attempt(delivery_id=pk) for pk in deliveries_due()}
    assert statuses == {"delivered"}
    alphas = [m for m in mail.outbox if m.to == [world.alpha.contact_email]]
    assert len(alphas) == 6
    subjects = sorted(str(m.subject) for m in alphas)
    assert all(s.startswith("[CreditGuard] ") for s in subjects)
    bodies = "\n".join(str(m.body) for m in alphas)
    if language == "de":
        assert "Versand eingeschränkt" in " ".join(subjects)
        assert "bis 1.000 Einheiten: 0,08\u00a0€ pro Einheit" in bodies
        assert "ausgesetzt, bis Ihr Kontingent zurückgesetzt wird" in bodies
    else:
        assert "sending is limited" in " ".join(subjects)
        assert "up to 1,000 units: €0.08 per unit" in bodies
        assert "suspended until your credits reset" in bodies


def test_a_better_limit_is_not_notified(world: World):
    set_rule(world.alpha, "sms", included_units=5000)
    assert not Notification.objects.filter(tenant=world.alpha, kind="limit_changed").exists()


def test_every_fee_schedule_notice_is_a_notification_once(world: World):
    schedule = fee_schedule_create(channel=sms(), name="SMS", tiers=[(None, "0.10")])
    fee_schedule_notify(schedule=schedule)
    fee_schedule_notify(schedule=schedule)
    for tenant in (world.alpha, world.beta, world.gamma):
        assert only(tenant, "fee_schedule_notice").payload["tiers"] == [[None, "0.10"]]


def test_limit_reached_message_says_what_happens_past_the_limit(world: World):
    note = Notification(
        kind="limit_reached",
        payload={
            "channel_name": "SMS",
            "used": 100,
            "available": 100,
            "percent": 100,
            "period": "2026-11",
            "action_past_limit": "restrict",
            "restrict_units": 50,
            "restrict_window": "day",
        },
    )
    assert "limited to 50 units per day" in " ".join(render_message(note, language="en").lines)
    assert "auf 50 Einheiten pro Tag begrenzt" in " ".join(
        render_message(note, language="de").lines
    )


def test_compiled_german_messages_match_the_catalogue():
    locale = Path(__file__).resolve().parents[2] / "locale" / "de" / "LC_MESSAGES"
    po = {e.msgid: e.msgstr for e in polib.pofile(str(locale / "django.po")) if not e.obsolete}
    mo = {e.msgid: e.msgstr for e in polib.mofile(str(locale / "django.mo"))}
    assert all(po.values()), "untranslated German messages"
    assert po == {k: v for k, v in mo.items() if k}
