"""The OpenAPI schema served at /api/schema/ tells the truth about the API: a valid
OpenAPI 3 document whose lists, errors, status codes and request constraints are the
server's own. Expectations are derived by walking the schema (and the views behind it)
wherever the rule is general, so that a new endpoint is held to them too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.urls import resolve
from openapi_spec_validator import validate

from tests.conftest import World

ERROR = re.compile(r"^[45]\d\d$")
PAGINATED_PATHS = {"/api/v1/notifications", "/api/v1/topup-offers", "/api/v1/webhook-endpoints"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    # Serving the schema touches no table; the client answers without a test database.
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def deref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = schema["components"]["schemas"][name]
    return node


def request_schema(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    return deref(schema, operation["requestBody"]["content"]["application/json"]["schema"])


def objects_in(schema: dict[str, Any], node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object schema reachable from ``node`` (properties and array items)."""
    node = deref(schema, node)
    if node.get("type") == "object" or "properties" in node:
        yield node
        for child in node.get("properties", {}).values():
            yield from objects_in(schema, child)
    if "items" in node:
        yield from objects_in(schema, node["items"])


def view_of(path: str) -> Any:
    # Every path parameter is a public id (a UUID).
    filled = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
    return getattr(resolve(filled).func, "view_class", None)


def test_schema_is_a_valid_openapi_document(schema):
    validate(schema)


@pytest.mark.parametrize("path", sorted(PAGINATED_PATHS))
def test_every_paginated_list_pages_through_the_one_list_view(path):
    from creditguard.api.pagination import CursorListApi

    assert issubclass(view_of(path), CursorListApi), path


