"""Health check, OpenAPI schema, landing page and API-wide error shapes."""

from __future__ import annotations

from tests.conftest import Api, World


def test_healthz_reports_database_and_redis(db, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert (checks["database"], checks["redis"]) == ("ok", "ok")
    # This process's Redis failures per feature (filled by tests/test_redis_outage.py).
    assert set(checks["redis_failures"]) == {"failed", "skipped_while_open"}


# Redis or the database unreachable: tests/test_redis_outage.py.


def test_openapi_schema_documents_the_endpoints(db, client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/usage-events", "/api/v1/balances", "/api/v1/usage"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_api_docs_and_landing_page_render(db, client):
    assert client.get("/api/docs/").status_code == 200
    assert b"CreditGuard" in client.get("/").content


def test_unknown_api_path_is_problem_404(world: World):
    response = world.alice_api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_wrong_method_is_problem_405(world: World):
    response = world.alice_api.client.delete("/api/v1/balances")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"


def test_unauthenticated_unknown_api_path_is_still_a_problem(db):
    response = Api(None).get("/api/v2/balances")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_openapi_schema_generates_without_warnings(db, tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/api/v1/authorizations/{authorization_id}/commit" in target.read_text()


def test_lean_authorization_body_matches_its_documented_serializer(world: World):
    from policies.apis import AuthorizationOutputSerializer

    body = world.alice_api.post("/api/v1/authorizations", {"channel": "sms", "quantity": 1}).json()
    assert set(body) == set(AuthorizationOutputSerializer().fields)


def test_an_unexpected_error_in_the_api_is_a_logged_problem_500(world: World, monkeypatch, caplog):
    import policies.balances_api

    def crash(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(policies.balances_api, "balances_for_tenant", crash)
    response = world.alice_api.get("/api/v1/balances")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert "disk on fire" not in response.content.decode()  # no internals leak
    assert any("Unhandled error" in record.message for record in caplog.records)
