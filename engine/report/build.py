"""``wfm-intervals report``: one self-contained HTML file describing a built store.

The page opens offline: CSS, charts (inline SVG from :mod:`engine.report.charts`) and one small
script are inline, and nothing refers to another file or URL. The header's tiles give each channel
its own service level (against its own threshold and target), ASA and AHT: never blended across
channels. Sections: volume over the window, a weekday x hour heatmap, service level and AHT per
day and queue, staffing and forecast vs actual (:mod:`engine.report.planning`), callback outcomes
and retries, and data quality (quarantine counts and, when the store holds a ``reconcile.json``, the
reconciliation). The numbers come from :mod:`engine.report.data` and :mod:`engine.report.sections`;
this module only lays them out.

Example:
    >>> import tempfile
    >>> from engine.pipeline import build as pipeline
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = pipeline.build_contacts(generate_contacts(days=1).lazy(), settings=BuildSettings(),
    ...                             out_dir=out)
    >>> data = write_report(out, out / "report.html")
    >>> "data-ready" in (out / "report.html").read_text()
    True
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine import clock
from engine.output.files import write_text
from engine.output.read import built_windows
from engine.report import charts, interactive, planning
from engine.report.data import MAX_POINTS, ReportData, compute, open_store, span
from engine.report.page import (
    CSS,
    DASH,
    SCRIPT,
    callback_tables,
    fmt_duration,
    fmt_int,
    fmt_pct,
    header,
    service_table,
    table,
)
from engine.report.quality import json_html, reconcile_html
from engine.settings import SlFormula

__all__ = ["SECTIONS", "json_html", "render", "write_report", "write_run_report"]

#: Section ids of the page, in order.
SECTIONS: Final = (
    "volume", "heatmap", "intraday", "service", "staffing", "callbacks", "quality"
)  # fmt: skip
_KINDS: Final = {"contacts": "Contacts", "callbacks": "Callback attempts"}
_FOOTER: Final = (
    "Made by wfm-intervals from the store's additive columns; every ratio is derived from sums, "
    "never averaged. Definitions: docs/metrics.md and docs/callbacks.md."
)


def _section(sid: str, title: str, how: str, body: str) -> str:
    return (
        f'<section id="{sid}" data-section="{sid}"><h2>{escape(title)}</h2>'
        f'<p class="how"><strong>How to read this.</strong> {how}</p>{body}</section>'
    )


def _none(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def _no_contacts(d: ReportData) -> str | None:
    """Why the contact sections are empty, if they are."""
    if "callvolume" not in d.store.tables:
        return _none("No callvolume table in this store (run `wfm-intervals build`).")
    return _none("No contacts in this window.") if d.queues.height == 0 else None


_QUEUE_HEAD: Final = ("Queue (channel)", "Offered", "Answered", "Abandoned", "Abandon rate",
                     "Service level", "ASA", "AHT")  # fmt: skip


def _queue_row(label: str, r: dict[str, Any]) -> list[str]:
    counts = [fmt_int(r[c]) for c in ("offered", "answered", "abandoned")]
    ratios = [fmt_pct(r["abandon_rate"]), fmt_pct(r["service_level"])]
    return [label, *counts, *ratios, fmt_duration(r["asa_ms"]), fmt_duration(r["aht_ms"])]


def _plot(chart_id: str, figs: dict[str, Any]) -> str:
    """The element Plotly draws ``chart_id`` into, or nothing when it has no figure."""
    return f'<div id="{chart_id}" class="plot"></div>' if figs.get(chart_id) else ""


def _volume(d: ReportData, figs: dict[str, Any]) -> str:
    title = "Volume over the window"
    how = (
        "One panel per channel. The shaded area is contacts offered; the green line those "
        "answered and the red line those abandoned, per time bucket in the report's zone. "
        "Long windows are rolled up (exactly: sums of intervals) so that each line has at most "
        f"{MAX_POINTS} points. The table gives the window total per queue, with ratios computed "
        "from those totals; its total row leaves out service level, ASA and AHT when the "
        "queues are of several channels (see each channel's tile above)."
    )
    if missing := _no_contacts(d):
        return _section("volume", title, how, missing)
    rows = [_queue_row(r["queue"], r) for r in d.queues.iter_rows(named=True)]
    total = _queue_row("All queues", d.totals)
    if d.volume["channel"].n_unique() > 1:  # never blended across channels, as the tiles
        total[5:] = [DASH] * 3  # (email's hour-long waits would swamp voice's seconds)
    grid = table(_QUEUE_HEAD, rows, total=total, table_id="queue-totals")
    return _section("volume", title, how, _plot("chart-volume", figs) + grid)


def _heatmap(d: ReportData, figs: dict[str, Any]) -> str:
    how = (
        f"Each cell is the number of contacts offered in that hour of that weekday, local time in "
        f"{escape(d.tz)}, summed over the window (the label after each weekday says how many of "
        "that weekday the window holds, partial days included). Darker is busier; the cells add "
        "up to the offered total above."
    )
    title = "When contacts arrive: weekday by hour of day"
    if missing := _no_contacts(d):
        return _section("heatmap", title, how, missing)
    return _section("heatmap", title, how, _plot("chart-heatmap", figs))


def _service(d: ReportData, targets: dict[str, float], figs: dict[str, Any]) -> str:
    how = (
        f"Service level ({escape(d.sl_formula)}) and average handle time per local day and queue, "
        "each computed from that day's summed counts and durations. Service level is green at or "
        "above the target of the queue's channel (the dashed lines), amber within 10 points below "
        "it and red further below; "
        "AHT is amber more than 10% above the queue's AHT over the window and blue more than 10% "
        "below it. Days marked † are cut by the window (not whole local days) and are left out of "
        "the chart."
    )
    title = "Service level and handle time per day and queue"
    if missing := _no_contacts(d):
        return _section("service", title, how, missing)
    chart = _plot("chart-service", figs)
    return _section("service", title, how, chart + service_table(d.daily, d.queues, targets))


def _overview(d: ReportData, targets: dict[str, float]) -> dict[str, Any]:
    """The overview charts' figures by element id (:mod:`engine.report.charts`)."""
    figs: dict[str, Any] = dict.fromkeys(charts.CHARTS)
    if d.queues.height:
        figs["chart-volume"] = charts.volume_figure(
            d.volume, minutes=d.volume_minutes, interval=d.interval_minutes, tz=d.tz
        )
        figs["chart-heatmap"] = charts.heatmap_figure(d.heatmap, tz=d.tz)
        whole = d.daily.filter(~pl.col("partial"))
        if whole.height:
            figs["chart-service"] = charts.service_figure(whole, targets=targets)
    if d.callbacks is not None and d.callbacks.retries is not None:
        figs["chart-retries"] = charts.retry_figure(d.callbacks.retries)
    return figs


