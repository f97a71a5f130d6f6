"""The fair use policy's text as HTML: its stored text is plain paragraphs, a numbered
heading ("4. Determining usage limits") on a line of its own. Every line is escaped;
only the structure is added."""

from __future__ import annotations

import re

from django.utils.html import format_html_join
from django.utils.safestring import SafeString

# "4. Determining usage limits": a number, a short title, no closing full stop.
_HEADING = re.compile(r"^\d+(\.\d+)*\.?\s+\S.{0,80}$")


def policy_html(text: str) -> SafeString:
    blocks: list[tuple[str, str, str]] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip().lstrip("#").strip()
        if line:
            tag = "h2" if _HEADING.match(line) and not line.endswith(".") else "p"
            blocks.append((tag, line, tag))
    return format_html_join("\n", "<{}>{}</{}>", blocks)
