"""Small charts drawn on the server as inline SVG, for the operations page: no JavaScript, no
chart library, nothing fetched. Each mark carries its number in `data-*` attributes and a
<title> (a tooltip), so what is drawn can be read back (and tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

STATUS_COLORS = {
    "RUNNING": "#417690",
    "SUCCEEDED": "#2a8a56",
    "FAILED": "#ba2121",
    "TIMED_OUT": "#d97706",
    "STOPPED": "#6b7280",
}
WIDTH, HEIGHT = 480, 220
LEFT, BOTTOM, TOP = 44, 24, 10


def _nice_max(value: float) -> float:
    """The axis' top: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    while scale > value:
        scale /= 10
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= value)


def _label(moment: datetime, hourly: bool) -> str:
    return moment.strftime("%H:00") if hourly else moment.strftime("%m-%d")


def _frame(title: str, body: list[str], top: float, unit: str = "") -> SafeString:
    plot_h = HEIGHT - BOTTOM - TOP
    axis = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>',
    ]
    for fraction in (0, 0.5, 1):
        y = HEIGHT - BOTTOM - plot_h * fraction
        value = top * fraction
        text = f"{value:g}{unit}"
        axis.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{escape(text)}</text>')
        if fraction:
            axis.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" stroke="#eee"/>')
    svg = (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(axis)}{''.join(body)}</svg>"
    )
    return mark_safe(svg)  # noqa: S308 - every text in it is escaped above


def stacked_bars(
    title: str, buckets: Sequence[datetime], values: dict[datetime, dict[str, int]], keys: Sequence[str], hourly: bool
) -> SafeString:
    """One bar per bucket, stacked by key (statuses), with a label every few buckets."""
    top = _nice_max(max([sum(values.get(b, {}).values()) for b in buckets] or [0]))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(buckets), 1)
    every = max(1, len(buckets) // 6)
    body = []
    for i, bucket in enumerate(buckets):
        x = LEFT + i * slot + slot * 0.1
        y: float = HEIGHT - BOTTOM
        for key in keys:
            n = values.get(bucket, {}).get(key, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            tip = f"{_label(bucket, hourly)} {key}: {n}"
            body.append(
                f'<rect class="mark" data-bucket="{bucket.isoformat()}" data-key="{escape(key)}" data-value="{n}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" '
                f'fill="{STATUS_COLORS.get(key, "#888")}"><title>{escape(tip)}</title></rect>'
            )
        if i % every == 0:
            body.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" font-size="10">{escape(_label(bucket, hourly))}</text>')
    return _frame(title, body, top)


def lines(
    title: str, points: Sequence[tuple[datetime, dict[str, float]]], keys: Sequence[str], start: datetime, end: datetime
) -> SafeString:
    """One polyline per key over time (p50, p95 in seconds), with a dot per point."""
    top = _nice_max(max([p[k] for _, p in points for k in keys] or [0]))
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    span = max((end - start).total_seconds(), 1)
    colors = ("#417690", "#ba2121", "#2a8a56")
    body = []
    for key, color in zip(keys, colors, strict=False):
        coords = []
        for moment, values in points:
            x = LEFT + plot_w * min(max((moment - start).total_seconds() / span, 0), 1)
            y = HEIGHT - BOTTOM - plot_h * values[key] / top
            coords.append(f"{x:.1f},{y:.1f}")
            tip = f"{moment.strftime('%m-%d %H:00')} {key}: {values[key]:.3f} s"
            body.append(
                f'<circle class="mark" data-bucket="{moment.isoformat()}" data-key="{escape(key)}" '
                f'data-value="{values[key]:.6f}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        if len(coords) > 1:
            body.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    legend = "".join(
        f'<text x="{LEFT + 8 + i * 60}" y="{TOP + 10}" font-size="11" fill="{c}">{escape(k)}</text>'
        for i, (k, c) in enumerate(zip(keys, colors, strict=False))
    )
    body.append(legend)
    for fraction, anchor in ((0, "start"), (1, "end")):
        moment = start if fraction == 0 else end
        x = LEFT + plot_w * fraction
        body.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="{anchor}">'
            f"{escape(moment.strftime('%m-%d %H:%M'))}</text>"
        )
    return _frame(title, body, top, " s")


def horizontal_bars(title: str, items: Sequence[tuple[str, int]], color: str = "#417690") -> SafeString:
    """One labelled bar per item (a function, a kind of backlog) with its number at its end."""
    row = 22
    height = TOP + row * max(len(items), 1) + 6
    top = _nice_max(max([n for _, n in items] or [0]))
    name_w = 170
    plot_w = WIDTH - name_w - 40
    body = []
    for i, (name, n) in enumerate(items):
        y = TOP + i * row
        w = plot_w * n / top
        short = name if len(name) <= 26 else name[:25] + "…"
        body.append(
            f'<text x="{name_w - 6}" y="{y + 14}" text-anchor="end" font-size="11">'
            f"<title>{escape(name)}</title>{escape(short)}</text>"
            f'<rect class="mark" data-key="{escape(name)}" data-value="{n}" x="{name_w}" y="{y + 3}" '
            f'width="{max(w, 1):.1f}" height="{row - 8}" fill="{color}"><title>{escape(f"{name}: {n}")}</title></rect>'
            f'<text x="{name_w + w + 4:.1f}" y="{y + 14}" font-size="11">{n}</text>'
        )
    if not items:
        body.append(f'<text x="{name_w}" y="{TOP + 14}" font-size="11" fill="#666">none</text>')
    svg = (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )
    return mark_safe(svg)  # noqa: S308 - every text in it is escaped above