def _intraday(figs: dict[str, Any]) -> str:
    how = (
        "Interactive charts: hover for values, drag a box to zoom, double-click to reset, click "
        "a legend entry to hide it. The intraday chart shows one local day of the window's last "
        "week at interval resolution (choose it above the chart): contacts offered per queue "
        "(solid) and the agents the staffing table requires for them (dotted, right axis); the "
        f"queue filter keeps one queue (the {interactive.MAX_QUEUES} busiest are drawn). Below "
        "it, callback requests per local day by final outcome, and contacts offered per day "
        "against the seasonal naive forecast."
    )
    title = "Intraday, callbacks over time, forecast"
    if not any(figs.values()):
        return _section("intraday", title, how, _none("Nothing to draw in this window."))
    return _section("intraday", title, how, interactive.section_body(figs))


def _staffing(d: ReportData, plan: pl.DataFrame) -> str:
    how = (
        "Per local day and channel of the window's last week: contacts offered, and the "
        "seasonal naive forecast of them (each interval the mean of the same interval in up to "
        "four earlier weeks the store holds; a dash where it holds none), with the difference "
        "in percent of the forecast. Load is the offered work in Erlang-hours (offered x AHT); "
        "agent-hours and the peak are what Erlang C needs, interval by interval, to reach each "
        "channel's service-level target (the staffing table; docs/metrics.md). Agents are on "
        "the phone or in the queue, before shrinkage (breaks, training, absence)."
    )
    title = "Staffing and forecast vs actual"
    if missing := _no_contacts(d):
        return _section("staffing", title, how, missing)
    if plan.height == 0:
        return _section("staffing", title, how, _none("The window holds no whole local day."))
    rows = []
    for r in plan.iter_rows(named=True):
        fc, off = r["forecast"], r["offered"]
        diff = fmt_pct((off - fc) / fc) if fc else DASH
        rows.append(
            [
                f"{r['day']:%a %Y-%m-%d}",
                str(r["channel"]),
                fmt_int(round(off)),
                DASH if fc is None else fmt_int(round(fc)),
                diff,
                DASH if r["load_hours"] is None else f"{r['load_hours']:,.1f}",
                DASH if r["agent_hours"] is None else f"{r['agent_hours']:,.1f}",
                DASH if r["peak_agents"] is None else fmt_int(r["peak_agents"]),
            ]
        )
    head = ("Day", "Channel", "Offered", "Forecast", "Actual vs forecast", "Load (Erlang-h)",
            "Agent-hours required", "Peak agents")  # fmt: skip
    return _section("staffing", title, how, table(head, rows, table_id="staffing-days"))


