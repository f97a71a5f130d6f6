"""The admin's own form layout for the console's custom pages: a plain form wrapped as
the admin wraps a ModelForm (``helpers.AdminForm``), so that the page includes
``admin/includes/fieldset.html`` and looks like any change form — fieldsets, labels
beside inputs, help text, errors beside their field."""

from __future__ import annotations

from typing import Any

from django import forms, template
from django.contrib.admin import helpers

register = template.Library()


@register.filter
def admin_form(form: forms.Form) -> helpers.AdminForm:
    """``form`` in the admin's fieldsets: its own ``fieldsets`` (as a ModelAdmin declares
    them) when it has them, else one fieldset of every field in order."""
    fieldsets: Any = getattr(form, "fieldsets", None) or [(None, {"fields": list(form.fields)})]
    # AdminForm reads only a form's fields and errors: any form will do, not only a
    # ModelForm as its stubs say.
    return helpers.AdminForm(form, fieldsets, prepopulated_fields={})  # type: ignore[arg-type]
