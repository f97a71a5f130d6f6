import pytest


@pytest.fixture(autouse=True, params=["fast path", "full path"])
def authorization_path(request, settings):
    """Every rules-engine test runs twice: with the one-statement authorization path
    (PostgreSQL's default) and with the full path alone, which must agree."""
    settings.AUTHORIZATION_FAST_PATH = request.param == "fast path"
    return request.param
