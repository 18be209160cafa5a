"""The report's charts: matplotlib figures rendered to inline SVG text.

Why matplotlib: it is a well-kept library that draws dates in any time zone, heatmaps, stacked
bars and legends properly, where hand-written SVG would re-implement axis ticks and label layout
badly. It runs headless here: each figure gets an explicit Agg canvas and pyplot (with its global
state and GUI backends) is never imported. matplotlib itself is imported when a chart is drawn,
not with this module, so a command that draws none starts without it. Text is drawn as vector
paths (``svg.fonttype = "path"``, with the DejaVu Sans that ships with matplotlib), so a chart
looks the same, crisp at any zoom, on a machine without that font and offline; ``svg.hashsalt``
and the removed metadata date make the SVG the same on every run. Each SVG's ids are prefixed
with its chart id, so several can live in one HTML page. Figures have fixed margins (in inches,
set per chart) rather than a layout engine, which would lay every figure out once more before
drawing it.

Example:
    >>> fig = figure(2, 1)
    >>> _ = fig.add_subplot().plot([0, 1], [1, 0])
    >>> svg = to_svg(fig, "demo", "A line")
    >>> svg.startswith('<svg id="demo"') and "<script" not in svg
    True
"""

from __future__ import annotations

import io
import re
from contextlib import AbstractContextManager
from datetime import timedelta
from html import escape
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from engine.interval import Window, interval_grid
from engine.tables.callback_requests import OUTCOMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

__all__ = [
    "OUTCOME_COLOURS",
    "RC",
    "SERIES",
    "figure",
    "heatmap_svg",
    "retry_svg",
    "service_svg",
    "to_svg",
    "volume_svg",
]

#: matplotlib settings of every chart.
RC: Final[dict[RcKeyType, Any]] = {
    "svg.fonttype": "path",
    "svg.hashsalt": "wfm-intervals",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9ca3af",
    "axes.labelcolor": "#374151",
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "legend.frameon": False,
    "figure.dpi": 72,
}
_METADATA: Final = {"Date": None, "Creator": None, "Format": None, "Type": None}
SERIES: Final = {"offered": "#475569", "answered": "#15803d", "abandoned": "#dc2626"}
OUTCOME_COLOURS: Final = dict(
    zip(OUTCOMES, ("#15803d", "#eab308", "#dc2626", "#64748b", "#9333ea", "#cbd5e1"), strict=True)
)
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_GRAIN: Final = {15: "15 minutes", 30: "30 minutes", 60: "hour", 1440: "day"}


def _style() -> AbstractContextManager[None]:
    """The context in which a chart is drawn: matplotlib (imported here) set to :data:`RC`."""
    import matplotlib as mpl  # noqa: PLC0415 - drawing a chart is the only use

    return mpl.rc_context(RC)


def _percent() -> Any:
    """A tick formatter showing 0..1 as 0 %..100 %."""
    from matplotlib.ticker import PercentFormatter  # noqa: PLC0415 - see _style

    return PercentFormatter(1.0)


def figure(width: float, height: float) -> Figure:
    """A figure (inches) with an Agg canvas and the report's style; no pyplot, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - see _style
    from matplotlib.figure import Figure  # noqa: PLC0415 - see _style

    with _style():
        fig = Figure(figsize=(width, height), layout=None)
    FigureCanvasAgg(fig)
    return fig


def _margins(fig: Figure, *, left: float, right: float, top: float, bottom: float) -> None:
    """Fixed margins in inches around the axes grid (no layout engine: it costs a draw)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )


def to_svg(fig: Figure, chart_id: str, label: str) -> str:
    """The figure as an ``<svg>`` element for inlining: ids prefixed, scaled to its container."""
    buf = io.StringIO()
    with _style():
        fig.savefig(buf, format="svg", metadata=_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{chart_id}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{chart_id}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{chart_id}-\1)", text)
    head = (
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(label)}" width="100%" '
    )
    return re.sub(r'^<svg (.*?)width="[^"]*" height="[^"]*" ', head + r"\1", text, count=1)


def _days(instants: pl.Series) -> Any:
    """UTC instants as float days since the epoch: the x axis of the time charts."""
    return (instants.dt.epoch("us") / 86_400e6).to_numpy()


