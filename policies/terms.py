"""The terms of a limit rule: one value type for what a rule version, a cohort default and
the rule in force say, and the judgements on them (valid? worse for the tenant?).

The models (``RuleTerms`` and its two tables) store the terms; everything else reads and
passes them as a ``Terms``: the rule in force (``policies.selectors.EffectiveRule``, a
``Terms`` with where it comes from), a change's before and after, audit and notification
payloads. Metering reads the few terms it needs through the ``LimitTerms`` protocol of
``metering/hooks.py``, which ``Terms`` satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from creditguard.errors import InvalidInput, input_error
from policies.models import DEFAULT_THRESHOLDS, Action, CarryOver, RuleTerms, Window

# The names of the terms, in the order forms and messages list them.
TERM_NAMES = (
    "included_units",
    "hard_limit",
    "action",
    "restrict_units",
    "restrict_window",
    "warning_thresholds",
    "carry_over",
)

# How much each action restricts the tenant, to tell whether a change worsens terms.
ACTION_SEVERITY = {
    Action.NOTIFY_ONLY: 0,
    Action.CHARGE_OVERAGE: 1,
    Action.RESTRICT: 2,
    Action.SUSPEND: 3,
}


@dataclass(frozen=True)
class Terms:
    """A limit rule's seven terms. ``warning_thresholds`` is a tuple (the type is frozen
    and hashable); ``as_fields`` gives it back as the list a JSON field stores."""

    included_units: int
    warning_thresholds: tuple[int, ...] = tuple(DEFAULT_THRESHOLDS)
    hard_limit: int | None = None
    action: str = Action.NOTIFY_ONLY
    restrict_units: int | None = None
    restrict_window: str = ""
    carry_over: str = CarryOver.FORGIVE

    @classmethod
    def of(cls, source: RuleTerms | Terms) -> Terms:
        """The terms of a rule version, a cohort default, or any ``Terms`` (an
        ``EffectiveRule`` becomes its bare terms)."""
        return cls(
            included_units=source.included_units,
            warning_thresholds=_thresholds(source.warning_thresholds),
            hard_limit=source.hard_limit,
            action=source.action,
            restrict_units=source.restrict_units,
            restrict_window=source.restrict_window,
            carry_over=source.carry_over,
        )

    def terms(self) -> Terms:
        """These terms alone, without anything a subclass adds."""
        return Terms.of(self)

    def with_changes(self, changes: dict[str, Any]) -> Terms:
        """These terms with ``changes`` applied; leaving ``restrict`` clears the windowed
        cap, which only that action uses."""
        changes = dict(changes)
        if "warning_thresholds" in changes and isinstance(changes["warning_thresholds"], list):
            changes["warning_thresholds"] = tuple(changes["warning_thresholds"])
        after = replace(self.terms(), **changes)
        if "action" in changes and after.action != Action.RESTRICT:
            after = replace(after, restrict_units=None, restrict_window="")
        return after

    def as_fields(self) -> dict[str, Any]:
        """The terms as model fields and JSON (audit and notification payloads)."""
        data = {f.name: getattr(self, f.name) for f in fields(Terms)}
        data["warning_thresholds"] = list(self.warning_thresholds)
        return data

    def changed(self, after: Terms) -> dict[str, tuple[Any, Any]]:
        """The terms that differ from ``after``: name → (before, after), in form order."""
        before, later = self.terms().as_fields(), after.terms().as_fields()
        return {n: (before[n], later[n]) for n in TERM_NAMES if before[n] != later[n]}


def _thresholds(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else value


def terms_worsen(before: Terms, after: Terms) -> bool:
    """True when the new terms are worse for the tenant in any respect (policy § 8)."""
    return bool(worse_terms(before, after))


def worse_terms(before: Terms, after: Terms) -> set[str]:
    """The terms whose change is worse for the tenant: less included, a lower or new
    ceiling, a harsher action (or a tighter cap under ``restrict``; the cap's terms go with
    the action), the end of carry-over."""
    worse = set()
    if after.included_units < before.included_units:
        worse.add("included_units")
    if after.hard_limit is not None and (
        before.hard_limit is None or after.hard_limit < before.hard_limit
    ):
        worse.add("hard_limit")
    harsher = ACTION_SEVERITY[Action(after.action)] > ACTION_SEVERITY[Action(before.action)]
    tighter = (
        after.action == Action.RESTRICT
        and before.action == Action.RESTRICT
        and (after.restrict_units or 0) < (before.restrict_units or 0)
    )
    if harsher or tighter:
        worse |= {"action", "restrict_units", "restrict_window"}
    if before.carry_over == CarryOver.CARRY and after.carry_over != CarryOver.CARRY:
        worse.add("carry_over")
    return worse


def validate_terms(terms: Terms) -> None:
    """Refuse terms a rule cannot have, naming each field at fault."""
    errors: list[dict[str, Any]] = []

    def bad(field: str, detail: str) -> None:
        errors.append(input_error([field], detail))

    if type(terms.included_units) is not int or terms.included_units < 0:
        bad("included_units", "a whole number of at least 0")
    if terms.hard_limit is not None and (type(terms.hard_limit) is not int or terms.hard_limit < 0):
        bad("hard_limit", "a whole number of at least 0, or empty for no ceiling")
    thresholds = terms.warning_thresholds
    if (
        not isinstance(thresholds, tuple)
        or not thresholds
        or any(type(t) is not int or not 1 <= t <= 1000 for t in thresholds)
        or tuple(sorted(set(thresholds))) != thresholds
    ):
        bad("warning_thresholds", "distinct percentages from 1 to 1000 in rising order")
    if terms.action not in Action.values:
        bad("action", f"one of {', '.join(Action.values)}")
    if terms.action == Action.RESTRICT:
        if terms.restrict_units is None or terms.restrict_units < 0:
            bad("restrict_units", "'restrict' needs the units allowed per window")
        if terms.restrict_window not in Window.values:
            bad("restrict_window", "'restrict' needs a window: hour or day")
    if terms.carry_over not in CarryOver.values:
        bad("carry_over", f"one of {', '.join(CarryOver.values)}")
    if errors:
        raise InvalidInput("The limit rule is not valid.", errors=errors)
