"""What metering reads from the rules above it, without importing them.

A balance opens with the included credits of the limit rule in force, and the balances
view shows each balance with its limit terms and any staff restriction. Those rules
belong to policies, a layer above metering (docs/ARCHITECTURE.md, "Apps and layers"):
policies registers its reader here when Django starts (``PoliciesConfig.ready``), and
metering calls it through ``rules_reader()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from metering.models import Channel
    from tenants.models import Tenant


class LimitTerms(Protocol):
    """The terms of a limit rule that metering reads: a subset of policies' ``Terms`` (the
    one type of a rule's terms, ``policies/terms.py``), which satisfies this protocol."""

    @property
    def included_units(self) -> int: ...
    @property
    def hard_limit(self) -> int | None: ...
    @property
    def warning_thresholds(self) -> tuple[int, ...]: ...
    @property
    def action(self) -> str: ...


class RulesReader(Protocol):
    def effective_rule(self, *, tenant: Tenant, channel: Channel, at: datetime) -> LimitTerms:
        """The terms in force for a tenant × channel at ``at``."""
        ...

    def effective_rules(
        self, *, tenant: Tenant, channels: list[Channel], at: datetime
    ) -> Mapping[int, LimitTerms]:
        """The terms in force of several channels, by channel id, in a fixed number of
        queries."""
        ...

    def restriction_states(self, *, tenant: Tenant, at: datetime) -> dict[int | None, str]:
        """Staff restrictions in force at ``at``: "suspended" or "restricted" by channel id,
        None for the whole tenant; empty for a tenant without any."""
        ...


_reader: RulesReader | None = None


def rules_reader_register(reader: RulesReader) -> None:
    global _reader  # one registration at start-up (PoliciesConfig.ready), read after
    _reader = reader


def rules_reader() -> RulesReader:
    if _reader is None:
        raise ImproperlyConfigured(
            "No rules reader is registered: metering needs the policies app installed."
        )
    return _reader
