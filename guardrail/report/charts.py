"""Charts as inline SVG, drawn with matplotlib's object API (no pyplot, no global state, no display).

Every bar carries an id, `<chart>-<series>-<index>`, so a test (or a reader's script) can find it;
text stays text (svg.fonttype none), so the page is searchable and small. Colours are Okabe and Ito's
palette, told apart with the common colour-vision deficiencies."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

COLOURS = {
    "calls": "#56B4E9",
    "allowed": "#009E73",
    "modified": "#0072B2",
    "denied": "#D55E00",
    "deny": "#D55E00",
    "flag": "#E69F00",
    "flagged": "#E69F00",
    "review": "#CC79A7",
    "pending_review": "#CC79A7",
    "modify": "#0072B2",
    "error": "#000000",
    "matches": "#F0E442",
    "detections": "#999999",
}
_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "guardrail-report",
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def bar_chart(
    chart_id: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    horizontal: bool = True,
    width_in: float = 7.0,
) -> str:
    """Grouped bars of one or more series over labels, as an <svg> element."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    count = max(1, len(labels))
    height_in = max(1.6, 0.32 * count * (len(series) if horizontal else 1) + 0.9) if horizontal else 2.6
    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
        figure = Figure(figsize=(width_in, height_in))
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        axes.set_title(title, loc="left", fontsize=10)
        slot = 0.8 / max(1, len(series))
        for k, (name, values) in enumerate(series.items()):
            positions = [i + (k - (len(series) - 1) / 2) * slot for i in range(len(labels))]
            draw = axes.barh if horizontal else axes.bar
            bars = draw(positions, list(values), slot, label=name, color=COLOURS.get(name, "#56B4E9"))
            for index, bar in enumerate(bars):
                bar.set_gid(f"{chart_id}-{_slug(name)}-{index}")
        if horizontal:
            axes.set_yticks(range(len(labels)), [_short(label) for label in labels])
            axes.invert_yaxis()
        else:
            step = max(1, len(labels) // 12)
            axes.set_xticks(range(0, len(labels), step), [_short(labels[i], 16) for i in range(0, len(labels), step)])
            axes.tick_params(axis="x", labelrotation=30)
        if len(series) > 1:
            axes.legend(frameon=False, fontsize=8)
        figure.tight_layout()
        return _svg(figure, chart_id, title)


def _svg(figure: object, chart_id: str, title: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})  # type: ignore[attr-defined]
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    label = title.replace('"', "'").replace("<", "(").replace(">", ")").replace("&", "and")
    return svg.replace("<svg ", f'<svg id="{chart_id}" role="img" aria-label="{label}" ', 1)


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", value)


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
