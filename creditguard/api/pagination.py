"""Cursor pagination for every list: stable under inserts, a ``next`` link."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    ordering = ("-created_at", "-pk")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # A page always carries both links (null at either end), as the schema now says.
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"] = ["next", "previous", "results"]
        return paginated
