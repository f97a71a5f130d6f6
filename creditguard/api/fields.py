"""Serializer fields shared by the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset; a time without one is ambiguous and refused."""

    default_error_messages = {
        "invalid": "Not an ISO 8601 date-time, e.g. 2026-11-24T10:00:00Z.",
        "naive": "Needs a UTC offset, e.g. 2026-11-24T10:00:00Z.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail("invalid")
        if parsed.tzinfo is None:
            self.fail("naive")
        return parsed


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string, float or boolean that looks like one."""

    default_error_messages = {"invalid": "Must be a whole number (a JSON integer)."}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return int(super().to_internal_value(data))
