"""Developers → recent deliveries in words (issue 11): the event by its translated label,
not its code, and why a delivery failed as a translated sentence, not Python's exception
text — which only admins and owners may unfold."""

from __future__ import annotations

import pytest
from django.utils import translation

from notifications.models import Delivery, Notification
from notifications.services.webhook_deliveries import webhook_endpoint_test
from notifications.services.webhooks import webhook_endpoint_create
from portal.deliveries import KIND_LABELS, failure_text

pytestmark = pytest.mark.django_db

SSL_ERROR = (
    "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    "self-signed certificate (_ssl.c:1006)"
)


@pytest.fixture
def failed(people, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    endpoint = webhook_endpoint_create(tenant=people.alpha, url="https://127.0.0.1:9/hook")
    webhook_endpoint_test(tenant=people.alpha, public_id=endpoint.public_id)
    Delivery.objects.filter(endpoint=endpoint).update(
        status=Delivery.Status.FAILED, attempts=6, last_error=SSL_ERROR
    )
    return endpoint


def test_a_failed_delivery_is_explained_in_words_and_the_raw_error_kept_for_admins(people, failed):
    page = people.client(people.admin).get("/developers/").content.decode()
    assert "The receiver&#x27;s TLS certificate could not be verified." in page
    assert "<code>webhook_test</code>" not in page and "Test event" in page
    # The raw text is there to unfold for an admin, never the row's status itself.
    assert "<summary>Technical detail</summary><code>SSLCertVerificationError" in page
    viewer = people.client(people.viewer).get("/developers/").content.decode()
    assert "TLS certificate could not be verified" in viewer
    assert "SSLCertVerificationError" not in viewer and "CERTIFICATE_VERIFY_FAILED" not in viewer


def test_the_german_page_says_it_in_german(people, failed):
    people.alpha.language = "de"
    people.alpha.save()
    page = people.client(people.viewer).get("/developers/").content.decode()
    assert "Das TLS-Zertifikat des Empfängers konnte nicht geprüft werden." in page
    deliveries = page.split("Letzte Zustellungen", 1)[1]
    assert "Testereignis" in deliveries and "webhook_test" not in deliveries


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (SSL_ERROR, "The receiver's TLS certificate could not be verified."),
        ("SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version", "The secure (TLS) connection"),
        ("ConnectionRefusedError: [Errno 111] Connection refused", "Connection refused"),
        ("TimeoutError: timed out", "Timed out"),
        ("SendDeadlineExceeded: receiver too slow: no complete answer within 9 s", "Timed out"),
        ("HTTP 500", "HTTP 500 from the receiver."),
        ("HTTP 410 Gone: endpoint disabled", "410 Gone, so the endpoint was disabled"),
        ("refused: hooks.example does not resolve", "host name could not be resolved"),
        ("refused: hooks.example resolves to 10.0.0.1", "public internet addresses only"),
        ("RemoteDisconnected: Remote end closed connection", "closed the connection"),
        ("ValueError: something odd", "The delivery failed."),
        ("", ""),
    ],
)
def test_each_stored_error_has_its_sentence(error, text):
    with translation.override("en"):
        assert text in failure_text(error)
        assert "Error" not in failure_text(error)


def test_every_kind_has_a_label():
    assert set(KIND_LABELS) == set(Notification.Kind.values)
