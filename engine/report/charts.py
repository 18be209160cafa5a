"""The report's overview charts as Plotly figures: volume, the weekday x hour heatmap, service
level and AHT per day, and callback outcomes by retries.

Each function returns a figure as a plain dict (``data``, ``layout``), or ``None`` when there is
nothing to draw; the page holds the figures as JSON and Plotly.js (inlined once, see
:mod:`engine.report.interactive`) draws them in the browser, with tooltips, zoom (drag a box,
double-click to reset) and legends that hide a series. Plain dicts rather than Plotly's Python
objects, which validate slowly; nothing is drawn in Python, so a report costs no chart rendering.

Time axes are the report zone's wall clock (``YYYY-MM-DD HH:MM``). Where that clock goes back
(a DST fall-back repeats an hour), a line is broken before the repeated hour instead of doubling
back over it: :func:`local_points`.

Example:
    >>> import polars as pl
    >>> from datetime import datetime, UTC
    >>> at = [datetime(2026, 11, 1, h, 30, tzinfo=UTC) for h in (4, 5, 6, 7)]
    >>> frame = pl.DataFrame({"interval_start_utc": at, "n": [1, 2, 3, 4]})
    >>> points = local_points(frame, "America/New_York", ["n"])
    >>> points["x"].str.slice(11).to_list(), points["n"].to_list()
    (['00:30', '01:30', '01:30', '01:30', '02:30'], [1, 2, None, 3, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import polars as pl

from engine.tables.callback_requests import OUTCOMES

__all__ = [
    "CHARTS",
    "OUTCOME_COLOURS",
    "SERIES",
    "heatmap_figure",
    "local_points",
    "retry_figure",
    "service_figure",
    "volume_figure",
]

#: The overview charts' element ids, in page order.
CHARTS: Final = ("chart-volume", "chart-heatmap", "chart-service", "chart-retries")
SERIES: Final = {"offered": "#475569", "answered": "#15803d", "abandoned": "#dc2626"}
OUTCOME_COLOURS: Final = dict(
    zip(OUTCOMES, ("#15803d", "#eab308", "#dc2626", "#64748b", "#9333ea", "#cbd5e1"), strict=True)
)
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_GRAIN: Final = {15: "15 minutes", 30: "30 minutes", 60: "hour", 1440: "day"}
_TARGET: Final = "#111827"
#: One colour per queue in the service chart, so its two panels match (Plotly's own palette).
_PALETTE: Final = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
Figure = dict[str, Any]


def local_points(frame: pl.DataFrame, tz: str, columns: Sequence[str]) -> pl.DataFrame:
    """``x`` (the local wall clock of ``interval_start_utc`` in ``tz``) and ``columns``, in the
    frame's order, with a row of nulls inserted wherever ``x`` does not move forward (a DST
    fall-back): Plotly breaks a line at a null instead of drawing it back over the hour."""
    at = pl.col("interval_start_utc").dt.convert_time_zone(tz).dt.replace_time_zone(None)
    rows = frame.select(at.dt.strftime("%Y-%m-%d %H:%M").alias("x"), *columns).with_row_index()
    back = rows.filter(pl.col("x") <= pl.col("x").shift(1))
    if back.height == 0:
        return rows.drop("index")
    gaps = back.with_columns(
        (pl.col("index").cast(pl.Float64) - 0.5).alias("index"),
        *(pl.lit(None, dtype=frame.schema[c]).alias(c) for c in columns),
    )
    whole = pl.concat([rows.with_columns(pl.col("index").cast(pl.Float64)), gaps])
    return whole.sort("index").drop("index")


def volume_figure(volume: pl.DataFrame, *, minutes: int, interval: int | None, tz: str) -> Figure:
    """Offered (filled), answered and abandoned per ``minutes`` bucket, one panel per channel
    (stacked, sharing the time axis); ``volume`` as :class:`engine.report.data.ReportData` has it
    (bucket start in UTC, channel, offered, answered, abandoned)."""
    channels = volume["channel"].unique(maintain_order=True).to_list()
    n = len(channels)
    traces: list[dict[str, Any]] = []
    layout: Figure = {}
    gap = 0.04
    for i, channel in enumerate(channels):
        axis = "" if i == 0 else str(i + 1)
        rows = local_points(
            volume.filter(pl.col("channel") == channel), tz, ["offered", "answered", "abandoned"]
        )
        x = rows["x"].to_list()
        for name, colour in SERIES.items():
            trace: dict[str, Any] = {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "legendgroup": name,
                "showlegend": i == 0,
                "x": x,
                "y": rows[name].to_list(),
                "xaxis": "x",
                "yaxis": f"y{axis}",
                "line": {"color": colour, "width": 1.2},
                "hovertemplate": f"{channel}<br>%{{x}}<br>{name}: %{{y:,}}<extra></extra>",
            }
            if name == "offered":
                trace |= {"fill": "tozeroy", "fillcolor": "rgba(71,85,105,0.15)"}
            traces.append(trace)
        top = 1 - i / n
        layout[f"yaxis{axis}"] = {
            "domain": [max(0.0, top - 1 / n + gap), top],
            "title": {"text": str(channel)},
            "rangemode": "tozero",
            "tickformat": ",d",
        }
    grain = _GRAIN.get(minutes, f"{minutes} minutes")
    note = "" if minutes == interval else f" ({interval}-minute intervals rolled up)"
    layout |= {
        "height": 140 + 150 * n,
        "margin": {"t": 70, "r": 20, "l": 70},  # the title, then the legend above the panels
        "title": {
            "text": f"Contacts per {grain}{note}, by channel",
            "x": 0.01,
            "y": 0.99,
            "yanchor": "top",
        },
        "xaxis": {
            "type": "date",
            "title": {"text": f"local time ({tz})"},
            "anchor": "y" if n == 1 else f"y{n}",  # drawn below the last panel
        },
        "legend": {
            "orientation": "h",
            "x": 0.5,
            "xanchor": "center",
            "y": 1.0,
            "yanchor": "bottom",
        },
        "hovermode": "closest",
    }
    return {"data": traces, "layout": layout}


def heatmap_figure(heatmap: pl.DataFrame, *, tz: str) -> Figure:
    """Offered contacts by local weekday (rows, Monday first) x hour of day (columns), each cell
    labelled; ``heatmap`` has ``weekday`` 1-7, ``hour`` 0-23, ``offered`` and ``days``."""
    cells = heatmap.sort("weekday", "hour")["offered"].to_list()
    z = [cells[d * 24 : (d + 1) * 24] for d in range(7)]
    days = heatmap.group_by("weekday").agg(pl.col("days").first()).sort("weekday")["days"]
    labels = [f"{d} ({n} day{'s' * (n != 1)})" for d, n in zip(_WEEKDAYS, days, strict=True)]
    hours = [f"{h:02d}" for h in range(24)]
    trace = {
        "type": "heatmap",
        "z": z,
        "x": hours,
        "y": labels,
        "text": z,
        "texttemplate": "%{text:,}",
        "textfont": {"size": 9},
        "colorscale": "Blues",
        "reversescale": True,  # Plotly's Blues runs dark to light: darker is busier here
        "zmin": 0,
        "xgap": 1,
        "ygap": 1,
        "hovertemplate": "%{y}, %{x}:00: %{z:,} offered<extra></extra>",
        "colorbar": {"thickness": 12, "tickformat": ",d"},
    }
    layout = {
        "height": 330,
        "margin": {"t": 36, "r": 20, "l": 110},
        "title": {"text": "Offered contacts by weekday and hour (sum over the window)", "x": 0.01},
        "xaxis": {"title": {"text": f"hour of day ({tz})"}, "type": "category"},
        "yaxis": {"autorange": "reversed", "type": "category"},
    }
    return {"data": [trace], "layout": layout}


def service_figure(daily: pl.DataFrame, *, targets: dict[str, float]) -> Figure:
    """Service level (left) and AHT in minutes (right) per whole local day, one line per queue
    (one legend entry hides both), and a dashed line per distinct target naming its channels."""
    traces: list[dict[str, Any]] = []
    days = [str(d) for d in daily["day"].unique().sort().to_list()]
    for i, ((queue,), rows) in enumerate(daily.group_by("queue", maintain_order=True)):
        x = [str(d) for d in rows["day"].to_list()]
        colour = _PALETTE[i % len(_PALETTE)]
        common = {
            "type": "scatter",
            "mode": "lines+markers",
            "legendgroup": str(queue),
            "x": x,
            "line": {"color": colour},
            "marker": {"color": colour},
        }
        traces.append(
            common
            | {
                "name": str(queue),
                "y": rows["service_level"].to_list(),
                "hovertemplate": f"{queue}<br>%{{x}}: SL %{{y:.1%}}<extra></extra>",
            }
        )
        traces.append(
            common
            | {
                "name": str(queue),
                "showlegend": False,
                "xaxis": "x2",
                "yaxis": "y2",
                "y": (rows["aht_ms"] / 60_000).to_list(),
                "hovertemplate": f"{queue}<br>%{{x}}: AHT %{{y:.2f}} min<extra></extra>",
            }
        )
    shown = set(daily["channel"].cast(pl.String).unique().to_list())
    by_value: dict[float, list[str]] = {}
    for channel, target in sorted(targets.items()):
        if channel in shown:
            by_value.setdefault(target, []).append(channel)
    for target, channels in sorted(by_value.items()):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"target {target:.0%} ({', '.join(channels)})",
                "x": [days[0], days[-1]] if days else [],
                "y": [target, target],
                "line": {"color": _TARGET, "dash": "dash", "width": 1},
                "hoverinfo": "name",
            }
        )
    layout = {
        "height": 380,
        "margin": {"t": 40, "r": 20},
        "xaxis": {"domain": [0, 0.47], "type": "date", "tickformat": "%a %d %b"},
        "xaxis2": {"domain": [0.53, 1], "type": "date", "tickformat": "%a %d %b", "anchor": "y2"},
        "yaxis": {"range": [0, 1.02], "tickformat": ".0%", "title": {"text": "service level"}},
        "yaxis2": {"anchor": "x2", "rangemode": "tozero", "title": {"text": "AHT (minutes)"}},
        "legend": {"orientation": "h", "y": -0.2},
        "annotations": [
            _heading("Service level per day", 0),
            _heading("Average handle time per day (minutes)", 0.53),
        ],
    }
    return {"data": traces, "layout": layout}


def _heading(text: str, x: float) -> dict[str, Any]:
    return {
        "text": f"<b>{text}</b>",
        "x": x,
        "xref": "paper",
        "xanchor": "left",
        "y": 1.02,
        "yref": "paper",
        "yanchor": "bottom",
        "showarrow": False,
    }


def retry_figure(retries: pl.DataFrame) -> Figure | None:
    """Share of each final outcome by number of retries (100 % stacked bars, ``n`` on the right);
    ``None`` when no request was made."""
    rows = retries.filter(pl.col("requests") > 0)
    if rows.height == 0:
        return None
    labels = [f"{r} retries" if r != "1" else "1 retry" for r in rows["retries"].to_list()]
    total = rows["requests"].to_list()
    traces = [
        {
            "type": "bar",
            "orientation": "h",
            "name": outcome,
            "y": labels,
            "x": rows[outcome].to_list(),
            "marker": {"color": OUTCOME_COLOURS[outcome]},
            "hovertemplate": f"%{{y}}: %{{x:,}} {outcome} (%{{customdata:.1%}})<extra></extra>",
            "customdata": [c / t for c, t in zip(rows[outcome].to_list(), total, strict=True)],
        }
        for outcome in OUTCOMES
    ]
    notes = [
        {"text": f"n = {n:,}", "x": 1.01, "xref": "paper", "xanchor": "left", "y": label,
         "yref": "y", "showarrow": False, "font": {"size": 11}}
        for label, n in zip(labels, total, strict=True)
    ]  # fmt: skip
    layout = {
        "barmode": "stack",
        "barnorm": "percent",
        "height": 120 + 28 * rows.height,
        "margin": {"t": 36, "r": 80, "l": 90},
        "title": {"text": "Final outcome of callback requests by number of retries", "x": 0.01},
        "xaxis": {"range": [0, 100], "ticksuffix": " %"},
        "yaxis": {"autorange": "reversed", "type": "category"},
        "legend": {"orientation": "h", "y": -0.25},
        "annotations": notes,
    }
    return {"data": traces, "layout": layout}
