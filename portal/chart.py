"""The usage chart's drawing, computed here and written as inline SVG by the template
(``templates/portal/includes/usage_chart.html``): no chart library, nothing from a CDN.

One chart per channel and period: the running total of the units used as a line over an
area, the included credits as a level line, and for the current period the forecast as a
dashed line from now to the period's end. Time runs left to right in proportion to the
instants, so a day of 23 or 25 hours (the DST changes) is as wide as it lasts. Coordinates
are in the SVG's user units (``WIDTH`` x ``HEIGHT``); the SVG scales to the width of its
box, and the stylesheet enlarges the labels and drops every other one on a phone."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from html import escape
from itertools import pairwise

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

WIDTH = 720
HEIGHT = 300
TOP, RIGHT, BOTTOM = 18, 18, 34
X_TICKS = 7  # about as many day labels along the time axis
Y_TICKS = 4  # about as many steps up the units axis


@dataclass(frozen=True)
class Tick:
    at: str  # x or y in user units, written for the SVG
    label: str
    alternate: bool  # dropped on a phone, where every other label would overlap


@dataclass(frozen=True)
class Hit:
    """A bucket's column, for the tooltip."""

    x: str
    width: str
    tip: str


@dataclass(frozen=True)
class Segment:
    x1: str
    y1: str
    x2: str
    y2: str


@dataclass(frozen=True)
class Label:
    """The included credits' label: at ``x``, ``y`` (the level line) with its baseline
    ``dy`` above or below it, anchored at its ``anchor`` end."""

    text: str
    x: str
    y: str
    dy: str
    anchor: str


@dataclass(frozen=True)
class ChartDrawing:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    line: str  # path of the running total
    area: str  # the same, closed down to the axis
    included_y: str | None
    included_label: Label | None
    forecast: Segment | None
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    hits: list[Hit]
    now_x: str | None  # where the current period's "now" stands

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def hits_markup(self) -> SafeString:
        """The columns as SVG, written here rather than by a template loop: a month by
        hour has 745 per channel."""
        top, height = self.top, self.plot_height
        # Safe: the coordinates are numbers written here, the tip is escaped.
        return mark_safe(  # noqa: S308
            "".join(
                f'<rect x="{hit.x}" y="{top}" width="{hit.width}" height="{height}" '
                f'data-tip="{escape(hit.tip, quote=True)}"></rect>'
                for hit in self.hits
            )
        )


