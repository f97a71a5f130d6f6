"""The usage chart's label of the included credits (portal/chart.py) is placed where
neither the running total nor the forecast crosses it, at a phone's size of its text
(issue 11: "Included 2,000" was crossed by the forecast, "Included 500" sat on the red
line on a phone). Checked against the drawn lines themselves, sampled point by point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import translation

from portal.chart import ASCENT_EM, CHAR_EM, DESCENT_EM, ChartDrawing, Label, draw

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 18, tzinfo=UTC)


def drawing(totals: list[int], included: int, projected: int | None) -> ChartDrawing:
    """A month by day: ``totals`` are the running totals of its first days, until NOW."""
    days = [START + timedelta(days=i) for i in range(30)]
    points = [(days[i], total, "") for i, total in enumerate(totals)]
    with translation.override("en"):
        return draw(
            starts_at=START, ends_at=END, until=NOW, points=points, included=included,
            projected=projected, days=days, number=lambda n: f"{n:,}",
            day_label=lambda d: str(d.day),
        )  # fmt: skip


def path_points(path: str) -> list[tuple[float, float]]:
    pairs = (step.split() for step in path.lstrip("M").split(" L"))
    return [(float(x), float(y)) for x, y in pairs]


def sampled(points: list[tuple[float, float]], step: float = 0.5):
    """Points every ``step`` units along the polyline."""
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        n = max(1, int(max(abs(bx - ax), abs(by - ay)) / step))
        for i in range(n + 1):
            yield ax + (bx - ax) * i / n, ay + (by - ay) * i / n


def label_box(d: ChartDrawing, size: float) -> tuple[float, float, float, float]:
    label = d.included_label
    assert label is not None
    width = CHAR_EM * size * len(label.text)
    x, baseline = float(label.x), float(label.y) + float(label.dy.removesuffix("em")) * size
    x0 = x if label.anchor == "start" else x - width
    return x0, baseline - ASCENT_EM * size, x0 + width, baseline + DESCENT_EM * size


def crossings(d: ChartDrawing, size: float) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = label_box(d, size)
    lines = [path_points(d.line)]
    if d.forecast:
        f = d.forecast
        lines.append([(float(f.x1), float(f.y1)), (float(f.x2), float(f.y2))])
    return [(x, y) for line in lines for x, y in sampled(line) if x0 <= x <= x1 and y0 <= y <= y1]


CASES = {
    # the screenshot's SMS: 1,815 of 2,000 used on the first day, forecast 2,197 at the end
    "forecast crosses the level": ([1815] * 25, 2000, 2197),
    # the screenshot's phone calls: 560 of 500 on the first day, forecast 678
    "over the level from the first day": ([560] * 25, 500, 678),
    "far below the level": ([100 * (i + 1) for i in range(25)], 10000, 3600),
    "climbing through the level": ([100 * (i + 1) for i in range(25)], 1200, 3600),
    "a closed period over the level": ([100 * (i + 1) for i in range(25)], 1200, None),
    "nothing used": ([0] * 25, 500, None),
}


@pytest.mark.parametrize(("totals", "included", "projected"), CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("size", [26, 12])  # the stylesheet's phone and desktop sizes
def test_no_line_crosses_the_included_label(totals, included, projected, size):
    d = drawing(totals, included, projected)
    assert d.included_label.text == f"Included {included:,}"
    assert not crossings(d, size)
    x0, _, x1, y1 = label_box(d, size)
    assert d.left <= x0 and x1 <= d.right and y1 <= d.bottom


def test_the_label_goes_above_on_the_left_where_that_is_free_and_moves_when_it_is_not():
    free = drawing([1815] * 25, 2000, 2197).included_label
    assert (free.anchor, free.dy) == ("start", "-0.4em")
    # The phone calls' red line runs just above the level from the first day: below on
    # the right, where the line is above and the forecast rises away.
    moved = drawing([560] * 25, 500, 678).included_label
    assert (moved.anchor, moved.dy) == ("end", "1.15em")


def test_the_old_place_was_crossed():
    """The check above can fail: the label where it stood before, at the right end above
    the level, is crossed by the forecast of the SMS case."""
    d = drawing([1815] * 25, 2000, 2197)
    label = d.included_label
    assert label is not None
    before = Label(label.text, str(d.right - 4), label.y, "-0.4em", "end")
    old = ChartDrawing(**{**d.__dict__, "included_label": before})
    assert crossings(old, 26) and crossings(old, 12)


def test_the_label_is_translated():
    days = [START + timedelta(days=i) for i in range(30)]
    with translation.override("de"):
        d = draw(
            starts_at=START, ends_at=END, until=NOW, points=[(START, 10, "")], included=2000,
            projected=None, days=days, number=lambda n: f"{n:,}".replace(",", "."),
            day_label=lambda day: str(day.day),
        )  # fmt: skip
    assert d.included_label.text == "Inklusive 2.000"
