"""Small server-side SVG charts for the dashboard (no client chart library, no CDN).

Each function returns SVG markup as a SafeString; every text in it (class names, usernames)
is escaped here. Charts scale to their container (viewBox) and carry a <title> per mark, so
hovering shows the exact value.
"""

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
