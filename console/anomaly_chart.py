"""The evidence chart of an anomaly alert as inline SVG, drawn on the server (no script, no
CDN): units per hour as bars, the normal for each hour (the median of the same hour in the
weeks before) as a line, the hour judged in red, and the throttle's cap as a dashed line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

HOUR = timedelta(hours=1)
WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 30


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def evidence_svg(
    series: Sequence[dict[str, Any]], *, judged: tuple[datetime, datetime] | None,
    cap: int | None = None,
) -> SafeString:  # fmt: skip
    """The chart of ``series`` (the alert's evidence: ``at``, ``units``, ``normal`` per
    hour); hours overlapping the ``judged`` hour (from, to) are drawn as the spike."""
    if not series:
        return format_html("<p>{}</p>", "No evidence recorded.")
    top = max(
        [1.0, *(float(p["units"]) for p in series), *(float(p["normal"]) for p in series)]
        + ([float(cap)] if cap else [])
    )
    top *= 1.08
    step = (WIDTH - LEFT - RIGHT) / len(series)
    bars, normal = [], []
    for index, point in enumerate(series):
        x = LEFT + index * step
        at = datetime.fromisoformat(point["at"])
        spike = judged is not None and judged[0] - HOUR < at < judged[1]
        y = _y(float(point["units"]), top)
        bars.append(
            (
                f"{x + 1:.1f}",
                f"{y:.1f}",
                f"{max(step - 2, 1):.1f}",
                f"{HEIGHT - BOTTOM - y:.1f}",
                "#ba2121" if spike else "#79aec8",
                f"{at:%a %H:%M} UTC: {point['units']} units (normal {point['normal']:g})",
            )
        )
        normal.append(f"{x + step / 2:.1f},{_y(float(point['normal']), top):.1f}")
    first, last = datetime.fromisoformat(series[0]["at"]), datetime.fromisoformat(series[-1]["at"])
    cap_line = SafeString("")
    if cap:
        cap_y = _y(cap, top)
        cap_line = format_html(
            '<line x1="{l}" x2="{r}" y1="{y}" y2="{y}" stroke="#333" stroke-dasharray="6 4"/>'
            '<text x="{r}" y="{ty}" font-size="11" text-anchor="end">throttle {cap}/h</text>',
            l=LEFT, r=WIDTH - RIGHT, y=f"{cap_y:.1f}", ty=f"{cap_y - 4:.1f}", cap=cap,
        )  # fmt: skip
    return format_html(
        '<svg class="anomaly-chart" role="img" viewBox="0 0 {w} {h}" width="100%" '
        'style="max-width:{w}px" xmlns="http://www.w3.org/2000/svg">'
        "<title>Units per hour, last {n} hours, against the normal for each hour</title>"
        '<line x1="{l}" x2="{l}" y1="{t}" y2="{b}" stroke="#999"/>'
        '<line x1="{l}" x2="{r}" y1="{b}" y2="{b}" stroke="#999"/>'
        '<text x="{lt}" y="{tt}" font-size="11" text-anchor="end">{top}</text>'
        '<text x="{lt}" y="{b}" font-size="11" text-anchor="end">0</text>'
        "{bars}"
        '<polyline points="{normal}" fill="none" stroke="#e08e0b" stroke-width="2.5"/>'
        "{cap}"
        '<rect x="{lg}" y="4" width="10" height="10" fill="#79aec8"/>'
        '<text x="{lg1}" y="13" font-size="11">units</text>'
        '<rect x="{lg2}" y="4" width="10" height="10" fill="#ba2121"/>'
        '<text x="{lg3}" y="13" font-size="11">hour judged</text>'
        '<line x1="{lg4}" x2="{lg5}" y1="9" y2="9" stroke="#e08e0b" stroke-width="2.5"/>'
        '<text x="{lg6}" y="13" font-size="11">normal</text>'
        '<text x="{l}" y="{bl}" font-size="11">{first}</text>'
        '<text x="{r}" y="{bl}" font-size="11" text-anchor="end">{last}</text>'
        "</svg>",
        w=WIDTH, h=HEIGHT, n=len(series), l=LEFT, r=WIDTH - RIGHT, t=TOP, b=HEIGHT - BOTTOM,
        lt=LEFT - 6, tt=TOP + 4, top=round(top / 1.08), bl=HEIGHT - 10,
        bars=format_html_join(
            "",
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}">'
            "<title>{}</title></rect>",
            bars,
        ),
        normal=" ".join(normal), cap=cap_line, lg=WIDTH - 250, lg1=WIDTH - 236,
        lg2=WIDTH - 196, lg3=WIDTH - 182, lg4=WIDTH - 106, lg5=WIDTH - 90, lg6=WIDTH - 84,
        first=f"{first:%a %d %b %H:%M} UTC", last=f"{last:%a %d %b %H:%M} UTC",
    )  # fmt: skip
