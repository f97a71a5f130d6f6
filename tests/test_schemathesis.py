"""Schema-driven fuzzing: schemathesis generates requests from /api/schema/ and checks
every answer against it, against a live server on the test database, with a key of all
scopes and data to find (usage, an authorization, a top-up offer, a notification).

Bounded (a fixed seed, a few examples per operation, a time-out) so that it runs in the
test command; it must report no failure."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from metering.models import Channel
from metering.services.ingest import usage_record_batch
from notifications.services.notify import notify
from policies.models import TopUpPack
from policies.services.authorize import authorization_create
from policies.services.topups import topup_offer_create
from tests.conftest import ALL_SCOPES, event, issue
from tests.factories import TenantFactory
from tests.policies.helpers import set_rule

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ST = Path(sys.executable).parent / "st"
SEED = 14
MAX_EXAMPLES = 20
TIME_OUT_SECONDS = 150

# Where a check contradicts a documented, deliberate behaviour, it is told so here, per
# operation, with the reason; nothing else is relaxed. positive_data_acceptance expects
# valid-by-schema input to succeed, but these operations refuse such input (400, or 422
# for a closed period) by rules on data the schema cannot state (docs/API.md).
REFUSED_THOUGH_VALID_BY_SCHEMA = {
    # a channel must exist and be active (channels are data, not code); occurred_at must
    # not lie in the future, and its period must still be open (else 422)
    "usage_events_create": [400, 422],
    "authorizations_create": [400, 422],
    # a commit's quantity is at most the units reserved; a closed period is 422
    "authorizations_commit": [400, 422],
    # GET /usage: from before to, at most 5000 buckets, a known channel
    "usage_series": [400],
    # a cursor is valid only as the server wrote it
    "notifications_list": [400],
    "topup_offers_list": [400],
    "webhook_endpoints_list": [400],
    # a period is YYYY-MM; a tenant key may name only its own tenant (else 404)
    "billing_export": [400, 404],
    "billing_line_items": [400, 404],
    # a URL the service refuses (e.g. one urlsplit cannot take apart), or platform event
    # types on a tenant's endpoint
    "webhook_endpoints_create": [400],
    "webhook_endpoints_update": [400],
}


def schemathesis_config() -> str:
    sections = []
    for operation_id, codes in REFUSED_THOUGH_VALID_BY_SCHEMA.items():
        statuses = ["2xx", "401", "403", "404", "409", "429", *map(str, codes)]
        sections.append(
            "[[operations]]\n"
            f'include-operation-id = "{operation_id}"\n'
            f"checks.positive_data_acceptance.expected-statuses = {json.dumps(statuses)}\n"
        )
    return "\n".join(sections)


def resolve_offline(real: Callable[..., Any]) -> Callable[..., Any]:
    """DNS, stubbed: every name a webhook URL may carry resolves to a documentation
    address (no query leaves the machine); addresses and localhost resolve as usual."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name != "localhost":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443))]
        return real(host, port, *args, **kwargs)

    return getaddrinfo


@pytest.fixture
def tenant_with_data(settings, monkeypatch):
    # The hosts of schemathesis's webhook URLs are not looked up (DNS is the outside
    # world) and may be any address; no delivery runs (no worker consumes this queue).
    monkeypatch.setattr(socket, "getaddrinfo", resolve_offline(socket.getaddrinfo))
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_ENDPOINTS_PER_TENANT = 1_000_000
    tenant = TenantFactory.create(slug="fuzzed", name="Fuzzed GmbH", time_zone="Europe/Berlin")
    set_rule(tenant, "sms", included_units=1_000_000_000)
    usage_record_batch(
        tenant=tenant, payload={"events": [event("seen-1", channel="sms", quantity=40)]}
    )
    authorization_create(tenant=tenant, channel_code="sms", quantity=3, idempotency_key="k")
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=500, price=Decimal("29.00")
    )
    topup_offer_create(tenant=tenant, pack=pack)
    notify(tenant=tenant, kind="limit_changed", dedupe_key="fuzz", payload={"channel": "sms"})
    return tenant, issue(tenant, ALL_SCOPES).raw_key


def test_schemathesis_finds_no_failure(live_server, tenant_with_data, tmp_path):
    _tenant, key = tenant_with_data
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config())
    command = [
        str(ST),
        "--config-file",
        str(config),
        "run",
        f"{live_server.url}/api/schema/",
        "--url",
        live_server.url,
        "-H",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--no-color",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIME_OUT_SECONDS,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its crash cache (.schemathesis/) stays out of the tree
        check=False,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
