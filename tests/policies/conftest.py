import pytest


@pytest.fixture(params=["fast path", "full path"])
def authorization_path(request, settings):
    """A test that authorizes runs twice: with the one-statement authorization path
    (PostgreSQL's default) and with the full path alone, which must agree. Only tests
    that authorize ask for it (by argument or ``usefixtures``); the others run once."""
    settings.AUTHORIZATION_FAST_PATH = request.param == "fast path"
    return request.param
