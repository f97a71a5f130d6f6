"""Cursor pagination for every list: stable under inserts, a ``next`` link."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from creditguard.api.fields import instant_parse


class NewestFirstCursorPagination(CursorPagination):
    ordering: tuple[str, ...] = ("-created_at", "-pk")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The cursor, or 400 ``invalid cursor``: DRF answers a malformed one with 404,
        and passes the position it carries to the query unchecked; it must be an
        instant, as the ``created_at`` it was made from (``position_check``)."""
        try:
            cursor: Cursor | None = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                self.position_check(str(cursor.position))
        except (NotFound, ValueError):
            raise ValidationError({self.cursor_query_param: ["invalid cursor"]}) from None
        return cursor

    def position_check(self, position: str) -> None:
        """Raise ``ValueError`` unless ``position`` is one this ordering writes."""
        instant_parse(position)

    def get_page_size(self, request: Request) -> int:
        """``page_size`` is a whole number from 1 (above ``max_page_size``, that many);
        anything else is 400, not quietly the default, as the schema says."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise ValidationError({self.page_size_query_param: ["a whole number from 1"]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # A page always carries both links (null at either end), as the schema says.
        paginated: dict[str, Any] = super().get_paginated_response_schema(schema)
        paginated["required"] = ["next", "previous", "results"]
        return paginated


# A view whose GET is a list, newest first, a page at a time: every list endpoint answers
# through ``page_of``, and the schema documents each as the same page shape. (A comment,
# not a docstring: the schema would take a docstring as the description of every list.)
class CursorListApi(APIView):
    pagination_class = NewestFirstCursorPagination

    def page_of(
        self, request: Request, queryset: QuerySet[Any], serializer_class: type[BaseSerializer]
    ) -> Response:
        """The page the request's cursor asks for, rendered by ``serializer_class``."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
