"""The callback benchmark's results: the JSON document, the targets, and the printed table.

Example:
    >>> print(render({"machine": {}, "setup": {}, "results": [], "targets": [], "notes": []}))
    attempts  task  engine  best s  CPU s  M att/s  vs DuckDB  by CPU  peak RSS MiB  imports MiB
    --------  ----  ------  ------  -----  -------  ---------  ------  ------------  -----------
    <BLANKLINE>
    machine: unknown
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from benchmarks.common import WorkerRun, format_table

__all__ = ["RUNS", "TARGETS", "TIE", "notes", "render", "summarise", "verdict"]

TASKS: Final = ("tables", "document")
#: Worker names, ``engine-task``, in run order.
RUNS: Final = tuple(f"{e}-{t}" for t in TASKS for e in ("polars", "duckdb"))
#: The volume benchmark's targets, for our engine on each task.
TARGETS: Final = {"vs_duckdb": 1.5, "attempts_per_s": 15e6, "peak_bytes_at_10m": 2e9}
#: Differences under this fraction are ties on this shared machine (PERF-NOTES).
TIE: Final = 0.15
_MIB = 1024 * 1024


def _row(m: dict[str, Any], name: str, run: WorkerRun) -> dict[str, Any]:
    engine, task = name.split("-")
    times, cpu = run.report["wall_s"], run.report["cpu_s"]
    best = min(times)
    return {
        "size": m["size"],
        "attempts": m["rows"],
        "requests_in_month": m["requests"],
        "task": task,
        "engine": engine,
        "best_s": round(best, 4),
        "wall_s": [round(t, 4) for t in times],
        "cpu_s": [round(t, 4) for t in cpu],
        "attempts_per_s": round(m["rows"] / best),
        "attempts_per_cpu_s": round(m["rows"] / max(min(cpu), 1e-9)),
        "peak_rss_mib": round(run.peak_rss_mib, 1),
        "ru_maxrss_mib": round(run.ru_maxrss_mib, 1),
        "rss_after_imports_mib": round(run.report["rss_after_imports_mib"], 1),
        "loadavg_before_after": run.report["loadavg_before_after"],
    } | ({"chain_ordered": run.report["chain_ordered"]} if "chain_ordered" in run.report else {})


def verdict(wall_ratio: float, cpu_ratio: float) -> str:
    """Faster only when wall and CPU time both say so by more than :data:`TIE`."""
    if min(wall_ratio, cpu_ratio) > 1 + TIE:
        return "polars faster"
    if max(wall_ratio, cpu_ratio) < 1 - TIE:
        return "duckdb faster"
    return "tie (within noise, or wall and CPU disagree)"


def _targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ratio, rate, limit = TARGETS.values()
    out = []
    for r in rows:
        if r["engine"] != "polars":
            continue
        checks = [
            (f">= {ratio}x DuckDB throughput", r["vs_duckdb"], ratio),
            (f">= {rate / 1e6:.0f}M attempts/s", r["attempts_per_s"], rate),
        ]
        if r["size"] == 10_000_000:
            checks.append((f"peak RSS < {limit / 1e9:.0f} GB", r["peak_rss_mib"], limit / _MIB))
        for target, value, bound in checks:
            met = value < bound if target.startswith("peak") else value >= bound
            out.append(
                {
                    "target": f"polars {r['task']} {target}",
                    "size": r["size"],
                    "value": value,
                    "met": met,
                    "within_noise": abs(value / bound - 1) < TIE,
                }
            )
    return out


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per size and task: the ratios and the verdict."""
    return [
        f"{r['size']:,} {r['task']}: polars/duckdb {r['vs_duckdb']:.2f}x wall, "
        f"{r['vs_duckdb_per_cpu_s']:.2f}x CPU: {r['verdict']}"
        for r in rows
        if r["engine"] == "polars"
    ]


