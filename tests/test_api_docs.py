"""/api/docs/ works with no internet: Swagger UI's files come from the app
(drf-spectacular-sidecar, collected as static files), the page names no other host, and
in a real Chromium that may reach nothing but the server it renders every operation."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from playwright.sync_api import Route, expect

from tests.portal.test_browser import SHOTS, browser  # noqa: F401 - the fixture

SIDECAR = "drf_spectacular_sidecar/swagger-ui-dist/"
ASSETS = ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"]


def referenced_urls(html: str) -> list[str]:
    """Every address the page loads or links: src/href attributes and url(...)."""
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""url\(\s*["']?([^"')]+)""", html
    )


def test_the_docs_page_references_no_other_host(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = referenced_urls(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls), urls
    for url in urls:
        assert not urlsplit(url).netloc and not url.startswith("//"), url
    # and none spelled out elsewhere (a script building one, a validator badge)
    assert not re.search(r"https?://", html.replace("http://testserver", "")), html


def test_the_docs_assets_are_static_files_of_the_app(client, db):
    html = client.get("/api/docs/").content.decode()
    for name in ASSETS:
        assert finders.find(SIDECAR + name), name  # what collectstatic collects
        (url,) = [u for u in referenced_urls(html) if u.endswith(name)]
        assert url.startswith("/static/" + SIDECAR), url


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_swagger_ui_renders_the_operations_with_the_network_off(
    live_server,
    browser,  # noqa: F811 - the fixture
):
    server = urlsplit(live_server.url).netloc
    refused: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == server:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/*", only_the_server)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("CreditGuard API")
    for path in ("/api/v1/usage-events", "/api/v1/authorizations/{authorization_id}"):
        expect(page.get_by_text(path, exact=True).first).to_be_visible()
    expect(page.locator(".opblock")).not_to_have_count(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs-offline.png"))
    assert refused == [], refused
    assert failed == [], failed
    page.close()
