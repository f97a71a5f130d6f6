"""A customer's own alerts in evaluation and delivery: its thresholds warn beside the
rule's, once each; its recipients receive the warnings' e-mail; a removed alert stops
warning. And the services that add and remove them: validated, audited, tenant-scoped."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from creditguard.models import AuditEntry
from metering.models import Channel
from metering.services.ingest import usage_record_batch
from notifications.models import AlertRecipient, Delivery, Notification
from notifications.services.alert_recipients import (
    MAX_RECIPIENTS,
    alert_recipient_add,
    alert_recipient_remove,
)
from notifications.services.deliver import deliveries_due, delivery_attempt
from notifications.services.notify import notify
from policies.models import AlertThreshold
from policies.services.alerts import (
    MAX_THRESHOLDS_PER_CHANNEL,
    alert_threshold_add,
    alert_threshold_remove,
)
from policies.services.evaluate import evaluate_pending, evaluate_sweep
from tests.conftest import World, event
from tests.factories import TenantFactory
from tests.policies.helpers import balance_of, set_rule

pytestmark = pytest.mark.usefixtures("frozen_clock")

USAGE_KINDS = ["threshold_warning", "limit_reached", "forecast_warning", "overage_fee_notice"]


@pytest.fixture(autouse=True)
def locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def sms() -> Channel:
    return Channel.objects.get(code="sms")


def sent(tenant) -> list[tuple[str, int | None]]:
    """The usage messages sent (not what a message covered)."""
    return sorted(
        (n.kind, n.payload.get("threshold"))
        for n in Notification.objects.filter(tenant=tenant, kind__in=USAGE_KINDS, covered_by="")
    )


def deliver_all() -> list[str]:
    return [delivery_attempt(delivery_id=pk) for pk in deliveries_due()]


def warning_mails(tenant) -> list[list[str]]:
    """The recipients of each warning e-mail sent to the tenant (not its limit notices)."""
    warnings = {
        str(n.public_id)
        for n in Notification.objects.filter(tenant=tenant, kind__in=USAGE_KINDS, covered_by="")
    }
    return [m.to for m in mail.outbox if m.extra_headers["X-CreditGuard-Notification"] in warnings]


def use(world: World, event_id: str, quantity: int) -> None:
    response = world.alice_api.ingest([event(event_id, channel="sms", quantity=quantity)])
    assert response.status_code in (200, 201, 202), response.content


def test_a_customer_threshold_warns_once_when_crossed(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    alert_threshold_add(tenant=world.alpha, channel=sms(), percent=65, actor=None)
    use(world, "a", 600)
    evaluate_pending()
    assert sent(world.alpha) == [("threshold_warning", 50)]
    use(world, "b", 60)  # 66 %
    assert evaluate_pending().notifications == 1
    evaluate_pending()
    evaluate_sweep()
    assert sent(world.alpha) == [("threshold_warning", 50), ("threshold_warning", 65)]
    key = f"threshold:{balance_of(world.alpha).pk}:65"
    assert Notification.objects.filter(dedupe_key=key).count() == 1


def test_a_threshold_in_the_rule_and_the_alerts_warns_once(world: World):
    set_rule(world.alpha, "sms", included_units=1000, warning_thresholds=[50, 100])
    alert_threshold_add(tenant=world.alpha, channel=sms(), percent=50, actor=None)
    use(world, "a", 550)
    assert evaluate_pending().notifications == 1
    evaluate_sweep()
    assert sent(world.alpha) == [("threshold_warning", 50)]
    assert Notification.objects.filter(tenant=world.alpha, payload__threshold=50).count() == 1


def test_crossing_a_customer_threshold_and_a_higher_rule_one_sends_the_higher(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    alert_threshold_add(tenant=world.alpha, channel=sms(), percent=70, actor=None)
    use(world, "a", 850)
    assert evaluate_pending().notifications == 1
    # 80 % is sent; 50 % and the customer's 70 % are covered by it and never come later.
    assert sent(world.alpha) == [("threshold_warning", 80)]
    covered = Notification.objects.get(dedupe_key=f"threshold:{balance_of(world.alpha).pk}:70")
    assert covered.covered_by == f"threshold:{balance_of(world.alpha).pk}:80"


def test_a_removed_alert_stops_warning(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    alert = alert_threshold_add(tenant=world.alpha, channel=sms(), percent=30, actor=None)
    alert_threshold_remove(tenant=world.alpha, threshold_id=alert.pk, actor=None)
    use(world, "a", 350)
    evaluate_pending()
    evaluate_sweep()
    assert sent(world.alpha) == []
    assert not AlertThreshold.objects.exists()


def test_another_tenants_alert_warns_only_that_tenant(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    set_rule(world.beta, "sms", included_units=1000)
    alert_threshold_add(tenant=world.beta, channel=sms(), percent=20, actor=None)
    use(world, "a", 250)
    world.beta_api.ingest([event("b", channel="sms", quantity=250)])
    evaluate_pending()
    assert sent(world.alpha) == []
    assert sent(world.beta) == [("threshold_warning", 20)]


def test_an_alert_on_another_channel_does_not_warn_this_one(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    alert_threshold_add(
        tenant=world.alpha, channel=Channel.objects.get(code="email"), percent=20, actor=None
    )
    use(world, "a", 250)
    evaluate_pending()
    assert sent(world.alpha) == []


def test_recipients_receive_the_warning_email_with_the_contact(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    alert_threshold_add(tenant=world.alpha, channel=sms(), percent=40, actor=None)
    alert_recipient_add(tenant=world.alpha, email="oncall@alpha.example", actor=None)
    alert_recipient_add(tenant=world.alpha, email="Finance@Alpha.example", actor=None)
    alert_recipient_add(tenant=world.beta, email="beta-only@beta.example", actor=None)
    use(world, "a", 420)
    evaluate_pending()
    assert set(deliver_all()) == {"delivered"}
    assert warning_mails(world.alpha) == [
        [world.alpha.contact_email, "oncall@alpha.example", "Finance@Alpha.example"]
    ]
    assert warning_mails(world.beta) == []


def test_a_removed_recipient_receives_nothing_more(world: World):
    set_rule(world.alpha, "sms", included_units=1000)
    recipient = alert_recipient_add(tenant=world.alpha, email="gone@alpha.example", actor=None)
    alert_recipient_remove(tenant=world.alpha, recipient_id=recipient.pk, actor=None)
    use(world, "a", 550)
    evaluate_pending()
    deliver_all()
    assert warning_mails(world.alpha) == [[world.alpha.contact_email]]


def test_recipients_receive_warnings_only(world: World):
    alert_recipient_add(tenant=world.alpha, email="oncall@alpha.example", actor=None)
    notify(tenant=world.alpha, kind=Notification.Kind.TOPUP_BOOKED, dedupe_key="booked:1",
           payload={"channel": "sms", "units": 500})  # fmt: skip
    deliver_all()
    assert [m.to for m in mail.outbox] == [[world.alpha.contact_email]]


def test_a_tenant_without_contact_address_warns_its_recipients(db):
    tenant = TenantFactory.create(slug="no-contact", contact_email="")
    set_rule(tenant, "sms", included_units=100)
    usage_record_batch(tenant=tenant, payload={"events": [event("x", quantity=60)]})
    evaluate_pending()
    # No contact, no recipient: no e-mail is planned.
    assert not Delivery.objects.filter(transport="email").exists()
    assert sent(tenant) == [("threshold_warning", 50)]
    alert_recipient_add(tenant=tenant, email="ops@no-contact.example", actor=None)
    usage_record_batch(tenant=tenant, payload={"events": [event("y", quantity=25)]})
    evaluate_pending()
    assert deliver_all() == ["delivered"]
    assert warning_mails(tenant) == [["ops@no-contact.example"]]


def _sweep_queries(count: int, prefix: str) -> int:
    for n in range(count):
        tenant = TenantFactory.create(slug=f"{prefix}-{n}")
        set_rule(tenant, "sms", included_units=100)
        alert_threshold_add(tenant=tenant, channel=sms(), percent=5, actor=None)
        alert_recipient_add(tenant=tenant, email=f"oncall@{prefix}-{n}.example", actor=None)
        usage_record_batch(tenant=tenant, payload={"events": [event("x", quantity=10)]})
    with CaptureQueriesContext(connection) as queries:
        result = evaluate_pending()
    assert result.notifications == count  # each tenant's own 5 % threshold
    return len(queries)


def test_the_customer_thresholds_cost_one_query_per_batch_whatever_the_tenants(db):
    few = _sweep_queries(2, "few")
    many = _sweep_queries(20, "many")
    assert many == few


def test_evaluation_adds_one_query_for_the_customer_thresholds(db, django_assert_max_num_queries):
    # As test_evaluate's sweep of 30 tenants (8 queries before alerts, and the read of the
    # open periods in force that each sweep makes once since tests/policies/
    # test_sweep_history.py), with one more.
    for n in range(30):
        tenant = TenantFactory.create(slug=f"sweep-{n}")
        usage_record_batch(tenant=tenant, payload={"events": [event("x", quantity=1)]})
    evaluate_sweep()
    from metering.models import Balance

    Balance.objects.update(version=1, evaluated_version=0)
    with django_assert_max_num_queries(10):
        evaluate_sweep()


# The services


def test_a_threshold_is_validated(world: World):
    from creditguard.errors import InvalidInput

    for bad in (0, 1001, -5, "50", 50.0, None, True):
        with pytest.raises(InvalidInput):
            alert_threshold_add(tenant=world.alpha, channel=sms(), percent=bad, actor=None)  # type: ignore[arg-type]
    inactive = Channel.objects.create(code="fax", name="Fax", active=False)
    with pytest.raises(InvalidInput):
        alert_threshold_add(tenant=world.alpha, channel=inactive, percent=50, actor=None)
    assert not AlertThreshold.objects.exists()


def test_a_threshold_is_unique_per_tenant_and_channel(world: World):
    from creditguard.errors import Conflict

    alert_threshold_add(tenant=world.alpha, channel=sms(), percent=65, actor=None)
    with pytest.raises(Conflict):
        alert_threshold_add(tenant=world.alpha, channel=sms(), percent=65, actor=None)
    # The same percentage on another channel, or of another tenant, is another alert.
    alert_threshold_add(
        tenant=world.alpha, channel=Channel.objects.get(code="email"), percent=65, actor=None
    )
    alert_threshold_add(tenant=world.beta, channel=sms(), percent=65, actor=None)
    assert AlertThreshold.objects.count() == 3


def test_a_channel_has_at_most_so_many_thresholds(world: World):
    from creditguard.errors import Conflict

    for percent in range(1, MAX_THRESHOLDS_PER_CHANNEL + 1):
        alert_threshold_add(tenant=world.alpha, channel=sms(), percent=percent, actor=None)
    with pytest.raises(Conflict):
        alert_threshold_add(tenant=world.alpha, channel=sms(), percent=99, actor=None)
    assert AlertThreshold.objects.count() == MAX_THRESHOLDS_PER_CHANNEL


def test_adding_and_removing_a_threshold_is_audited(world: World):
    alert = alert_threshold_add(tenant=world.alpha, channel=sms(), percent=65, actor=None)
    alert_threshold_remove(tenant=world.alpha, threshold_id=alert.pk, actor=None)
    entries = list(AuditEntry.objects.filter(action__startswith="alert_threshold.").order_by("pk"))
    assert [(e.action, e.tenant_id, e.before, e.after) for e in entries] == [
        ("alert_threshold.add", world.alpha.pk, None, {"channel": "sms", "percent": 65}),
        ("alert_threshold.remove", world.alpha.pk, {"channel": "sms", "percent": 65}, None),
    ]


def test_another_tenants_threshold_or_recipient_cannot_be_removed(world: World):
    from creditguard.errors import NotFound

    alert = alert_threshold_add(tenant=world.beta, channel=sms(), percent=65, actor=None)
    recipient = alert_recipient_add(tenant=world.beta, email="x@beta.example", actor=None)
    with pytest.raises(NotFound):
        alert_threshold_remove(tenant=world.alpha, threshold_id=alert.pk, actor=None)
    with pytest.raises(NotFound):
        alert_recipient_remove(tenant=world.alpha, recipient_id=recipient.pk, actor=None)
    assert AlertThreshold.objects.filter(pk=alert.pk).exists()
    assert AlertRecipient.objects.filter(pk=recipient.pk).exists()


def test_a_recipient_is_validated(world: World):
    from creditguard.errors import Conflict, InvalidInput

    for bad in ("", "   ", "not-an-address", "a@", "@b.example", "a b@c.example", None, 5,
                "x" * 250 + "@a.example"):  # fmt: skip
        with pytest.raises(InvalidInput):
            alert_recipient_add(tenant=world.alpha, email=bad, actor=None)  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        alert_recipient_add(tenant=world.alpha, email=world.alpha.contact_email.upper(), actor=None)
    kept = alert_recipient_add(tenant=world.alpha, email="  oncall@alpha.example ", actor=None)
    assert kept.email == "oncall@alpha.example"
    with pytest.raises(Conflict):
        alert_recipient_add(tenant=world.alpha, email="OnCall@Alpha.example", actor=None)
    assert AlertRecipient.objects.count() == 1


def test_an_account_has_at_most_so_many_recipients(world: World):
    from creditguard.errors import Conflict

    for n in range(MAX_RECIPIENTS):
        alert_recipient_add(tenant=world.alpha, email=f"r{n}@alpha.example", actor=None)
    with pytest.raises(Conflict):
        alert_recipient_add(tenant=world.alpha, email="one-more@alpha.example", actor=None)
    # Another tenant's list is its own.
    alert_recipient_add(tenant=world.beta, email="r0@alpha.example", actor=None)


def test_adding_and_removing_a_recipient_is_audited(world: World):
    recipient = alert_recipient_add(tenant=world.alpha, email="oncall@alpha.example", actor=None)
    alert_recipient_remove(tenant=world.alpha, recipient_id=recipient.pk, actor=None)
    entries = list(AuditEntry.objects.filter(action__startswith="alert_recipient.").order_by("pk"))
    assert [(e.action, e.before, e.after) for e in entries] == [
        ("alert_recipient.add", None, {"email": "oncall@alpha.example"}),
        ("alert_recipient.remove", {"email": "oncall@alpha.example"}, None),
    ]


def _at_once(calls: list) -> tuple[int, list[BaseException]]:
    """Run the calls in threads released together; how many returned, and what the
    others raised."""
    barrier = threading.Barrier(len(calls))
    done: list[object] = []
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            barrier.wait()
            done.append(call())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(done), errors


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_additions_at_once_stay_within_the_limits():
    from creditguard.errors import Conflict

    tenant = TenantFactory.create(slug="racing")
    for percent in range(1, MAX_THRESHOLDS_PER_CHANNEL):
        alert_threshold_add(tenant=tenant, channel=sms(), percent=percent, actor=None)
    for n in range(MAX_RECIPIENTS - 1):
        alert_recipient_add(tenant=tenant, email=f"r{n}@racing.example", actor=None)

    def threshold(percent: int):
        return lambda: alert_threshold_add(
            tenant=tenant, channel=sms(), percent=percent, actor=None
        )

    def recipient(email: str):
        return lambda: alert_recipient_add(tenant=tenant, email=email, actor=None)

    # Four different percentages for the one place left: one is added.
    added, errors = _at_once([threshold(p) for p in (50, 60, 70, 80)])
    assert added == 1 and len(errors) == 3 and all(isinstance(e, Conflict) for e in errors)
    assert AlertThreshold.objects.filter(tenant=tenant).count() == MAX_THRESHOLDS_PER_CHANNEL
    # The same address four times, and four addresses for the one place left.
    added, errors = _at_once([recipient("Same@racing.example") for _ in range(4)])
    assert added == 1 and all(isinstance(e, Conflict) for e in errors), errors
    AlertRecipient.objects.filter(email="Same@racing.example").delete()
    added, errors = _at_once([recipient(f"new{n}@racing.example") for n in range(4)])
    assert added == 1 and all(isinstance(e, Conflict) for e in errors), errors
    assert AlertRecipient.objects.filter(tenant=tenant).count() == MAX_RECIPIENTS


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_threshold_added_at_once_is_added_once():
    from creditguard.errors import Conflict

    tenant = TenantFactory.create(slug="racing-same")
    calls = [
        lambda: alert_threshold_add(tenant=tenant, channel=sms(), percent=65, actor=None)
        for _ in range(4)
    ]
    added, errors = _at_once(calls)
    assert added == 1 and all(isinstance(e, Conflict) for e in errors), errors
    assert AlertThreshold.objects.filter(tenant=tenant, percent=65).count() == 1
