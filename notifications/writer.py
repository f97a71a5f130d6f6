"""Formats a notification payload's figures for one language and time zone
(``notifications.messages`` and ``notifications.phrases`` write with it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from creditguard.locale_format import (
    day_text,
    instant_text,
    money_text,
    number_text,
    percent_text,
    period_text,
)

# What a figure that does not read as one raises (decimal's InvalidOperation included).
UNREADABLE = (ArithmeticError, ValueError, TypeError)


@dataclass(frozen=True)
class Writer:
    """Formats a payload's figures for one language and time zone. A figure the payload
    lacks or that does not read as one is shown as written, never an error: the in-app
    list renders every stored notification, whatever its age or producer."""

    p: dict[str, Any]
    language: str
    tz: tzinfo
    notified_at: datetime

    def number(self, key: str) -> str:
        return self.number_of(self.p.get(key))

    def number_of(self, value: Any) -> str:
        try:
            return number_text(value if value is not None else 0, language=self.language)
        except UNREADABLE:
            return str(value)

    def percent(self, key: str) -> str:
        value = self.p.get(key) or 0
        try:
            return percent_text(value, language=self.language)
        except UNREADABLE:
            return str(value)

    def money(self, amount: Any, currency: str, *, exact: bool = False) -> str:
        try:
            return money_text(amount, currency, language=self.language, exact=exact)
        except UNREADABLE:
            return f"{amount} {currency}".strip()

    def instant(self, value: Any, *, midnight_as_day: bool = False) -> str:
        """An ISO instant in words with its time; "" if there is none that reads."""
        if not value:
            return ""
        try:
            return instant_text(
                value if isinstance(value, datetime) else str(value),
                language=self.language, tz=self.tz, midnight_as_day=midnight_as_day,
            )  # fmt: skip
        except UNREADABLE:
            return ""

    def effective(self, key: str) -> str:
        """When a change takes effect: its instant, else the moment it was notified (a
        change takes effect no earlier than its notice)."""
        return self.instant(self.p.get(key), midnight_as_day=True) or self.instant(
            self.notified_at, midnight_as_day=True
        )

    def day(self, key: str) -> str:
        try:
            return day_text(str(self.p[key]), language=self.language) if self.p.get(key) else ""
        except UNREADABLE:
            return ""

    def label(self, part: str) -> str:
        """The channel's name or unit in this language."""
        labels = (self.p.get("channel_labels") or {}).get(self.language) or {}
        fallback = self.p.get("channel_name") or self.p.get("channel") or ""
        return str(labels.get(part) or (fallback if part == "name" else self.p.get("unit", "")))

    def figures(self) -> dict[str, str]:
        p = self.p
        return {
            "channel": self.label("name"),
            "unit": self.label("unit"),
            "used": self.number("used"),
            "available": self.number("available"),
            "overage": self.number("overage_units"),
            "percent": self.percent("percent"),
            "threshold": self.percent("threshold"),
            "period": period_text(str(p.get("period", "")), language=self.language),
            "date": self.day("limit_reached_on"),
        }
