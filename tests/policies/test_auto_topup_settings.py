"""A tenant's automatic top-up settings, saved through auto_topup_save: validated and
audited, whether staff or the customer change them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from creditguard.errors import InvalidInput
from creditguard.models import AuditEntry
from metering.models import Channel
from policies.models import AutoTopUp, TopUpPack
from policies.services.catalog import auto_topup_save
from tests.conftest import World


def _pack(code: str, active: bool = True) -> TopUpPack:
    return TopUpPack.objects.create(
        channel=Channel.objects.get(code=code), units=500, price=Decimal("19.90"), active=active
    )


def test_a_pack_of_another_channel_is_refused(world: World):
    sms = Channel.objects.get(code="sms")
    with pytest.raises(InvalidInput) as refused:
        auto_topup_save(
            auto_topup=AutoTopUp(tenant=world.alpha, channel=sms, pack=_pack("email"),
                                 threshold_units=10),
            actor=None,
        )  # fmt: skip
    assert refused.value.errors[0]["field"] == "pack"
    assert not AutoTopUp.objects.exists()


def test_a_pack_no_longer_on_sale_is_refused(world: World):
    sms = Channel.objects.get(code="sms")
    with pytest.raises(InvalidInput):
        auto_topup_save(
            auto_topup=AutoTopUp(tenant=world.alpha, channel=sms, pack=_pack("sms", active=False),
                                 threshold_units=10),
            actor=None,
        )  # fmt: skip


def test_at_least_one_purchase_a_period(world: World):
    sms = Channel.objects.get(code="sms")
    with pytest.raises(InvalidInput) as refused:
        auto_topup_save(
            auto_topup=AutoTopUp(tenant=world.alpha, channel=sms, pack=_pack("sms"),
                                 threshold_units=10, max_per_period=0),
            actor=None,
        )  # fmt: skip
    assert refused.value.errors[0]["field"] == "max_per_period"


def test_switching_off_keeps_the_settings_and_is_audited(world: World):
    sms = Channel.objects.get(code="sms")
    setting = auto_topup_save(
        auto_topup=AutoTopUp(tenant=world.alpha, channel=sms, pack=_pack("sms"),
                             threshold_units=10),
        actor=None,
    )  # fmt: skip
    setting.enabled = False
    auto_topup_save(auto_topup=setting, actor=None)
    setting.refresh_from_db()
    assert (setting.enabled, setting.threshold_units) == (False, 10)
    audited = AuditEntry.objects.filter(action__startswith="auto_topup").order_by("pk")
    assert [e.action for e in audited] == [
        "auto_topup.create",
        "auto_topup.update",
    ]
