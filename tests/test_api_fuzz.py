"""Whatever a client sends, the API answers 2xx or a 4xx problem, never a 5xx, and a 4xx
writes nothing.

Every operation under /api/v1/ is taken from the OpenAPI schema (and the schema is
checked to hold every route of the URL resolver, so a new endpoint is fuzzed too). Each
gets arbitrary JSON, bodies shaped like its request schema with fields mutated into
anything, raw non-JSON text, and arbitrary query and path parameters, sent with a key of
every scope. Each example runs in a savepoint that is rolled back, so examples are
independent; a 4xx is checked to have changed no row count (and no balance figure)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from metering.models import Channel
from notifications.services.webhooks import webhook_endpoint_create
from policies.models import TopUpPack
from policies.services.authorize import authorization_create
from policies.services.topups import topup_offer_create
from tests.conftest import World, event

API_PREFIX = "/api/v1/"
MAX_EXAMPLES = 40
WRITTEN_BY_THE_API = ("tenants", "metering", "policies", "notifications")


@cache
def openapi() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in openapi()["paths"].items()
        if path.startswith(API_PREFIX)
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def resolver_routes() -> set[str]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    routes = {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r) for r in walk(get_resolver().url_patterns, "")
    }
    return {route for route in routes if route.startswith(API_PREFIX)}


def test_every_api_route_is_in_the_schema_and_so_fuzzed(db):
    assert resolver_routes() == {path for _, path in operations()}


# --- strategies ----------------------------------------------------------------------
#
# A request is either anything at all, or shaped like its schema: valid values with one
# place (at any depth) mutated into an awkward or arbitrary value, so that the mutation
# reaches the code behind validation of the rest instead of being refused with it.

AWKWARD_TEXT = ["", " ", "\x00", "a\x00b", "authorization:x", "x" * 300, "ü\u202e\U0001f600",
                "null", "%00", "../x"]  # fmt: skip
AWKWARD_INSTANT = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "1999-12-31T23:59:59Z",
                   "9999-12-31T23:59:59-05:00", "9999-12-31T00:00:00Z", "2026-11-20T12:00:00+20:00",
                   "2026-11-20T12:00:00", "2026-13-45T99:00:00Z", "20261120T120000Z"]  # fmt: skip
AWKWARD_NUMBER = [0, -1, 1.5, 2**63, 2**64, 10**30, True, "1", 1e308]

texts = st.one_of(st.sampled_from(AWKWARD_TEXT), st.text(max_size=30))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
anything = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=12,
)
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
                max_size=30).filter(lambda w: bool(w.strip()))  # fmt: skip
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
recent_instants = st.builds(
    lambda seconds, zone: (now() - timedelta(seconds=seconds)).astimezone(zone).isoformat(),
    st.integers(min_value=0, max_value=3 * 86400),
    offsets,
)
any_instants = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.one_of(offsets, st.sampled_from([timezone(timedelta(hours=h)) for h in (-23, 16, 20)])),
)

# Values the schema cannot tell plausibly by itself (channels are data, ids are free).
VALID_BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "channel": st.sampled_from(["sms", "email", "call"]),
    "url": st.just("https://hooks.example/x"),
    "version": st.just("1.0"),
    "granularity": st.sampled_from(["day", "month"]),
    "cursor": st.nothing(),
}


def now() -> datetime:
    return datetime.now(UTC)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = openapi()["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def properties_of(node: dict[str, Any]) -> dict[str, Any]:
    return dict(node.get("properties", {}))


def is_object(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" or "properties" in node


def valid(node: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values the schema ``node`` allows (as far as it can tell)."""
    node = resolve(node)
    if name in VALID_BY_NAME:
        return VALID_BY_NAME[name]
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if is_object(node):
        properties, required = properties_of(node), set(node.get("required", []))
        return st.fixed_dictionaries(
            {key: valid(value, key) for key, value in properties.items() if key in required},
            optional={
                key: valid(value, key) for key, value in properties.items() if key not in required
            },
        )
    kind = node.get("type")
    if kind == "array":
        items = node.get("items", {})
        return st.lists(valid(items, name), min_size=node.get("minItems", 0), max_size=3)
    if kind == "integer":
        low = node.get("minimum", 0)
        return st.integers(min_value=low, max_value=min(node.get("maximum", low + 50), low + 50))
    if kind == "boolean":
        return st.booleans()
    if kind == "string" and node.get("format") == "date-time":
        return recent_instants
    if kind == "string":
        return words
    return anything


