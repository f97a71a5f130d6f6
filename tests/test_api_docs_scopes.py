"""docs/API.md's table of scopes says exactly what the code requires: every API
operation, its scope and whether a platform key may call it — no more, no less."""

from __future__ import annotations

import re
from pathlib import Path

from creditguard.urls import api_v1

API_MD = Path(__file__).resolve().parents[1] / "docs" / "API.md"
ROW = re.compile(
    r"^\| `(GET|POST|PATCH|PUT|DELETE) (/[^`]*)` \| (`[\w:]+`|none) \| (tenant|either) \|$"
)
METHODS = ("get", "post", "patch", "put", "delete")


def documented() -> set[tuple[str, str, str, str]]:
    rows = set()
    for line in API_MD.read_text().splitlines():
        match = ROW.match(line)
        if match:
            method, path, scope, key = match.groups()
            rows.add((method, path, scope.strip("`"), key))
    return rows


def required() -> set[tuple[str, str, str, str]]:
    rows = set()
    for pattern in api_v1:
        view = pattern.callback.cls  # type: ignore[attr-defined]
        path = "/" + re.sub(r"<\w+:(\w+)>", r"{\1}", str(pattern.pattern))
        scopes = [str(scope) for scope in view.required_scopes]
        scope = " ".join(scopes) if scopes else "none"
        key = "tenant" if getattr(view, "tenant_required", True) else "either"
        for method in METHODS:
            if hasattr(view, method):
                rows.add((method.upper(), path, scope, key))
    return rows


def test_the_scope_table_lists_every_operation_as_the_code_requires():
    assert documented() == required()