def _time_axis(axes: Any, window: Window, tz: str) -> None:
    """Local-time ticks on the shared x axis of ``axes`` (labels on the last one).

    Labelled ticks every 6 hours (up to 3 days), at midnights (up to 14), on Mondays with short
    marks at midnights (up to 92), else on the first of each month with marks on Mondays. The
    marks are one line collection per panel, not minor ticks: a matplotlib tick is a handful of
    artists, and hundreds of them were most of the chart's drawing time.
    """
    start, end = window
    days = (end - start) / timedelta(days=1)
    grid = interval_grid(start, end, minutes=60 if days <= 3 else 1440, tz=tz).filter(
        pl.col("interval_start_utc").is_between(start, end)
    )
    local = pl.col("interval_start_local")
    marks = None
    if days <= 3:
        ticks = grid.filter(local.dt.hour() % 6 == 0)
    elif days <= 14:
        ticks = grid
    elif days <= 92:
        ticks, marks = grid.filter(local.dt.weekday() == 1), grid
    else:
        ticks, marks = grid.filter(local.dt.day() == 1), grid.filter(local.dt.weekday() == 1)
    ticks = ticks.with_columns(
        pl.when(local.dt.hour() == 0)
        .then(local.dt.strftime("%a %d %b"))
        .otherwise(local.dt.strftime("%H:%M"))
        .alias("label")
    )
    axes[-1].set_xticks(_days(ticks["interval_start_utc"]), ticks["label"].to_list())
    axes[-1].set_xlim(_days(pl.Series([start, end])))
    if marks is not None:
        for ax in axes:
            _marks(ax, _days(marks["interval_start_utc"]))


def _marks(ax: Any, x: Any) -> None:
    """Short tick marks below the x axis at ``x`` (data), drawn as one line collection."""
    from matplotlib.collections import LineCollection  # noqa: PLC0415 - see _style

    length = 2 / (ax.get_position().height * ax.figure.get_figheight() * 72)  # 2 pt, in axes
    segments = [((v, 0.0), (v, -length)) for v in x]
    lines = LineCollection(
        segments, colors=RC["xtick.color"], linewidths=0.6, clip_on=False,
        transform=ax.get_xaxis_transform(),
    )  # fmt: skip
    ax.add_collection(lines, autolim=False)


