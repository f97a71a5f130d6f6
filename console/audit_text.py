"""An audit entry in words, as the audit list and a tenant's audit trail show it: its
action as a label ("Top-up offer created" for ``topup_offer.create``) and what changed as a
small table of field → value, the ids of related objects replaced by their names.

Names cost queries: ``references_attach`` reads them for a page of entries in one query
per kind of related object (the audit list); a page pinned to a fixed number of queries
(a tenant's page) passes ``known`` names it already holds and shows the others as
"Balance #23"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.html import format_html, format_html_join

from console.formats import staff_instant
from creditguard.audit_labels import words
from creditguard.models import AuditEntry

HIDDEN_FIELDS = {"id"}
LONGEST_VALUE = 120


def _model(label: str) -> type[models.Model] | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _field(model: type[models.Model] | None, key: str) -> Any:
    if model is None:
        return None
    try:
        field = model._meta.get_field(key)
    except FieldDoesNotExist:
        return None
    return field if getattr(field, "concrete", False) else None  # not a reverse relation


def _reference(model: type[models.Model] | None, key: str) -> type[models.Model] | None:
    """The model a snapshot's field ``key`` refers to, if it is a foreign key."""
    field = _field(model, key)
    related = field.related_model if field is not None else None
    if not field or not field.many_to_one or related is None or isinstance(related, str):
        return None
    return related


def _is_key(related: type[models.Model], value: Any) -> bool:
    """Whether ``value`` can be a key of ``related`` (a snapshot may hold a name where
    a key was expected: a membership's user by username)."""
    if isinstance(related._meta.pk, models.AutoField | models.BigAutoField):
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.isdigit()
        )
    return isinstance(value, int | str) and value != ""


def _fields(entry: AuditEntry) -> dict[str, Any]:
    return {**(entry.before or {}), **(entry.after or {})}


Names = Mapping[tuple[str, str], str]


def references_attach(entries: Iterable[AuditEntry]) -> None:
    """Set ``names`` on each entry: the name of every object its before and after refer
    to by id. One query per kind of object referred to among the entries."""
    entries = list(entries)
    wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
    for entry in entries:
        model = _model(entry.object_type)
        for key, value in _fields(entry).items():
            related = _reference(model, key)
            if related is not None and _is_key(related, value):
                wanted[related].add(value)
    names: dict[tuple[str, str], str] = {}
    for related, ids in wanted.items():
        queryset = related._default_manager.select_related(*label_related(related))
        for pk, obj in queryset.in_bulk(list(ids)).items():
            names[(related._meta.label_lower, str(pk))] = str(obj)
    for entry in entries:
        entry.names = names  # type: ignore[attr-defined]


def label_related(model: type[models.Model]) -> list[str]:
    """What an object's label may read: its foreign keys, and theirs (a grant names its
    balance's channel and month), not the people behind them."""
    user = apps.get_model("auth", "User")
    paths = []
    for field in model._meta.concrete_fields:
        related = field.related_model
        if not field.many_to_one or related is None or isinstance(related, str):
            continue
        paths.append(field.name)
        if related is user:
            continue
        paths += [
            f"{field.name}__{inner.name}"
            for inner in related._meta.concrete_fields
            if inner.many_to_one and inner.related_model not in (None, user)
        ]
    return paths


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(_value_text(item) for item in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{words(str(k))}: {_value_text(v)}" for k, v in value.items()) or "—"
    text = str(value)
    return text if len(text) <= LONGEST_VALUE else f"{text[: LONGEST_VALUE - 1]}…"


def _named(model: type[models.Model] | None, key: str, value: Any, names: Names) -> str:
    """A field's value in words: a referred object by its name, a choice by its label,
    an instant in the console's format."""
    if value is None or value == "":
        return "—"
    related = _reference(model, key)
    if related is not None and _is_key(related, value):
        name = names.get((related._meta.label_lower, str(value)))
        kind = str(related._meta.verbose_name).capitalize()
        return name if name is not None else f"{kind} #{value}"
    field = _field(model, key)
    if field is not None and field.choices and not isinstance(value, list | dict):
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, models.DateTimeField) and isinstance(value, str):
        try:
            return staff_instant(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    return _value_text(value)


def change_rows(entry: AuditEntry, names: Names | None = None) -> list[tuple[str, str, str]]:
    """What an entry changed as (field, before, after) in words: every field of a new or
    removed object, only the fields that differ of a changed one."""
    names = names if names is not None else getattr(entry, "names", {})
    model = _model(entry.object_type)
    before, after = entry.before or {}, entry.after or {}
    rows = []
    for key in [*before, *(k for k in after if k not in before)]:
        if key in HIDDEN_FIELDS:
            continue
        old, new = before.get(key), after.get(key)
        if before and after and old == new:
            continue
        rows.append((
            words(key).capitalize(),
            _named(model, key, old, names) if key in before else "",
            _named(model, key, new, names) if key in after else "",
        ))  # fmt: skip
    return rows


def changes_table(entry: AuditEntry, names: Names | None = None) -> str:
    """``change_rows`` as a small table: field, then before → after, or the value of a
    new (or removed) object alone."""
    rows = change_rows(entry, names)
    if not rows:
        return "—"
    cells = [
        (field, f"{old} → {new}" if entry.before and entry.after else (new or old))
        for field, old, new in rows
    ]
    return format_html(
        '<table class="console-factors console-changes"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", cells),
    )
