"""The report's interactive charts: Plotly, its library inlined, so the page stays offline.

Every chart of the page is a Plotly figure (the overview charts are :mod:`engine.report.charts`);
this module holds the library, the script that draws them all from one JSON block
(:func:`figures_json`), and three charts of its own, each with tooltips and zoom (drag a box;
double-click resets): the intraday view
(offered and agents required per interval and queue over the window's last 7 local days, one
chosen day shown, a queue filter), callback requests per local day by final outcome, and offered
against the seasonal naive forecast per day and channel. Plotly draws them from the figures
given here as JSON: the figures are built as plain dicts (no Plotly Python objects, which validate
slowly), and Plotly.js comes from the ``plotly`` package (:func:`plotly.offline.get_plotlyjs`),
written once into the page. The controls (day and queue) work by ``Plotly.relayout`` and
``Plotly.restyle``; the page's address may preselect them (``#day=2026-12-01&queue=q1``), and
the body carries what is shown (``data-day``, ``data-queue``, ``data-visible-traces``).

Example:
    ``html = section_body(figures(data, staffing=None, plan=plan))``
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from functools import cache
from html import escape
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl
from plotly.offline import get_plotlyjs

from engine.interval import Grid
from engine.report.charts import local_points
from engine.report.data import ReportData
from engine.tables.callback_requests import OUTCOMES

__all__ = ["MAX_QUEUES", "SCRIPT", "figures", "figures_json", "library", "section_body"]

MAX_QUEUES: Final = 20  #: queues drawn in the intraday view (the busiest)
_DAYS: Final = 7
_CONFIG: Final = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["toImage"]}


@cache
def library() -> str:
    """Plotly.js, to inline once (about 4.8 MB; it loads nothing unless a map is drawn)."""
    return str(get_plotlyjs())


def _local(tz: str) -> pl.Expr:
    at = pl.col("interval_start_utc").dt.convert_time_zone(tz).dt.replace_time_zone(None)
    return at.dt.strftime("%Y-%m-%d %H:%M")


def _intraday(d: ReportData, staffing: pl.LazyFrame | None) -> dict[str, Any] | None:
    volume = d.store.tables.get("callvolume")
    if volume is None or d.queues.height == 0 or not d.interval_minutes:
        return None
    # the last 7 days on the local clock (a fall-back week is 7 days and an hour): zoneinfo's
    # arithmetic keeps the wall time and takes the offset of the day it lands on
    local_lo = d.window[1].astimezone(ZoneInfo(d.tz)) - timedelta(days=_DAYS)
    lo = max(d.window[0], local_lo.astimezone(UTC))
    ranked = (
        d.queues.group_by("queue_id")
        .agg(pl.col("offered").sum(), pl.col("queue_name").first())
        .sort("offered", "queue_id", descending=[True, False])
        .head(MAX_QUEUES)
    )
    busy = ranked["queue_id"].to_list()
    names = dict(zip(busy, ranked["queue_name"].fill_null("").to_list(), strict=True))
    at = pl.col("interval_start_utc")
    # the intervals as the builder cuts them: a DST jump of half an hour makes one 90 or 30
    # minutes long, which fixed steps from the first interval would miss from there on
    grid = Grid.over(lo, d.window[1], minutes=d.interval_minutes, tz=d.tz).frame.lazy()
    grid = grid.select("interval_start_utc").filter(at >= lo, at < d.window[1])
    keys = pl.LazyFrame({"queue_id": busy})
    offered = (
        volume.filter(at >= lo, at < d.window[1], pl.col("queue_id").is_in(busy))
        .group_by("queue_id", "interval_start_utc")
        .agg(pl.col("offered").sum())
    )
    parts = [offered]
    if staffing is not None:
        parts.append(
            staffing.filter(at >= lo, at < d.window[1], pl.col("queue_id").is_in(busy))
            .group_by("queue_id", "interval_start_utc")
            .agg(pl.col("agents_required").sum())
        )
    frame = keys.join(grid, how="cross")
    for part in parts:
        frame = frame.join(part, on=["queue_id", "interval_start_utc"], how="left")
    full = (
        frame.with_columns(pl.exclude("queue_id", "interval_start_utc").fill_null(0))
        .with_columns(_local(d.tz).alias("x"))
        .sort("queue_id", "interval_start_utc")
        .collect()
    )
    traces = []
    measures = [c for c in ("offered", "agents_required") if c in full.columns]
    for (queue,), queue_rows in full.group_by("queue_id", maintain_order=True):
        rows = local_points(queue_rows, d.tz, measures)  # a line breaks at a DST fall-back
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{names[queue] or queue} offered",
                "meta": queue,
                "legendgroup": queue,
                "x": rows["x"].to_list(),
                "y": rows["offered"].to_list(),
                "hovertemplate": "%{x}<br>%{fullData.name}: %{y}<extra></extra>",
            }
        )
        if "agents_required" in rows.columns:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{names[queue] or queue} agents",
                    "meta": queue,
                    "legendgroup": queue,
                    "yaxis": "y2",
                    "line": {"dash": "dot"},
                    "x": rows["x"].to_list(),
                    "y": rows["agents_required"].to_list(),
                    "hovertemplate": "%{x}<br>%{fullData.name} required: %{y}<extra></extra>",
                }
            )
    days = sorted({x[:10] for x in full["x"].to_list()})
    layout = {
        "height": 420,
        "margin": {"t": 30, "r": 60},
        "xaxis": {"type": "date", "title": f"local time ({d.tz})"},
        "yaxis": {"title": "offered per interval", "rangemode": "tozero"},
        "yaxis2": {
            "title": "agents required",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
        },
        "legend": {"orientation": "h", "y": -0.25},
    }
    return {"data": traces, "layout": layout, "days": days, "queues": names}


def _callbacks(d: ReportData) -> dict[str, Any] | None:
    table = d.store.tables.get("callback_intervals")
    if table is None:
        return None
    at = pl.col("interval_start_utc")
    day = at.dt.convert_time_zone(d.tz).dt.date().alias("day")
    rows = (
        table.filter(at >= d.window[0], at < d.window[1])
        .group_by(day)
        .agg(*(pl.col(o).sum() for o in OUTCOMES))
        .sort("day")
        .collect()
    )
    if rows.height == 0:
        return None
    x = [str(v) for v in rows["day"].to_list()]
    traces = [
        {
            "type": "bar",
            "name": o,
            "x": x,
            "y": rows[o].to_list(),
            "hovertemplate": "%{x}: %{y} " + o + "<extra></extra>",
        }
        for o in OUTCOMES
    ]
    layout = {
        "barmode": "stack",
        "height": 320,
        "margin": {"t": 30},
        "yaxis": {"title": "callback requests (final outcome)"},
    }
    return {"data": traces, "layout": layout}


def _forecast(plan: pl.DataFrame) -> dict[str, Any] | None:
    if plan.height == 0:
        return None
    traces: list[dict[str, Any]] = []
    for (channel,), rows in plan.group_by("channel", maintain_order=True):
        x = [str(v) for v in rows["day"].to_list()]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{channel} offered",
                "x": x,
                "y": rows["offered"].to_list(),
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{channel} forecast",
                "x": x,
                "y": rows["forecast"].to_list(),
                "line": {"dash": "dash"},
            }
        )
    layout = {"height": 320, "margin": {"t": 30}, "yaxis": {"title": "contacts per day"}}
    return {"data": traces, "layout": layout}


def figures(d: ReportData, *, staffing: pl.LazyFrame | None, plan: pl.DataFrame) -> dict[str, Any]:
    """The figures of the page by chart id (``None`` where there is nothing to draw)."""
    return {
        "chart-intraday": _intraday(d, staffing),
        "chart-callbacks-daily": _callbacks(d),
        "chart-forecast": _forecast(plan),
    }


def section_body(figs: dict[str, Any]) -> str:
    """The intraday section's controls and chart containers (the figures' JSON is
    :func:`figures_json`, once per page)."""
    intraday = figs.get("chart-intraday")
    controls = ""
    if intraday is not None:
        days = "".join(
            f'<option value="{escape(x)}">{escape(x)}</option>' for x in intraday["days"]
        )
        queues = "".join(
            f'<option value="{escape(q)}">{escape(name or q)}</option>'
            for q, name in intraday["queues"].items()
        )
        controls = (
            '<div class="controls"><label>Day <select id="intraday-day">'
            f'{days}</select></label> <label>Queue <select id="queue-filter">'
            f'<option value="all">All queues</option>{queues}</select></label></div>'
        )
    titles = {
        "chart-intraday": "Intraday: offered and agents required per interval",
        "chart-callbacks-daily": "Callback requests per day by final outcome",
        "chart-forecast": "Offered vs the seasonal naive forecast, per day",
    }
    divs = "".join(
        f'<h3>{escape(title)}</h3><div id="{k}" class="plot"></div>'
        for k, title in titles.items()
        if figs.get(k) is not None
    )
    return controls + divs


def figures_json(figs: dict[str, Any]) -> str:
    """Every figure of the page (by element id) as the one JSON block :data:`SCRIPT` draws from;
    nothing when there is no figure."""
    shown = {k: v for k, v in figs.items() if v is not None}
    if not shown:
        return ""
    data = json.dumps(shown | {"config": _CONFIG}).replace("</", "<\\/")
    return f'<script type="application/json" id="figures">{data}</script>'


#: Draws the figures and wires the controls (runs after Plotly.js).
SCRIPT: Final = """
(function(){var el=document.getElementById("figures");if(!el||!window.Plotly)return;
var F=JSON.parse(el.textContent),b=document.body,n=0;
Object.keys(F).forEach(function(k){if(k==="config")return;
Plotly.newPlot(k,F[k].data,F[k].layout,F[k].config||F.config);n++;});
b.setAttribute("data-plots",String(n));
var g=document.getElementById("chart-intraday");if(!g)return;
function next(day){var t=new Date(day+"T00:00:00Z");t.setUTCDate(t.getUTCDate()+1);
return t.toISOString().slice(0,10);}
function showDay(day){b.setAttribute("data-day",day);
return Plotly.relayout(g,{"xaxis.range":[day+" 00:00",next(day)+" 00:00"]});}
function showQueue(q){var vis=g.data.map(function(t){return q==="all"||t.meta===q;});
b.setAttribute("data-queue",q);
return Plotly.restyle(g,{visible:vis}).then(function(){b.setAttribute("data-visible-traces",
String(g.data.filter(function(t){return t.visible!==false;}).length));});}
var ds=document.getElementById("intraday-day"),qs=document.getElementById("queue-filter");
var h={};location.hash.slice(1).split("&").forEach(function(p){var kv=p.split("=");
if(kv[0])h[kv[0]]=decodeURIComponent(kv[1]||"");});
if(h.day&&[].some.call(ds.options,function(o){return o.value===h.day;}))ds.value=h.day;
else ds.value=ds.options[ds.options.length-1].value;
if(h.queue&&[].some.call(qs.options,function(o){return o.value===h.queue;}))qs.value=h.queue;
ds.addEventListener("change",function(){showDay(ds.value);});
qs.addEventListener("change",function(){showQueue(qs.value);});
showDay(ds.value);showQueue(qs.value);})();
"""
