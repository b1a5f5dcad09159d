"""The one chart engine: SVG drawn on the server, for the dashboard and for the benchmark and
`simulate` figures (no client chart library, no CDN, no plotting package).

Each function returns SVG markup as a SafeString; every text in it (class names, usernames)
is escaped here. Charts scale to their container (viewBox) and carry a <title> per mark, so
hovering shows the exact value. `learning_curve_file` writes a standalone .svg file.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]


def bar_chart(bars: list[tuple[str, int]], *, width: int = 560, bar_height: int = 22) -> SafeString:
    """Horizontal bars, one per (label, value), longest = full width."""
    if not bars:
        return mark_safe('<p class="muted">No labels yet.</p>')
    label_w, gap = 140, 6
    top = max(v for _, v in bars) or 1
    height = len(bars) * (bar_height + gap) + gap
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="labels per class" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(bars):
        y = gap + i * (bar_height + gap)
        w = (width - label_w - 60) * value / top
        name = escape(label if len(label) <= 20 else label[:19] + "…")
        baseline = y + bar_height * 0.7
        parts.append(
            f'<text x="{label_w - 8}" y="{baseline:.1f}" text-anchor="end">{name}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}: {value}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{baseline:.1f}">{value}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def line_chart(
    series: list[tuple[str, list[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    y_max: float = 1.0,
    percent: bool = True,
    width: int = 560,
    height: int = 260,
) -> SafeString:
    """Lines of (x, y) points against a shared x axis; y from 0 to `y_max`."""
    points = [p for _, s in series for p in s]
    if not points:
        return mark_safe('<p class="muted">No points yet.</p>')
    left, right, top, bottom = 48, 16, 16, 40
    x_max = max(x for x, _ in points) or 1

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (width - left - right) * x / x_max,
            top + (height - top - bottom) * (1 - min(y, y_max) / y_max),
        )

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(y_label)} by {escape(x_label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="none" stroke="#999"/>',
    ]
    for i in range(5):
        value = y_max * i / 4
        _, y = px(0, value)
        tick = f"{value:.0%}" if percent else f"{value:g}"
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    for i in range(5):
        value = x_max * i / 4
        x, _ = px(value, 0)
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{value:.0f}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    for index, (name, pts) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (px(*p) for p in pts))
        if len(pts) > 1:
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for x_value, y_value in pts:
            cx, cy = px(x_value, y_value)
            shown = f"{y_value:.0%}" if percent else f"{y_value:g}"
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(name)}: {shown} at {x_value:g} {escape(x_label)}</title></circle>"
            )
        legend_y = top + 14 + 16 * index
        parts.append(f'<text x="{left + 8}" y="{legend_y}" fill="{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


@dataclass(frozen=True)
class Series:
    """A learning curve: accuracy per seed (`runs`, each aligned with `labels`)."""

    name: str
    labels: list[int]
    runs: list[list[float | None]]


def _mean_band(runs: list[list[float | None]]) -> list[tuple[float, float, float] | None]:
    """Per x: (mean, min, max) over the seeds that have a value, or None."""
    out: list[tuple[float, float, float] | None] = []
    for values in zip(*runs, strict=True):
        present = [v for v in values if v is not None]
        out.append((sum(present) / len(present), min(present), max(present)) if present else None)
    return out


def learning_curve_svg(
    series: list[Series],
    *,
    title: str,
    reference: float | None = None,
    reference_label: str = "all labels",
    width: int = 900,
    height: int = 560,
) -> SafeString:
    """One line per series (the mean over seeds, with a min–max band when there are
    several), a dashed line at `reference` (the full-label accuracy), axes and a legend."""
    left, right, top, bottom = 70, 210, 44, 55
    xs = [x for one in series for x in one.labels] or [0, 1]
    ys = [v for one in series for run in one.runs for v in run if v is not None]
    ys += [reference] if reference is not None else []
    x_max = max(xs) or 1
    y_low = max(0.0, math.floor(((min(ys) if ys else 0.0) - 0.02) * 10) / 10)
    y_high = min(1.0, math.ceil(((max(ys) if ys else 1.0) + 0.02) * 10) / 10)

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (width - left - right) * x / x_max,
            top + (height - top - bottom) * (1 - (y - y_low) / max(y_high - y_low, 1e-9)),
        )

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="sans-serif" font-size="14">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18">{escape(title)}</text>',
        f'<text x="8" y="{top - 6}">test accuracy</text>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "labels</text>",
    ]
    for i in range(6):
        y = y_low + (y_high - y_low) * i / 5
        _, py = px(0, y)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{py:.1f}" y2="{py:.1f}" stroke="#e6e6e6"/>'
            f'<text x="{left - 8}" y="{py + 5:.1f}" text-anchor="end">{y:.0%}</text>'
        )
        x = x_max * i / 5
        pxx, _ = px(x, y_low)
        parts.append(
            f'<text x="{pxx:.1f}" y="{height - bottom + 20}" text-anchor="middle">{x:.0f}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="none" stroke="black"/>'
    )
    if reference is not None:
        _, ry = px(0, reference)
        parts.append(
            f'<line class="reference" x1="{left}" x2="{width - right}" y1="{ry:.1f}" '
            f'y2="{ry:.1f}" stroke="black" stroke-dasharray="6 6"/>'
            f'<text x="{left + 8}" y="{ry - 6:.1f}">{escape(reference_label)}: '
            f"{reference:.1%}</text>"
        )
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = [
            (x, band) for x, band in zip(one.labels, _mean_band(one.runs), strict=True) if band
        ]
        if len(one.runs) > 1 and len(points) > 1:
            outline = [px(x, hi) for x, (_, _, hi) in points]
            outline += [px(x, lo) for x, (_, lo, _) in points[::-1]]
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in outline)
            parts.append(f'<polygon points="{coords}" fill="{colour}" fill-opacity="0.16"/>')
        if len(points) > 1:
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, m) for x, (m, _, _) in points))
            parts.append(
                f'<polyline class="series" points="{coords}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        for x, (mean, _, _) in points:
            cx, cy = px(x, mean)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(one.name)}: {mean:.1%} at {x} labels</title></circle>"
            )
        ly = top + 14 + 22 * index
        parts.append(
            f'<line x1="{width - right + 10}" x2="{width - right + 30}" y1="{ly - 5}" '
            f'y2="{ly - 5}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{width - right + 36}" y="{ly}">{escape(one.name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def learning_curve_file(path: Path, series: list[Series], **options) -> Path:
    """`learning_curve_svg` written to `path` (an .svg file any browser or README shows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(learning_curve_svg(series, **options)) + "\n")
    return path
