"""HTML pieces of the report (:mod:`engine.report.build`): style, script, number formats and tables.

Every text that comes from data goes through :func:`html.escape`. The script only marks the page
as rendered (``<body data-ready="1">``), which the browser test checks; the charts are drawn by
:data:`engine.report.interactive.SCRIPT`.

Example:
    >>> table(["Queue", "Offered"], [["Sales", fmt_int(1234)]])  # doctest: +ELLIPSIS
    '<table><thead><tr><th>Queue</th><th>Offered</th></tr></thead><tbody><tr><td>Sales</td>...'
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any, Final

import polars as pl

from engine.report.data import ReportData
from engine.report.sections import CallbackNumbers
from engine.tables.callback_requests import OUTCOMES

__all__ = [
    "CSS",
    "DASH",
    "SCRIPT",
    "Cell",
    "callback_tables",
    "fmt_duration",
    "fmt_int",
    "fmt_pct",
    "header",
    "service_table",
    "table",
]

#: A table cell: its text, or its text and a CSS class.
Cell = str | tuple[str, str]
DASH: Final = "\N{EN DASH}"  # shown for an undefined number

SCRIPT: Final = '(function(){var b=document.body;b.setAttribute("data-ready","1");})();'

CSS: Final = """
:root{--ink:#111827;--muted:#4b5563;--line:#e5e7eb;--bg:#f8fafc;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 28px}
header{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px}
h1{margin:0 0 10px;font-size:24px}
h2{margin:0 0 6px;font-size:19px;color:var(--accent)}
h3{margin:18px 0 6px;font-size:15px}
h4{margin:12px 0 4px;font-size:13px;color:var(--muted)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 14px;font-size:13px}
dt{color:var(--muted)}dd{margin:0}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:10px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:8px 12px;background:var(--bg)}
.kpi span,.kpi small{display:block;font-size:12px;color:var(--muted)}
.kpi b{display:block;font-size:20px;margin:1px 0}.kpi small{font-size:11px}
.kpi.channel dl{display:grid;grid-template-columns:auto auto;gap:0 8px;margin:4px 0 0;
font-size:12px}
.controls{margin:8px 0}.controls select{margin:0 12px 0 4px}.plot{width:100%;min-height:320px}
.kpi.channel dd{margin:0;text-align:right}.kpi b.good{color:#1a7f37}.kpi b.bad{color:#b42318}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;
 margin-top:18px}
p.how{margin:0 0 12px;color:var(--muted);font-size:13px;max-width:980px}
p.empty{color:var(--muted);font-style:italic}
figure{margin:0 0 12px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px;
 font-variant-numeric:tabular-nums}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:#f1f5f9;font-weight:600;position:sticky;top:0}
