"""A channel added as data works through ingestion and balances with no code change."""

from __future__ import annotations

from metering.models import Balance, Channel
from tests.conftest import World, event


def test_new_channel_works_through_ingestion_and_balances(world: World):
    Channel.objects.create(
        code="whatsapp", name="WhatsApp", unit="conversation", default_included_units=250
    )
    response = world.alice_api.ingest([event("wa-1", channel="whatsapp", quantity=40)])
    assert response.status_code == 200, response.content
    rows = {
        row["channel"]: row for row in world.alice_api.get("/api/v1/balances").json()["channels"]
    }
    assert rows["whatsapp"]["unit"] == "conversation"
    assert (
        rows["whatsapp"]["included"],
        rows["whatsapp"]["used"],
        rows["whatsapp"]["remaining"],
    ) == (250, 40, 210)
    usage = world.alice_api.get("/api/v1/usage", {"channel": "whatsapp"}).json()["series"][0]
    assert usage["total"] == 40


def test_seeded_future_channels_are_present_but_inactive(db):
    assert set(Channel.objects.filter(active=True).values_list("code", flat=True)) == {
        "email",
        "sms",
        "call",
    }
    assert set(Channel.objects.filter(active=False).values_list("code", flat=True)) == {
        "push",
        "chatbot",
        "video",
    }


def test_activating_a_channel_opens_it_for_usage(world: World):
    assert world.alice_api.ingest([event("p-1", channel="push")]).status_code == 400
    Channel.objects.filter(code="push").update(active=True)
    assert world.alice_api.ingest([event("p-1", channel="push")]).status_code == 200
    assert Balance.objects.filter(tenant=world.alpha, channel__code="push").get().used == 1


def test_deactivated_channel_with_usage_still_shows_its_balance(world: World):
    world.alice_api.ingest([event("v-1", channel="call", quantity=3)])
    Channel.objects.filter(code="call").update(active=False)
    rows = {
        row["channel"]: row for row in world.alice_api.get("/api/v1/balances").json()["channels"]
    }
    assert rows["call"]["used"] == 3