def nice_step(span: float, ticks: int = Y_TICKS) -> int:
    """A round step (1, 2, 2.5 or 5 times a power of ten, at least 1) that cuts ``span``
    into about ``ticks`` parts."""
    raw = max(span / ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if step >= raw and step == int(step):
            return int(step)
    return int(10 * power)


# The label's box in ems of its font, for placing it: a character's width at the bold
# weight, the ascent and descent around the baseline, the baseline's offset from the line.
CHAR_EM, ASCENT_EM, DESCENT_EM = 0.64, 0.8, 0.25
ABOVE_EM, BELOW_EM = -0.4, 1.15
# Label sizes in user units: the stylesheet's 12px, and 26px on a phone, where the SVG is
# drawn at about half its width (portal.css).
FONT_SIZES = (26, 12)

Point = tuple[float, float]


def _y_span(polyline: list[Point], x0: float, x1: float) -> tuple[float, float] | None:
    """The lowest and highest y of ``polyline`` (points by increasing x) between ``x0``
    and ``x1``; None if it has no point there."""
    ys: list[float] = []
    for (ax, ay), (bx, by) in pairwise(polyline):
        lo, hi = max(ax, x0), min(bx, x1)
        if lo > hi:
            continue
        for x in (lo, hi):
            ys.append(ay if bx == ax else ay + (by - ay) * (x - ax) / (bx - ax))
        if bx == ax:  # a vertical step covers its whole height
            ys += [ay, by]
    return (min(ys), max(ys)) if ys else None


def place_label(
    text: str, *, y: float, left: float, right: float, bottom: float, lines: list[list[Point]]
) -> Label:
    """Where the included credits' label crosses none of ``lines`` (the running total, the
    forecast): above the level line on the left, else above on the right, below on the
    left, below on the right — judged at a phone's size, else at a desktop's; failing
    all, above on the left (the stylesheet's white halo keeps it legible)."""
    places = [
        (ABOVE_EM, "start", left + 6),
        (ABOVE_EM, "end", right - 6),
        (BELOW_EM, "start", left + 6),
        (BELOW_EM, "end", right - 6),
    ]
    for size in FONT_SIZES:
        for dy, anchor, x in places:
            width = CHAR_EM * size * len(text)
            x0, x1 = (x, x + width) if anchor == "start" else (x - width, x)
            baseline = y + dy * size
            top, low = baseline - ASCENT_EM * size - 3, baseline + DESCENT_EM * size + 3
            if low > bottom or x0 < left or x1 > right:
                continue
            spans = [_y_span(line, x0 - 3, x1 + 3) for line in lines]
            if all(span is None or span[1] < top or span[0] > low for span in spans):
                return Label(text, _coordinate(x), _coordinate(y), f"{dy}em", anchor)
    return Label(text, _coordinate(left + 6), _coordinate(y), f"{ABOVE_EM}em", "start")


def _coordinate(value: float, digits: int = 1) -> str:
    """A coordinate as SVG reads it, whatever the locale: a point, no grouping."""
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def draw(
    *,
    starts_at: datetime,
    ends_at: datetime,
    until: datetime,
    points: list[tuple[datetime, int, str]],
    included: int,
    projected: int | None,
    days: list[datetime],
    number: Callable[[int], str],
    day_label: Callable[[datetime], str],
) -> ChartDrawing:
    """The drawing of one channel's period [``starts_at``, ``ends_at``), used up to
    ``until``: ``points`` are the buckets (start, running total at its end, tooltip),
    ``days`` the local midnights in the period (the time axis' labels), ``projected``
    the forecast at the period's end (None: no forecast line), ``number`` and
    ``day_label`` format the axis labels for the locale."""
    top_value = max([1, included, projected or 0, *(total for _, total, _ in points)])
    step = nice_step(top_value * 1.05)
    y_max = step * math.ceil(top_value * 1.05 / step)
    y_labels = [number(step * i) for i in range(int(y_max / step) + 1)]
    # Room for the longest label, at the larger size a phone shows them in.
    left = 16 + 12 * max(len(label) for label in y_labels)
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    span = (ends_at - starts_at).total_seconds() or 1

    def x_of(moment: datetime) -> float:
        return left + (right - left) * (moment - starts_at).total_seconds() / span

    def y_of(value: float) -> float:
        return bottom - (bottom - TOP) * value / y_max

    ends = [start for start, _, _ in points[1:]] + [until]
    vertices = [(x_of(starts_at), y_of(0))] + [
        (x_of(end), y_of(total)) for end, (_, total, _) in zip(ends, points, strict=True)
    ]
    line = "M" + " L".join(f"{_coordinate(x)} {_coordinate(y)}" for x, y in vertices)
    area = f"{line} L{_coordinate(vertices[-1][0])} {bottom} L{_coordinate(left)} {bottom} Z"
    last_total = points[-1][1] if points else 0
    forecast = None
    lines = [vertices]
    if projected is not None and until < ends_at:
        ahead = [(x_of(until), y_of(last_total)), (x_of(ends_at), y_of(projected))]
        lines.append(ahead)
        forecast = Segment(*(_coordinate(value) for point in ahead for value in point))
    label = None
    if included > 0:
        label = place_label(
            _("Included %(included)s") % {"included": number(included)},
            y=y_of(included), left=left, right=right, bottom=bottom, lines=lines,
        )  # fmt: skip
    every = max(1, math.ceil(len(days) / X_TICKS))
    x_ticks = [
        Tick(
            at=_coordinate(x_of(day)),
            label=day_label(day),
            alternate=bool((index // every) % 2),
        )
        for index, day in enumerate(days)
        if index % every == 0 and x_of(day) <= right - 20
    ]
    y_ticks = [
        Tick(at=_coordinate(y_of(step * i)), label=label, alternate=bool(i % 2))
        for i, label in enumerate(y_labels)
    ]
    hits = [
        Hit(
            x=_coordinate(x_of(start), 2),
            width=_coordinate(max(x_of(end) - x_of(start), 0.5), 2),
            tip=tip,
        )
        for end, (start, _, tip) in zip(ends, points, strict=True)
    ]
    return ChartDrawing(
        width=WIDTH,
        height=HEIGHT,
        left=left,
        top=TOP,
        right=right,
        bottom=bottom,
        line=line,
        area=area,
        included_y=_coordinate(y_of(included)) if included > 0 else None,
        included_label=label,
        forecast=forecast,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        hits=hits,
        now_x=_coordinate(x_of(until)) if until < ends_at else None,
    )


def local_midnights(starts_at: datetime, ends_at: datetime, tz: tzinfo) -> list[datetime]:
    """Every local midnight in [``starts_at``, ``ends_at``) in zone ``tz``."""
    local = starts_at.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if day < local:
        day = (day.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=day.tzinfo)
    days: list[datetime] = []
    while day < ends_at:
        days.append(day)
        day = (day.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=day.tzinfo)
    return days
