"""Serializer fields shared by the API, and the one rule for instants the API accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rest_framework import serializers

# An instant the API accepts: ISO 8601 with a UTC offset PostgreSQL can hold (at most
# ±15:59), from 2000 to 9000 — far enough from year 1 and 9999 that shifting it to any
# time zone, or to a period's end, cannot overflow Python's datetime.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)

NOT_ISO = "not an ISO 8601 date-time, e.g. 2026-11-24T10:00:00Z"
NAIVE = "needs a UTC offset, e.g. 2026-11-24T10:00:00Z"
BAD_OFFSET = "the UTC offset must lie within ±15:59"
OUT_OF_RANGE = "must lie between 2000-01-01 and 9000-01-01"


def instant_parse(value: str) -> datetime:
    """``value`` as an aware datetime in UTC, or ``ValueError`` saying what is wrong."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(NOT_ISO) from None
    offset = parsed.utcoffset()
    if offset is None:
        raise ValueError(NAIVE)
    if abs(offset) > MAX_UTC_OFFSET:
        raise ValueError(BAD_OFFSET)
    if not EARLIEST_INSTANT <= parsed < LATEST_INSTANT:
        raise ValueError(OUT_OF_RANGE)
    return parsed.astimezone(UTC)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset (a time without one is ambiguous), in the range of
    :func:`instant_parse`; the value in UTC."""

    default_error_messages = {"invalid": "Not an ISO 8601 date-time, e.g. 2026-11-24T10:00:00Z."}

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            return instant_parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string, float or boolean that looks like one."""

    default_error_messages = {"invalid": "Must be a whole number (a JSON integer)."}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return int(super().to_internal_value(data))
