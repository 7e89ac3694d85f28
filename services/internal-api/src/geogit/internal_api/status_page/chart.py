"""The lag-over-time chart, drawn on the server as SVG: no JavaScript and no build step, and
it prints and reads out (a title, a description and a table of the same numbers beside it).

One line per site for the p99 of each minute, a dashed one for its median, over the last
hour; the y axis runs from 0 to a round number above the highest point.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from xml.etree import ElementTree as ET

from geogit.internal_api.status_page.views import CHART_WINDOW, LagPoint

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
# Colour-blind-safe (Okabe-Ito), one per site in order; dashes tell p50 from p99.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def _ceiling(value_ms: float) -> float:
    """The next of 1, 2 or 5 times a power of ten at or above the value: a readable axis."""
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value_ms:
                return step * factor
        step *= 10


def _label(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def _x(moment: datetime, start: datetime) -> float:
    fraction = (moment - start) / CHART_WINDOW
    return LEFT + max(0.0, min(1.0, fraction)) * (WIDTH - LEFT - RIGHT)


def _y(ms: float, top_ms: float) -> float:
    return TOP + (1 - ms / top_ms) * (HEIGHT - TOP - BOTTOM)


def _text(parent: ET.Element, x: float, y: float, text: str, anchor: str) -> None:
    node = ET.SubElement(parent, "text", x=f"{x:.1f}", y=f"{y:.1f}", attrib={"text-anchor": anchor})
    node.text = text


def _axes(svg: ET.Element, start: datetime, top_ms: float) -> None:
    for fraction in (0.0, 0.5, 1.0):
        ms = top_ms * fraction
        y = _y(ms, top_ms)
        ET.SubElement(
            svg, "line", x1=str(LEFT), x2=str(WIDTH - RIGHT), y1=f"{y:.1f}", y2=f"{y:.1f}"
        ).set("class", "grid")
        _text(svg, LEFT - 6, y + 4, _label(ms), "end")
    for minutes_ago in (60, 45, 30, 15, 0):
        x = _x(start + CHART_WINDOW - timedelta(minutes=minutes_ago), start)
        _text(svg, x, HEIGHT - 8, f"-{minutes_ago} min" if minutes_ago else "now", "middle")


def _line(svg: ET.Element, points: list[tuple[float, float]], stroke: str, dashed: bool) -> None:
    attributes = {"fill": "none", "stroke": stroke, "stroke-width": "2"}
    if dashed:
        attributes["stroke-dasharray"] = "5 4"
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    if len(points) == 1:
        x, y = points[0]
        ET.SubElement(svg, "circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r="3", fill=stroke)
    else:
        ET.SubElement(svg, "polyline", points=path, attrib=attributes)


def lag_chart(series: dict[str, list[LagPoint]], sites: list[str], now: datetime) -> str:
    """The SVG element, as markup safe to place in the page (ElementTree escapes the text)."""
    start = now - CHART_WINDOW
    highest = max((p.p99_ms for points in series.values() for p in points), default=0.0)
    top_ms = _ceiling(max(highest, 100.0))
    svg = ET.Element(
        "svg",
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {WIDTH} {HEIGHT}",
        role="img",
        attrib={"aria-labelledby": "lag-chart-title lag-chart-desc", "class": "chart"},
    )
    ET.SubElement(svg, "title", id="lag-chart-title").text = "Replication lag, last hour"
    described = ", ".join(
        f"{site}: {len(series.get(site, []))} minutes with syncs" for site in sites
    )
    ET.SubElement(
        svg, "desc", id="lag-chart-desc"
    ).text = (
        f"p99 (solid) and median (dashed) per minute; y axis up to {_label(top_ms)}. {described}."
    )
    _axes(svg, start, top_ms)
    for index, site in enumerate(sites):
        points = series.get(site, [])
        if not points:
            continue
        for dashed, value in ((False, "p99_ms"), (True, "p50_ms")):
            coords = [(_x(p.minute, start), _y(getattr(p, value), top_ms)) for p in points]
            _line(svg, coords, colour(index), dashed)
    return ET.tostring(svg, encoding="unicode")
