"""Serializer bases shared by the API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

NOT_AN_OBJECT = "The request body must be a JSON object."


class StrictInputSerializer(serializers.Serializer):
    """Refuses a body that is not a JSON object (``null`` included) and fields it does
    not know, so that a typo is an error, not a silent default."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": [NOT_AN_OBJECT]})
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> Any:
        # run_validation has refused anything but an object.
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)
