"""Every string the portal shows has its German translation in the catalogue."""

from __future__ import annotations

import io
from pathlib import Path

import polib
from babel.messages.extract import extract
from django.utils.translation.template import templatize

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "de" / "LC_MESSAGES" / "django.po"
KEYWORDS = {"_": None, "gettext": None, "gettext_lazy": None}


def used_msgids() -> set[str]:
    msgids: set[str] = set()
    for source in (ROOT / "portal").rglob("*.py"):
        msgids |= {str(m[1]) for m in extract("python", io.BytesIO(source.read_bytes()), KEYWORDS)}
    for template in (ROOT / "templates" / "portal").rglob("*.*"):
        pseudo = templatize(template.read_text(), origin=str(template))
        msgids |= {str(m[1]) for m in extract("python", io.BytesIO(pseudo.encode()))}
    return msgids


def test_every_portal_string_has_a_german_translation():
    entries = {e.msgid: e for e in polib.pofile(str(CATALOGUE)) if not e.obsolete}
    used = used_msgids()
    assert len(used) > 100
    missing = sorted(m for m in used if m not in entries)
    assert not missing, f"not in the catalogue: {missing}"
    untranslated = sorted(m for m in used if not entries[m].msgstr or entries[m].fuzzy)
    assert not untranslated, f"untranslated or fuzzy: {untranslated}"


def test_the_german_catalogue_words_top_ups_and_the_overview_one_way():
    """A top-up is an "Aufladung" everywhere (portal and messages, not also
    "Aufstockung"), and a message naming the overview page calls it by the menu's name,
    "Übersicht", not "Dashboard" (issue 11)."""
    entries = [e for e in polib.pofile(str(CATALOGUE)) if not e.obsolete]
    assert any("Aufladung" in e.msgstr for e in entries)
    mixed = [e.msgid for e in entries if "ufstock" in e.msgstr or "Dashboard" in e.msgstr]
    assert not mixed, f"Aufstockung or Dashboard in: {mixed}"