def volume_svg(
    volume: pl.DataFrame, *, window: Window, minutes: int, interval: int | None, tz: str
) -> str:
    """Offered (area), answered and abandoned (lines) per ``minutes``, one panel per channel."""
    channels = volume["channel"].unique(maintain_order=True).to_list()
    with _style():
        fig = figure(12, 0.6 + 1.45 * len(channels))
        _margins(fig, left=1.35, right=0.15, top=0.45, bottom=0.3)
        axes = fig.subplots(len(channels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, channel in zip(axes, channels, strict=True):
            rows = volume.filter(pl.col("channel") == channel)
            x = _days(rows["interval_start_utc"])
            ax.fill_between(
                x, rows["offered"].to_numpy(), color=SERIES["offered"], alpha=0.15, lw=0
            )
            for name, colour in SERIES.items():
                ax.plot(x, rows[name].to_numpy(), color=colour, lw=0.9, label=name)
            ax.set_ylabel(str(channel), rotation=0, ha="right", va="center", fontweight="bold")
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
        _time_axis(axes, window, tz)
        grain = _GRAIN.get(minutes, f"{minutes} minutes")
        note = "" if minutes == interval else f" ({interval}-minute intervals rolled up)"
        fig.suptitle(
            f"Contacts per {grain}{note}, by channel; time axis in {tz}",
            x=0.01, ha="left", fontsize=10, fontweight="bold",
        )  # fmt: skip
        fig.legend(*axes[0].get_legend_handles_labels(), loc="upper right", ncols=3)
    return to_svg(fig, "chart-volume", f"Offered, answered and abandoned per {grain}")


def heatmap_svg(heatmap: pl.DataFrame, *, tz: str) -> str:
    """Offered contacts by local weekday (rows) x hour of day (columns), each cell labelled."""
    from matplotlib import colormaps  # noqa: PLC0415 - see _style

    grid = heatmap.sort("weekday", "hour")["offered"].to_numpy().reshape(7, 24)
    days = heatmap.group_by("weekday").agg(pl.col("days").first()).sort("weekday")["days"]
    peak = max(int(grid.max()), 1)
    with _style():
        fig = figure(12, 3.6)
        _margins(fig, left=1.2, right=0.65, top=0.35, bottom=0.45)
        ax = fig.add_subplot()
        cmap = colormaps["Blues"].resampled(64)  # 64 shades: a light vector colour bar
        mesh = ax.pcolormesh(grid, cmap=cmap, vmin=0, vmax=peak, edgecolors="white", lw=0.5)
        for (row, col), value in _cells(grid):
            colour = "white" if value > 0.55 * peak else "#1f2937"
            ax.text(col + 0.5, row + 0.5, f"{value:,}", ha="center", va="center",
                    fontsize=6.5, color=colour)  # fmt: skip
        ax.set_xticks([h + 0.5 for h in range(24)], [f"{h:02d}" for h in range(24)])
        labels = [f"{d} ({n} day{'s' * (n != 1)})" for d, n in zip(_WEEKDAYS, days, strict=True)]
        ax.set_yticks([d + 0.5 for d in range(7)], labels)
        ax.invert_yaxis()
        ax.grid(visible=False)
        ax.tick_params(length=0)
        ax.set_xlabel(f"hour of day ({tz})")
        ax.set_title("Offered contacts by weekday and hour (sum over the window)")
        bar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.03, format="{x:,.0f}")
        if bar.solids is not None:
            bar.solids.set_rasterized(False)  # vector like the rest: no embedded bitmap
            bar.solids.set_edgecolor("face")  # no hairline seams between the shades
    return to_svg(fig, "chart-heatmap", "Offered contacts by weekday and hour of day")


def _cells(grid: Any) -> list[tuple[tuple[int, int], int]]:
    return [((r, c), int(grid[r, c])) for r in range(grid.shape[0]) for c in range(grid.shape[1])]


def service_svg(daily: pl.DataFrame, *, targets: dict[str, float]) -> str:
    """Service level and AHT per full local day, one line per queue; a dashed line per distinct
    target, naming its channels."""
    with _style():
        fig = figure(12, 3.4)
        entries = daily["queue"].n_unique() + len(set(targets.values()))  # queues and targets
        ncols = min(entries, 4)
        below = 0.85 + 0.2 * -(-entries // ncols)  # the rotated labels, then the legend's rows
        _margins(fig, left=0.5, right=0.15, top=0.3, bottom=below)
        fig.subplots_adjust(wspace=0.12)
        sl_ax, aht_ax = fig.subplots(1, 2)
        for queue in daily["queue"].unique(maintain_order=True):
            rows = daily.filter(pl.col("queue") == queue)
            x = rows["day"].to_numpy()
            sl_ax.plot(x, rows["service_level"].to_numpy(), marker="o", ms=3, lw=1.2, label=queue)
            aht_ax.plot(x, (rows["aht_ms"] / 60_000).to_numpy(), marker="o", ms=3, lw=1.2)
        shown = set(daily["channel"].cast(pl.String).unique().to_list())
        by_value: dict[float, list[str]] = {}
        for ch, t in sorted(targets.items()):
            if ch in shown:
                by_value.setdefault(t, []).append(ch)
        for t, chans in sorted(by_value.items()):
            label = f"target {t:.0%} ({', '.join(chans)})"
            sl_ax.axhline(t, color="#111827", lw=0.8, ls="--", label=label)
        sl_ax.set_ylim(0, 1.02)
        sl_ax.yaxis.set_major_formatter(_percent())
        sl_ax.set_title("Service level per day")
        aht_ax.set_ylim(bottom=0)
        aht_ax.set_title("Average handle time per day (minutes)")
        days = daily["day"].unique().sort().to_list()
        step = -(-len(days) // 10)  # at most about ten labels
        for ax in (sl_ax, aht_ax):
            ax.set_xticks(days[::step], [f"{d:%a %d %b}" for d in days[::step]])
            ax.tick_params(axis="x", labelrotation=30)
        fig.legend(loc="lower center", ncols=ncols)
    return to_svg(fig, "chart-service", "Service level and average handle time per day and queue")


def retry_svg(retries: pl.DataFrame) -> str:
    """Share of each final outcome by retry count, as 100 % stacked bars labelled with n."""
    rows = retries.filter(pl.col("requests") > 0)
    with _style():
        fig = figure(12, 0.9 + 0.32 * max(rows.height, 1))
        _margins(fig, left=1.2, right=0.7, top=0.3, bottom=0.6)
        ax = fig.add_subplot()
        y = list(range(rows.height))
        left = [0.0] * rows.height
        total = rows["requests"].to_list()
        for outcome in OUTCOMES:
            share = [c / t for c, t in zip(rows[outcome], total, strict=True)]
            ax.barh(y, share, left=left, color=OUTCOME_COLOURS[outcome], label=outcome, height=0.7)
            left = [a + b for a, b in zip(left, share, strict=True)]
        for i, n in enumerate(total):
            ax.text(
                1.01, i, f"n = {n:,}", va="center", fontsize=8, transform=ax.get_yaxis_transform()
            )
        ax.set_yticks(y, [f"{r} retries" if r != "1" else "1 retry" for r in rows["retries"]])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(_percent())
        ax.grid(axis="y", visible=False)
        ax.set_axisbelow(True)
        ax.set_title("Final outcome of callback requests by number of retries")
        fig.legend(loc="lower center", ncols=len(OUTCOMES))
    return to_svg(fig, "chart-retries", "Final outcome of callback requests by number of retries")