def _callbacks(d: ReportData, figs: dict[str, Any]) -> str:
    how = (
        "A callback request is a chain of attempts; it counts once, in the interval of its first "
        "attempt, with the outcome of its last attempt. Success rate is successful requests over "
        "all requests. The retry table counts requests by how many retries they needed (0 = "
        "settled on the first attempt) and by final outcome; the bars show each row's outcome mix."
    )
    title = "Callbacks: outcomes and retries"
    cb = d.callbacks
    if cb is None:
        return _section("callbacks", title, how, _none("No callback tables in this store."))
    if cb.targets.row(-1, named=True)["requests"] == 0:
        return _section("callbacks", title, how, _none("No callback requests in this window."))
    return _section("callbacks", title, how, callback_tables(cb) + _plot("chart-retries", figs))


def _quality(d: ReportData) -> str:
    how = (
        "Rows that could not be used are quarantined with a reason (see docs/metrics.md and "
        "docs/callbacks.md) and never silently dropped; counts are for the whole build, not only "
        "this window. Reconciliation compares our numbers with a vendor's own aggregate, when "
        "one has been run into this store (reconcile.json)."
    )
    q = d.quarantine
    counts = (
        table(
            ["Reason", *(_KINDS[c] for c in q.columns if c != "reason")],
            [[r[0], *(fmt_int(v) for v in r[1:])] for r in q.iter_rows()],
            total=["Total", *(fmt_int(q[c].sum()) for c in q.columns if c != "reason")],
            table_id="quarantine",
        )
        if q.height
        else _none("Nothing was quarantined.")
    )
    intake = table(
        ["", *(_KINDS[c] for c in d.intake.columns[1:])],
        [[r[0], *(fmt_int(v) for v in r[1:])] for r in d.intake.iter_rows()],
        table_id="intake",
    )
    store = d.store
    if store.reconcile_error:
        recon = _none(f"reconcile.json could not be read: {store.reconcile_error}")
    elif store.reconcile is None:
        recon = '<p class="empty" id="reconcile-status">Reconciliation: not run.</p>'
    else:
        recon = f'<div id="reconcile">{reconcile_html(store.reconcile)}</div>'
    body = (
        f'<div class="cols"><div><h3>What the builds read</h3>{intake}</div>'
        f"<div><h3>Quarantined rows by reason</h3>{counts}</div></div>"
        f"<h3>Reconciliation</h3>{recon}"
    )
    return _section("quality", "Data quality", how, body)