th:first-child,td:first-child{text-align:left}
#reconcile-checks th,#reconcile-checks td{white-space:normal;text-align:left}
tr.total td{font-weight:700;border-top:2px solid #cbd5e1}
td.good{background:#dcfce7;color:#14532d}td.warn{background:#fef3c7;color:#78350f}
td.bad{background:#fee2e2;color:#7f1d1d}td.hi{background:#fef3c7;color:#78350f}
td.lo{background:#dbeafe;color:#1e3a8a}td.ok{color:#15803d}td.na{color:#9ca3af}
.scroll{overflow-x:auto;max-width:100%}.verdict.ok{color:#1a7f37}.verdict.bad{color:#b42318;font-weight:600}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:0 32px}
footer{max-width:1240px;margin:0 auto;padding:4px 28px 28px;color:var(--muted);font-size:12px}
@media print{body{background:#fff}section,header{break-inside:avoid;border:0}}
"""


def fmt_int(value: Any) -> str:
    """A count with thousands separators; a dash for missing."""
    return DASH if value is None else f"{int(value):,}"


def fmt_pct(value: Any) -> str:
    """A ratio as a percentage with one decimal; a dash when undefined."""
    return DASH if value is None else f"{100 * float(value):.1f}%"


def fmt_duration(ms: Any) -> str:
    """Milliseconds as ``m:ss`` (or ``h:mm:ss``, signed when negative); a dash when undefined.

    Example:
        >>> fmt_duration(125_400), fmt_duration(3_725_000), fmt_duration(-5_600)
        ('2:05', '1:02:05', '-0:06')
    """
    if ms is None:
        return DASH
    total = round(abs(float(ms)) / 1000)
    sign = "-" if ms < 0 and total else ""
    minutes, seconds = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{sign}{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{sign}{minutes}:{seconds:02d}"
    )


def _local(at: datetime, tz: str) -> str:
    return str(pl.Series([at]).dt.convert_time_zone(tz).dt.strftime("%a %d %b %Y %H:%M").item())


def _zone(d: ReportData) -> str:
    built = d.store.setting("tz")
    if built is None or built == d.tz:
        return d.tz
    return (
        f"{d.tz} (the store was built in {built}; each interval counts in the local day and "
        "hour in which it starts)"
    )


def _cards(d: ReportData, channels: Sequence[dict[str, Any]]) -> str:
    t, cards = d.totals, []
    if t:
        answered = t["answered"] / t["offered"] if t["offered"] else None
        cards += [
            ("Offered", fmt_int(t["offered"]), "contacts offered to a queue, all channels"),
            ("Answered", fmt_int(t["answered"]), f"{fmt_pct(answered)} of offered"),
            ("Abandoned", fmt_int(t["abandoned"]), f"{fmt_pct(t['abandon_rate'])} of offered"),
        ]
    if d.callbacks is not None:
        total = d.callbacks.targets.row(-1, named=True)
        success = fmt_pct(d.callbacks.performance["success_rate"])
        attempts = f"{fmt_int(total['attempts'])} attempts"
        cards += [
            ("Callback requests", fmt_int(total["requests"]), attempts),
            ("Callback success", success, "final outcome successful"),
        ]
    html = "".join(
        f'<div class="kpi"><span>{k}</span><b>{escape(v)}</b><small>{escape(sub)}</small></div>'
        for k, v, sub in cards
    )
    return html + "".join(_channel_tile(c) for c in channels)


def _channel_tile(c: dict[str, Any]) -> str:
    """One channel's tile: its own service level against its own threshold and target."""
    target, sl = c.get("sl_target"), c.get("service_level")
    cls = "na" if sl is None or target is None else "good" if sl >= target else "bad"
    within = fmt_duration(c.get("threshold_ms"))
    goal = f"target {target:.0%} within {within}" if target is not None else f"within {within}"
    rows = [
        ("Offered", fmt_int(c["offered"])),
        ("Abandon rate", fmt_pct(c["abandon_rate"])),
        ("ASA", fmt_duration(c["asa_ms"])),
        ("AHT", fmt_duration(c["aht_ms"])),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    name = escape(str(c["channel"]))
    return (
        f'<div class="kpi channel" data-channel="{name}"><span>{name.capitalize()}</span>'
        f'<b class="{cls}">{escape(fmt_pct(sl))}</b><small>service level, {escape(goal)}</small>'
        f"<dl>{dl}</dl></div>"
    )


def header(d: ReportData, generated_at: datetime, channels: Sequence[dict[str, Any]]) -> str:
    """The page header: title, window, zone, formula, store, generation time, key figures (the
    counts of every channel; service level, ASA and AHT per channel, never blended)."""
    start, end = d.window
    meta = [
        ("Window", f"{_local(start, d.tz)} to {_local(end, d.tz)} ({d.tz})"),
        ("Window (UTC)", f"{start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ}"),
        ("Time zone", _zone(d)),
        ("Intervals", f"{d.interval_minutes} minutes" if d.interval_minutes else "unknown"),
        ("Service-level formula", f"{d.sl_formula} ({d.sl_formula_note})"),
        ("Store", str(d.store.root)),
        ("Generated", f"{generated_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in meta)
    kpis = _cards(d, channels)
    title = "<h1>Contact-centre interval report</h1>"
    return f'<header>{title}<dl>{dl}</dl><div class="kpis">{kpis}</div></header>'


def _td(cell: Cell) -> str:
    text, cls = cell if isinstance(cell, tuple) else (cell, "")
    return f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>"


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    table_id: str | None = None,
    total: Sequence[Cell] | None = None,
    head_html: str | None = None,
) -> str:
    """An HTML table: header cells, body rows, and an optional bold total row."""
    thead = head_html or "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
    body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in rows)
    if total is not None:
        body += '<tr class="total">' + "".join(_td(c) for c in total) + "</tr>"
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead>{thead}</thead><tbody>{body}</tbody></table>"


def _sl_cell(value: float | None, target: float) -> Cell:
    if value is None:
        return (DASH, "na")
    cls = "good" if value >= target else "warn" if value >= target - 0.1 else "bad"
    return (fmt_pct(value), cls)


def _aht_cell(value: float | None, reference: float | None) -> Cell:
    if value is None:
        return (DASH, "na")
    ratio = value / reference if reference else 1.0
    return (fmt_duration(value), "hi" if ratio > 1.1 else "lo" if ratio < 0.9 else "")


def service_table(daily: pl.DataFrame, queues: pl.DataFrame, targets: dict[str, float]) -> str:
    """Local days x queues, service level (coloured against the queue's channel's target) and
    AHT per cell, the window's total row last."""
    names = queues["queue"].to_list()
    channel = dict(zip(names, queues["channel"].cast(pl.String).to_list(), strict=True))
    fallback = min(targets.values(), default=0.8)
    target_of = {q: targets.get(channel[q], fallback) for q in names}
    window = {r["queue"]: r for r in queues.iter_rows(named=True)}
    cells = {(r["day"], r["queue"]): r for r in daily.iter_rows(named=True)}
    rows: list[list[Cell]] = []
    for day, partial in daily.select("day", "partial").unique().sort("day").iter_rows():
        row: list[Cell] = [f"{day:%a %d %b %Y}{' †' if partial else ''}"]
        for q in names:
            r = cells.get((day, q), {})
            row += [_sl_cell(r.get("service_level"), target_of[q])]
            row += [_aht_cell(r.get("aht_ms"), window[q]["aht_ms"])]
        rows.append(row)
    total: list[Cell] = ["Window"]
    for q in names:
        sl = _sl_cell(window[q]["service_level"], target_of[q])
        total += [sl, fmt_duration(window[q]["aht_ms"])]
    top = "".join(f'<th colspan="2">{escape(q)}</th>' for q in names)
    head = (
        '<tr><th rowspan="2">Day</th>' + top + "</tr><tr>" + "<th>SL</th><th>AHT</th>" * len(names)
    )
    grid = table([], rows, total=total, table_id="service-days", head_html=head + "</tr>")
    return f'<div class="scroll">{grid}</div>'


def _outcome_cells(r: dict[str, Any]) -> list[Cell]:
    return [fmt_int(r["requests"]), *(fmt_int(r[o]) for o in OUTCOMES), fmt_pct(r["success_rate"])]


def callback_tables(cb: CallbackNumbers) -> str:
    """Outcomes per call target, callback performance, retries by final outcome."""
    outcome_head = ["Requests", *(o.capitalize() for o in OUTCOMES), "Success rate"]
    *targets, all_row = list(cb.targets.iter_rows(named=True))
    extra = ("asap", "scheduled", "attempts", "retries")
    rows: list[list[Cell]] = [
        [r["call_target_name"] or DASH, *_outcome_cells(r), *(fmt_int(r[c]) for c in extra)]
        for r in targets
    ]
    total: list[Cell] = [all_row["call_target_name"], *_outcome_cells(all_row)]
    total += [fmt_int(all_row[c]) for c in extra]
    head = ["Call target", *outcome_head, "ASAP", "Scheduled", "Attempts", "Retries"]
    out = "<h3>Final outcome by call target</h3>" + table(
        head, rows, total=total, table_id="callback-outcomes"
    )
    p = cb.performance

    def secs(key: str) -> str:
        value = p[key]
        return fmt_duration(None if value is None else value * 1000)

    perf: list[list[Cell]] = [
        ["Average callback time (request to callback)", secs("avg_callback_s")],
        ["Average estimated callback time", secs("avg_estimated_callback_s")],
        ["Average punctuality (positive: late)", secs("avg_punctuality_s")],
        ["Average customer wait (successful)", secs("avg_customer_wait_s")],
        ["Longest customer wait (successful)", secs("max_customer_wait_s")],
        ["Average talk time (successful)", secs("avg_talk_s")],
        ["Customer wait within 30 s (successful)", fmt_pct(p["rcsl_within_30s"])],
    ]  # fmt: skip
    out += "<h3>Callback performance</h3>" + table(
        ["Measure", "Value"], perf, table_id="callback-performance"
    )
    if cb.retries is None:
        return out + '<p class="empty">No retry_outcomes table in this store.</p>'
    retry_rows: list[list[Cell]] = [
        [r["retries"], *_outcome_cells(r)] for r in cb.retries.iter_rows(named=True)
    ]
    out += "<h3>Final outcome by number of retries</h3>" + table(
        ["Retries", *outcome_head],
        retry_rows,
        total=["All requests", *_outcome_cells(all_row)],
        table_id="retries",
    )
    return out