@pytest.mark.parametrize("path", sorted(PAGINATED_PATHS))
def test_paginated_lists_are_documented_as_next_previous_results(schema, path):
    operation = schema["paths"][path]["get"]
    page = deref(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert page["type"] == "object"
    assert set(page["required"]) >= {"next", "previous", "results"}
    assert page["properties"]["results"]["type"] == "array"
    for link in ("next", "previous"):
        assert page["properties"][link]["nullable"] is True
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {
        "cursor",
        "page_size",
    }


def test_no_other_operation_answers_a_bare_array(schema):
    for path, method, operation in operations(schema):
        for code, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                assert deref(schema, media["schema"]).get("type") != "array", (method, path, code)


def test_every_error_is_documented_as_problem_json(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    for path, method, operation in operations(schema):
        errors = {code: r for code, r in operation["responses"].items() if ERROR.match(code)}
        assert errors, (method, path)
        for code, response in errors.items():
            assert set(response["content"]) == {"application/problem+json"}, (method, path, code)
            assert response["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }


def test_every_operation_documents_401_405_406_429_and_503(schema):
    for path, method, operation in operations(schema):
        assert operation["security"] == [{"ApiKey": []}], (method, path)
        assert {"401", "405", "406", "429", "503"} <= set(operation["responses"]), (method, path)
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def test_403_is_documented_exactly_where_a_scope_or_a_tenant_is_required(schema):
    for path, method, operation in operations(schema):
        view = view_of(path)
        can_refuse = bool(view.required_scopes) or getattr(view, "tenant_required", True)
        assert ("403" in operation["responses"]) is can_refuse, (method, path)


def test_404_is_documented_on_every_route_with_a_path_parameter(schema):
    for path, method, operation in operations(schema):
        if "{" in path:
            assert "404" in operation["responses"], (method, path)


def test_policy_acknowledge_documents_404_for_an_unknown_version(schema):
    assert "404" in schema["paths"]["/api/v1/policy/acknowledge"]["post"]["responses"]


def test_operations_that_read_a_body_document_400_413_and_415(schema):
    for path, method, operation in operations(schema):
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)
        else:
            assert not {"413", "415"} & set(operation["responses"]), (method, path)


def test_request_bodies_refuse_unknown_fields(schema):
    bodies = [(p, m, o) for p, m, o in operations(schema) if "requestBody" in o]
    assert bodies
    for path, method, operation in bodies:
        media = operation["requestBody"]["content"]
        assert set(media) == {"application/json"}, (method, path)
        for node in objects_in(schema, media["application/json"]["schema"]):
            if "properties" in node:
                assert node["additionalProperties"] is False, (method, path, node)


def test_usage_event_batch_constraints(schema):
    batch = request_schema(schema, schema["paths"]["/api/v1/usage-events"]["post"])
    events = batch["properties"]["events"]
    assert events["minItems"] == 1
    assert events["maxItems"] == settings.USAGE_MAX_EVENTS_PER_BATCH
    event = deref(schema, events["items"])
    assert event["properties"]["channel"]["minLength"] == 1
    assert event["properties"]["id"]["minLength"] == 1
    assert event["properties"]["quantity"]["minimum"] == 1
    assert event["properties"]["quantity"]["maximum"] == settings.USAGE_MAX_QUANTITY


def test_authorization_request_constraints(schema):
    body = request_schema(schema, schema["paths"]["/api/v1/authorizations"]["post"])
    assert body["properties"]["channel"]["minLength"] == 1
    assert body["properties"]["quantity"]["minimum"] == 1
    assert body["properties"]["idempotency_key"]["minLength"] == 1


def test_webhook_endpoint_url_is_documented_as_an_http_uri(schema):
    body = request_schema(schema, schema["paths"]["/api/v1/webhook-endpoints"]["post"])
    url = body["properties"]["url"]
    assert url["format"] == "uri"
    assert url["maxLength"] == 500
    assert re.search(url["pattern"], "https://hooks.example.com/creditguard")
    assert not re.search(url["pattern"], "ftp://hooks.example.com/")
    assert re.search(url["pattern"], "https://[2001:db8::1]:8443/creditguard?x=1#y")
    assert not re.search(url["pattern"], "https://hooks.example.com/a b")


def test_stateful_links_point_at_operations_that_exist(schema):
    operation_ids = {o["operationId"] for _, _, o in operations(schema)}
    links = [
        link
        for _, _, operation in operations(schema)
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert {link["operationId"] for link in links} >= {
        "authorizations_commit",
        "authorizations_release",
        "webhook_endpoints_delete",
        "topup_offers_accept",
    }
    assert {link["operationId"] for link in links} <= operation_ids


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_usage_dates_are_rendered_rfc3339_even_in_local_mean_time():
    # Europe/Berlin before 1893 is local mean time, +00:53:28, which RFC 3339 cannot write
    # (GET /usage answered "from": "1890-01-01T00:53:28+00:53:28").
    from metering.apis import rfc3339

    berlin = ZoneInfo("Europe/Berlin")
    moment = datetime(1890, 1, 1, tzinfo=UTC).astimezone(berlin)
    assert RFC3339.match(rfc3339(moment))
    assert datetime.fromisoformat(rfc3339(moment)) == moment
    assert rfc3339(datetime(2026, 11, 24, 10, tzinfo=berlin)) == "2026-11-24T10:00:00+01:00"


def test_usage_dates_are_rfc3339(world: World):
    response = world.alice_api.get(
        "/api/v1/usage",
        {"from": "2026-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z", "granularity": "day"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    stamps = [body["from"], body["to"]] + [
        point["start"] for series in body["series"] for point in series["points"]
    ]
    assert len(stamps) > 2
    for stamp in stamps:
        assert RFC3339.match(stamp), stamp


def test_page_size_is_documented_from_1(schema):
    for path in PAGINATED_PATHS:
        parameters = schema["paths"][path]["get"]["parameters"]
        page_size = next(p for p in parameters if p["name"] == "page_size")
        assert page_size["schema"] == {"type": "integer", "minimum": 1}


@pytest.mark.parametrize("page_size", ["null", "0", "-1", "1.5", "²"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_400(world: World, page_size):
    # It was quietly replaced by the default, which the schema (an integer) did not say.
    response = world.alice_api.get("/api/v1/notifications", {"page_size": page_size})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "page_size"


def test_a_page_size_above_the_largest_page_gives_the_largest_page(world: World):
    response = world.alice_api.get("/api/v1/notifications", {"page_size": "100000"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "https://Ăþ\u000e\u008a?¯n",
        "https://hooks.example.com/a b",
        "https://a%zz/",
        " https://a/",
        "http://[b2.584]/",
    ],
)
def test_a_webhook_url_that_is_not_a_uri_is_400(world: World, url):
    # The schema says format uri; such a URL was stored (201) and listed back as a non-URI.
    response = world.alice_api.post("/api/v1/webhook-endpoints", {"url": url})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "url"