def render(
    data: ReportData, *, sl_target: float | None = None, generated_at: datetime | None = None
) -> str:
    """The whole HTML page for ``data``.

    Args:
        data: from :func:`engine.report.data.compute`.
        sl_target: one service-level target for every channel (default: each channel's own,
            from the staffing table or the defaults).
        generated_at: the time printed as the generation time (default: now).

    Example:
        ``page = render(compute(open_store(Path("demo-out"))), sl_target=0.85)``
    """
    at = generated_at or clock.now()
    need = planning.staffing_table(data.store.root, days=data.store.days)
    channels = planning.channel_totals(
        data.queues, need, sl_formula=data.sl_formula, built=data.settings
    )
    if sl_target is not None:  # one target for every channel, as asked
        channels = [c | {"sl_target": sl_target} for c in channels]
    targets = {str(c["channel"]): float(c["sl_target"] or 0.8) for c in channels}
    volume = data.store.tables.get("callvolume")
    plan = pl.DataFrame()
    if volume is not None:
        plan = planning.plan_days(
            volume,
            need,
            window=data.window,
            tz=data.tz,
            interval=data.interval_minutes or 15,
            history_from=data.store.history_from,
            held_to=max((w[1] for w in built_windows(data.store.summaries.values())), default=None),
        )
    title = f"wfm-intervals report {data.window[0]:%Y-%m-%d} to {data.window[1]:%Y-%m-%d}"
    figs = _overview(data, targets) | interactive.figures(data, staffing=need, plan=plan)
    lib = f'<script id="plotly-js">{interactive.library()}</script>' if any(figs.values()) else ""
    body = "".join(
        [
            header(data, at, channels),
            _volume(data, figs),
            _heatmap(data, figs),
            _intraday(figs),
            _service(data, targets, figs),
            _staffing(data, plan),
            _callbacks(data, figs),
            _quality(data),
            interactive.figures_json(figs),
        ]
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main><footer>{_FOOTER}</footer>"
        f"{lib}<script>{SCRIPT}{interactive.SCRIPT}</script></body></html>\n"
    )


def write_report(
    store: Path,
    out: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tz: str | None = None,
    sl_formula: SlFormula | None = None,
    sl_target: float | None = None,
    generated_at: datetime | None = None,
) -> ReportData:
    """Compute the report of the build under ``store`` and write it to ``out`` (atomically).

    Args:
        store: a build's ``--out`` directory (or its ``store/``).
        out: the HTML file to write.
        start: window start (default: the store's first interval).
        end: window end, exclusive (default: the store's last interval end).
        tz: zone of days, hours and weekdays (default: the build's zone).
        sl_formula: service-level formula (default: the build's).
        sl_target: one target service level for every channel's colours, in ``[0, 1]``
            (default: each channel's own).
        generated_at: printed generation time (default: now).

    Returns:
        The numbers shown.

    Raises:
        engine.report.data.StoreError: no tables in ``store``, a bad window or zone.
    """
    data = compute(open_store(store), start=start, end=end, tz=tz, sl_formula=sl_formula)
    write_text(render(data, sl_target=sl_target, generated_at=generated_at), out)
    return data


def write_run_report(
    store: Path, out: Path, *, days: int, generated_at: datetime | None = None
) -> ReportData:
    """The nightly run's report: only the last ``days`` days of the store, written to ``out``.

    The window ends at the store's last interval end and starts ``days`` days before it (or at
    the store's first interval, if that is later), so the run's cost does not grow with history.

    Raises:
        ValueError: ``days`` < 1.
        engine.report.data.StoreError: as :func:`write_report`.

    Example:
        ``write_run_report(Path("out"), Path("out/report.html"), days=35)``
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, not {days}")
    opened = open_store(store, last_days=days)
    first, last = span(opened)
    data = compute(opened, start=max(first, last - timedelta(days=days)), end=last)
    write_text(render(data, generated_at=generated_at), out)
    return data