def summarise(
    measured: list[dict[str, Any]],
    *,
    machine: dict[str, Any],
    window: tuple[datetime, datetime],
    args: dict[str, Any],
) -> dict[str, Any]:
    """The JSON document: machine, setup, one row per size, task and engine, targets."""
    rows = []
    for m in measured:
        here = {name: _row(m, name, run) for name, run in m["runs"].items()}
        for name, r in here.items():
            duck = here[f"duckdb-{r['task']}"]
            r["vs_duckdb"] = round(r["attempts_per_s"] / duck["attempts_per_s"], 2)
            by_cpu = r["attempts_per_cpu_s"] / duck["attempts_per_cpu_s"]
            r["vs_duckdb_per_cpu_s"] = round(by_cpu, 2)
            ratios = r["vs_duckdb"], r["vs_duckdb_per_cpu_s"]
            r["verdict"] = verdict(*ratios) if r["engine"] == "polars" else "reference"
            r |= {k: m[k] for k in ("intervals_rows", "retries_rows") if name.endswith("tables")}
        rows += list(here.values())
    setup = {
        "window_utc": [w.isoformat() for w in window],
        "interval_minutes": 15,
        "tz": "UTC",
        "generator": "engine.demo.callbacks.generate_attempts (days=31, scale calibrated)",
        "seed": args["seed"],
        "parquet_compression": args["compression"],
        "row_order": {
            "store": "the store as build_callbacks writes it (engine.output.store: one file "
            "per request date, each in chain order, with its layout file; checked in the "
            "timed run by scan_requests)",
            "chain": "one file in chain order (engine.tables.callback_requests.in_chain_order)",
            "generated": "one file as generated (by creation time)",
        }[args.get("layout", "generated")],
        "repeat": args["repeat"],
        "warmup_runs": 1,
        "polars": "engine.pipeline.callbacks.callback_tables collected by pl.collect_all, and "
        "callback_metrics.document, over requests: the one plan (sort into chain order, reduce "
        "the runs) for a file; the store's reader (scan_requests: runs once the layout file and "
        "an order pass prove the order, in the timed run) for a store",
        "duckdb": "2 threads; tables: CREATE TEMP TABLE of the window's requests, then two "
        "queries; document: one query",
        "peak_rss": "VmHWM of a fresh worker process per engine, task and size (its own peak)",
        "ties": f"differences under {TIE:.0%} are ties (shared machine)",
    }
    return {
        "benchmark": "callbacks",
        "machine": machine,
        "setup": setup,
        "results": rows,
        "targets": _targets(rows),
        "notes": notes(rows),
    }


def render(doc: dict[str, Any]) -> str:
    """The plain table printed to stdout."""
    table = [
        [
            f"{r['attempts']:,}",
            r["task"],
            r["engine"],
            f"{r['best_s']:.3f}",
            f"{min(r['cpu_s']):.2f}",
            f"{r['attempts_per_s'] / 1e6:.2f}",
            f"{r['vs_duckdb']:.2f}x",
            f"{r['vs_duckdb_per_cpu_s']:.2f}x",
            f"{r['peak_rss_mib']:,.0f}",
            f"{r['rss_after_imports_mib']:,.0f}",
        ]
        for r in doc["results"]
    ]
    headers = ["attempts", "task", "engine", "best s", "CPU s", "M att/s", "vs DuckDB", "by CPU"]
    headers += ["peak RSS MiB", "imports MiB"]
    lines = [format_table(headers, table, "rllrrrrrrr"), ""]
    for t in doc["targets"]:
        verdict = "MET   " if t["met"] else "MISSED"
        noise = " (within noise)" if t["within_noise"] else ""
        lines.append(f"target {verdict} {t['target']} at {t['size']:,}: {t['value']:,}{noise}")
    lines += [f"note: {n}" for n in doc["notes"]]
    m = doc["machine"]
    keys = ("nproc", "mem_total_gib", "cpu", "loadavg_1_5_15", "loadavg_1_5_15_at_end")
    facts = [f"{k}={m[k]}" for k in keys if k in m]
    facts += [f"{k} {v}" for k, v in m.get("packages", {}).items()]
    lines.append(f"machine: {', '.join(facts) or 'unknown'}")
    return "\n".join(lines)