def awkward(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value a client should not send where ``node`` is expected."""
    node = resolve(node)
    if node.get("format") == "date-time":
        specific: st.SearchStrategy[Any] = st.one_of(st.sampled_from(AWKWARD_INSTANT), any_instants)
    elif node.get("type") in {"integer", "number"}:
        specific = st.sampled_from(AWKWARD_NUMBER)
    else:
        specific = st.sampled_from(AWKWARD_TEXT)
    return st.one_of(specific, anything)


def mutant(node: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """A valid value with exactly one place in it, at any depth, made awkward."""
    node = resolve(node)
    if is_object(node) and properties_of(node):
        properties = properties_of(node)

        def one_key_mutated(key: str) -> st.SearchStrategy[Any]:
            if key == "unexpected":
                return valid(node, name).map(lambda value: {**value, "unexpected": 1})
            return st.tuples(valid(node, name), mutant(properties[key], key)).map(
                lambda pair: {**pair[0], key: pair[1]}
            )

        return st.sampled_from([*properties, "unexpected"]).flatmap(one_key_mutated)
    if node.get("type") == "array":
        items = node.get("items", {})
        return st.tuples(st.lists(valid(items, name), max_size=2), mutant(items, name)).map(
            lambda pair: [*pair[0], pair[1]]
        )
    return awkward(node)


def shaped(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid(node), mutant(node), mutant(node), anything)


def bodies(method: str, path: str) -> st.SearchStrategy[str | None]:
    """The raw body: none, JSON shaped like the request or arbitrary, or not JSON."""
    content = openapi()["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    documents = shaped(schema) if schema else anything
    return st.one_of(
        documents.map(json.dumps),  # floats past JSON's range come out as Infinity
        documents.map(json.dumps),
        st.none(),
        st.sampled_from(
            ["", "nul", "{", '{"a":1', "[1,]", "\ufeff{}", "{}{}", "[" * 40 + "]" * 40]
        ),
        st.text(max_size=50),
    )


def query_strings(method: str, path: str) -> st.SearchStrategy[str]:
    """Query parameters shaped like the operation's, or arbitrary ones."""
    parameters = openapi()["paths"][path][method.lower()].get("parameters", [])
    as_object = {
        "type": "object",
        "properties": {p["name"]: p.get("schema", {}) for p in parameters if p["in"] == "query"},
    }

    def encode(value: Any) -> str:
        if not isinstance(value, dict):
            value = {"q": value}
        return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()})

    arbitrary = st.dictionaries(
        st.one_of(st.sampled_from(["cursor", "page_size", "from", "to"]), texts),
        st.one_of(texts, st.sampled_from(AWKWARD_INSTANT)),
        max_size=3,
    )
    return st.one_of(shaped(as_object), arbitrary).map(encode)


def path_values(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        texts.filter(lambda value: value not in {"", ".", ".."} and "/" not in value),
    ).map(lambda value: quote(value, safe=""))


# --- the property --------------------------------------------------------------------


def written_state() -> tuple[Any, ...]:
    """Row counts of every table the API writes, and the balance totals, in one query."""
    tables = sorted(
        model._meta.db_table
        for model in apps.get_models()
        if model._meta.app_label in WRITTEN_BY_THE_API and model._meta.managed
        and not model._meta.proxy
    )  # fmt: skip
    quote_name = connection.ops.quote_name
    counts = ", ".join(f"(SELECT count(*) FROM {quote_name(table)})" for table in tables)
    sums = "(SELECT coalesce(sum(available), 0) || '/' || coalesce(sum(used), 0) || '/' || "
    sums += "coalesce(sum(reserved), 0) FROM metering_balance)"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}, {sums}")
        row = cursor.fetchone()
    return tuple(zip([*tables, "balance totals"], row, strict=True))


def offline_dns(real: Callable[..., Any]) -> Callable[..., Any]:
    """Webhook hosts are not looked up (DNS is the outside world): any name is a public
    address; loopback (Redis) resolves for real."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in {"127.0.0.1", "localhost", "::1"}:
            return real(host, port, *args, **kwargs)
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror("does not resolve")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]

    return getaddrinfo


@pytest.fixture
def known_ids(world: World, settings, monkeypatch) -> dict[str, list[str]]:
    """Objects for the path parameters to find: of the caller's tenant and of another."""
    monkeypatch.setattr(socket, "getaddrinfo", offline_dns(socket.getaddrinfo))
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.API_RATE_LIMIT_PER_SECOND = 0
    world.alice_api.ingest([event("seen-1", quantity=4)])
    held = authorization_create(tenant=world.alpha, channel_code="sms", quantity=5)
    foreign = authorization_create(tenant=world.beta, channel_code="sms", quantity=5)
    pack = TopUpPack.objects.create(
        channel=Channel.objects.get(code="sms"), units=100, price=Decimal("9.00")
    )
    offer = topup_offer_create(tenant=world.alpha, pack=pack)
    endpoint = webhook_endpoint_create(tenant=world.alpha, url="https://hooks.example/x")
    return {
        "authorization_id": [str(held.public_id), str(foreign.public_id)],
        "offer_id": [str(offer.public_id)],
        "endpoint_id": [str(endpoint.public_id)],
    }


@pytest.mark.parametrize(("method", "path"), operations(), ids=lambda value: value)
def test_any_input_is_answered_2xx_or_with_a_4xx_problem_that_wrote_nothing(
    world: World, known_ids, method: str, path: str
):
    client = world.alice_api.client
    names = re.findall(r"{(\w+)}", path)
    requests = st.tuples(
        st.fixed_dictionaries({name: path_values(known_ids[name]) for name in names}),
        query_strings(method, path),
        bodies(method, path) if method != "GET" else st.none(),
    )

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(request=requests)
    def answers_without_5xx(request: tuple[dict[str, str], str, str | None]) -> None:
        path_values, query, body = request
        url = path.format(**path_values) + (f"?{query}" if query else "")
        with transaction.atomic():
            before = written_state()
            response = client.generic(
                method, url, body if body is not None else "", content_type="application/json"
            )
            status = response.status_code
            assert status < 500, (method, url, body, response.content)
            if status >= 400:
                assert response["Content-Type"] == "application/problem+json", response.content
                assert response.json()["status"] == status
                assert written_state() == before, (method, url, body, response.content)
            transaction.set_rollback(True)

    answers_without_5xx()
