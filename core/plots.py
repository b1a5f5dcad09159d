"""Learning-curve charts as PNG, drawn with Pillow (no plotting library needed).

`learning_curve_png` draws one line per series (mean over seeds, with a min–max band when
there are several), a dashed line at the full-label accuracy, axes with ticks and a legend.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

PALETTE = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (23, 190, 207),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


@dataclass(frozen=True)
class Series:
    name: str
    labels: list[int]
    runs: list[list[float | None]]  # one accuracy list per seed, aligned with `labels`


def _mean_band(runs: list[list[float | None]]) -> tuple[list, list, list]:
    means, lows, highs = [], [], []
    for values in zip(*runs, strict=True):
        present = [v for v in values if v is not None]
        if not present:
            means.append(None), lows.append(None), highs.append(None)
            continue
        means.append(sum(present) / len(present))
        lows.append(min(present))
        highs.append(max(present))
    return means, lows, highs


def learning_curve_png(
    path: Path,
    series: list[Series],
    *,
    title: str,
    reference: float | None = None,
    reference_label: str = "all labels",
    size: tuple[int, int] = (900, 560),
) -> Path:
    width, height = size
    left, right, top, bottom = 70, 190, 44, 55
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image, "RGBA")
    font = ImageFont.load_default(size=14)
    xs = [x for s in series for x in s.labels] or [0, 1]
    ys = [v for s in series for run in s.runs for v in run if v is not None]
    if reference is not None:
        ys.append(reference)
    x_max = max(xs) or 1
    y_low = max(0.0, math.floor(((min(ys) if ys else 0.0) - 0.02) * 10) / 10)
    y_high = min(1.0, math.ceil(((max(ys) if ys else 1.0) + 0.02) * 10) / 10)

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (width - left - right) * x / x_max,
            top + (height - top - bottom) * (1 - (y - y_low) / max(y_high - y_low, 1e-9)),
        )

    for i in range(6):
        y = y_low + (y_high - y_low) * i / 5
        _, py = px(0, y)
        draw.line([(left, py), (width - right, py)], fill=(230, 230, 230))
        draw.text((14, py - 8), f"{y:.0%}", fill=(0, 0, 0), font=font)
    for i in range(6):
        x = x_max * i / 5
        pxx, _ = px(x, y_low)
        draw.line([(pxx, height - bottom), (pxx, height - bottom + 5)], fill=(0, 0, 0))
        draw.text((pxx - 12, height - bottom + 8), f"{x:.0f}", fill=(0, 0, 0), font=font)
    draw.rectangle((left, top, width - right, height - bottom), outline=(0, 0, 0))
    draw.text((left, 6), title, fill=(0, 0, 0), font=font)
    draw.text(((width - right + left) / 2 - 40, height - 22), "labels", fill=(0, 0, 0), font=font)
    draw.text((8, top - 20), "test accuracy", fill=(0, 0, 0), font=font)
    if reference is not None:
        _, ry = px(0, reference)
        for start in range(left, width - right, 12):
            draw.line([(start, ry), (min(start + 6, width - right), ry)], fill=(0, 0, 0), width=1)
        draw.text(
            (left + 8, ry - 18), f"{reference_label}: {reference:.1%}", fill=(0, 0, 0), font=font
        )
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        means, lows, highs = _mean_band(s.runs)
        points = [(x, m, lo, hi) for x, m, lo, hi in zip(s.labels, means, lows, highs, strict=True)]
        points = [p for p in points if p[1] is not None]
        if len(s.runs) > 1 and len(points) > 1:
            band = [px(x, hi) for x, _, _, hi in points] + [
                px(x, lo) for x, _, lo, _ in points[::-1]
            ]
            draw.polygon(band, fill=(*colour, 40))
        if len(points) > 1:
            draw.line([px(x, m) for x, m, _, _ in points], fill=colour, width=2)
        for x, m, _, _ in points:
            cx, cy = px(x, m)
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        ly = top + 8 + 22 * index
        draw.line([(width - right + 8, ly + 6), (width - right + 28, ly + 6)], fill=colour, width=3)
        draw.text((width - right + 34, ly), s.name, fill=(0, 0, 0), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
