"""Benchmark of ``--engine ray``: the volume table and the callback tables on a local Ray cluster,
against one machine.

Inputs are the cardinality benchmark's files (30 days, New York, 15-minute intervals): the first
``--rows`` rows of its contacts (``build``: 1,000 queue x channel pairs) and of its callback
attempts (``callbacks``), validated once (untimed; attempts put in chain order, as the pipeline
holds them). Each configuration runs in a fresh worker process and times one function:

- ``build``: :func:`engine.pipeline.build.volume_table` (the volume table of the whole window,
  with its derived ratios);
- ``callbacks``: :func:`engine.pipeline.callbacks.callback_results` (both callback tables of the
  window, the gaps, the request count and the metrics document);

zero-filled, or with ``--busy`` their busy rows only (``dense=False``: what ``--format parquet``
builds, the store alone);

with the local engine (``single machine``) and with the ray engine on a local cluster of 1 and
of 2 CPUs (one Ray worker per CPU; the driver is the worker process), the driver handing the
rows to Ray (``ray, N CPUs``) or, the rows committed to a store table first as a run commits
them (``store/contacts`` by offer date, ``store/callback_attempts`` by request date; untimed),
handing it the partitions' file paths only, each Ray task reading its partition
(``ray, N CPUs, tasks read the store``); or on a cluster of two Ray nodes of one CPU each on
loopback (``ray.cluster_utils``), joined by its address as a real cluster is, so the driver
runs in the engine's helper process (``ray, 2 nodes by address, ...``: its memory is not in
the driver's peak). The two ``... writes the store`` configurations build busy rows only (as
``--busy``) from the store's partitions and write the store's tables (untimed before: the
single machine's busy rows, compared with the tables read back): the driver collecting the busy
rows and committing them (what ``build``/``callbacks --format parquet`` did before the tasks
wrote them), or the Ray tasks writing the data files and the driver committing their records
(:func:`engine.distributed.ray_engine.write_volume_table`,
:func:`engine.distributed.callbacks.command_tables`, which also has the tasks count the
requests and find the gaps). With ``--end-last-day`` the table is the volume table of the
data's last UTC day with attribution at the end (the tasks read the earlier partitions whose
contacts may end in it: the result notes how many partitions were read of how many). Each Ray
result is compared with the single machine's, value for value (every table and the document),
before its time is reported (``--unchecked``, the writes configurations only: not, so that the
single machine's reference is not in the driver's peak). The cluster's start is timed apart
(``ray.init``): it is paid once per process, not per table. A configuration that fails (out
of memory, a timeout) is recorded with its error instead of a time. Each worker notes the
driver's peak memory (``VmHWM``; the Ray workers' own memory is not in it) and the load
average before and after its timed runs.

Usage::

    python -m benchmarks.distributed --table build callbacks --rows 1000000 --repeat 2
    python -m benchmarks.distributed --table build --rows 10000000 --repeat 1
    python -m benchmarks.distributed --config "ray, 2 CPUs, tasks read the store" --rows 1000000
    python -m benchmarks.distributed --table callbacks --busy  # busy rows only, no zero-fill
    python -m benchmarks.distributed --config "ray, 2 CPUs, driver writes the store" \
        "ray, 2 CPUs, tasks write the store" --rows 1000000 --repeat 1
    python -m benchmarks.distributed --table build --end-last-day \
        --config "ray, 2 CPUs, tasks read the store"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import format_table, loadavg, machine_facts, peak_rss_mib, write_json

HERE = Path(__file__).resolve().parent
CONFIGS = (
    "single machine",
    "ray, 1 CPU",
    "ray, 2 CPUs",
    "ray, 1 CPU, tasks read the store",
    "ray, 2 CPUs, tasks read the store",
    "ray, 2 nodes by address, tasks read the store",
    "ray, 2 CPUs, driver writes the store",
    "ray, 2 CPUs, tasks write the store",
)
TABLES = ("build", "callbacks")


def _inputs(table: str, rows: int, data_dir: Path) -> Any:
    """The validated rows of ``table``'s file (attempts in chain order)."""
    import polars as pl

    from benchmarks.cardinality import data_path
    from engine.tables.callback_requests import in_chain_order
    from engine.validate.callback_attempts import validate_callback_attempts
    from engine.validate.contacts import validate_contacts

    raw = pl.scan_parquet(data_path(data_dir, table, "many-queues", 10_000_000, 0)).head(rows)
    if table == "build":
        return validate_contacts(raw)[0].collect()
    return in_chain_order(validate_callback_attempts(raw)[0]).collect()


def _assert_same(table: str, got: Any, want: Any) -> None:
    """Value for value: the volume table, or both callback tables, gaps, count and document."""
    from polars.testing import assert_frame_equal

    if table == "build":
        assert_frame_equal(got, want)
        return
    (pairs, gaps, n, doc), (want_pairs, want_gaps, want_n, want_doc) = got, want
    for mine, theirs in zip([*pairs[0], gaps], [*want_pairs[0], want_gaps], strict=True):
        assert_frame_equal(mine, theirs)
    assert (n, doc) == (want_n, want_doc)


def _stored(table: str, frame: Any, where: Path) -> Path:
    """``frame`` committed as a run commits it (untimed): the store table the tasks read."""
    from engine.output import delta
    from engine.output.store import write_attempts

    if table == "build":
        delta.commit(where / "contacts", frame, by="offered_at")
        return where / "contacts"
    return write_attempts(frame, where / "callback_attempts")


def _written(table: str, out: Path, want: Any, got: Any) -> int:
    """The store tables written under ``out`` equal the single machine's busy rows ``want``
    (any row order), and (callbacks) the gaps, count and document ``got`` its; the tables'
    rows (``callvolume``, or ``callback_intervals``)."""
    import polars as pl
    from polars.testing import assert_frame_equal

    names = ("callvolume",) if table == "build" else ("callback_intervals", "retry_outcomes")
    frames = (want,) if table == "build" else want[0][0]
    for name, frame in zip(names, frames, strict=True):
        read = pl.read_delta(str(out / name)).drop("date").cast(frame.schema)
        assert_frame_equal(read, frame, check_row_order=False)
    if table == "callbacks":
        gaps, n, doc = got if isinstance(got, list) else (got.gaps, got.requests, got.document)
        order = ["source", "original_id"]
        assert_frame_equal(gaps.sort(order), want[1].sort(order))
        assert (n, doc) == (want[2], want[3])
    return int(frames[0].height)


def _writes(table: str, engine: Any, frame: Any, stored: Path, out: Path, **given: Any) -> Any:
    """The store's tables written from the tasks' busy rows: by the driver (``engine`` the ray
    engine's settings; what the commands did before) or by the tasks (``engine`` ``None``)."""
    from engine.distributed.callbacks import command_tables
    from engine.output import files
    from engine.pipeline.build import volume_table
    from engine.pipeline.callbacks import callback_results

    grid, settings = given["grid"], given["settings"]
    if engine is None and table == "build":
        return volume_table(frame, window=grid, settings=settings, dense=False, stored=stored,
                            engine=given["ray"], into=out / "callvolume")  # fmt: skip
    if engine is None:
        return command_tables(stored, grid, settings=settings, address=None, store=out)
    if table == "build":
        rows = volume_table(frame, window=grid, settings=settings, dense=False, stored=stored,
                            engine=engine)  # fmt: skip
        return files.write_store(rows, out / "callvolume", by="interval_start_utc")
    pairs, *rest = callback_results(frame, [grid], document=grid.window, settings=settings,
                                    engine=engine, dense=False, stored=stored)  # fmt: skip
    for name, rows in zip(("callback_intervals", "retry_outcomes"), pairs[0], strict=True):
        files.write_store(rows, out / name, by="interval_start_utc")
    return rest


def _builder(args: argparse.Namespace, frame: Any, grid: Any, settings: Any, stored: Any) -> Any:
    """The timed function of the worker's configuration: ``build(engine)`` (``None``: the
    single machine's table, busy rows only when the configuration writes the store)."""
    from engine.app.sections import EngineSettings
    from engine.pipeline.build import volume_table
    from engine.pipeline.callbacks import callback_results

    config, (table,) = args.worker, args.table
    writes = config.endswith(("writes the store", "write the store"))
    out, ray_ = args.worker_out.parent / "tables", EngineSettings(kind="ray")
    how = {"grid": grid, "settings": settings, "ray": ray_}
    by_driver = ray_ if "driver" in config else None

    def build(engine: EngineSettings | None = None) -> Any:
        if writes and engine is not None:
            return _writes(table, by_driver, frame, stored, out, **how)
        given = {"dense": not (args.busy or writes)} | (
            {} if engine is None else {"stored": stored}
        )
        if table == "build":
            return volume_table(frame, window=grid, settings=settings, engine=engine, **given)
        return callback_results(
            frame, [grid], document=grid.window, settings=settings, engine=engine, **given
        )

    return build


def _worker(args: argparse.Namespace) -> None:
    from benchmarks.cardinality_data import TZ, WINDOW
    from engine.app.sections import EngineSettings
    from engine.settings import BuildSettings

    config, (table,), repeat = args.worker, args.table, args.repeat
    frame = _inputs(table, args.rows, args.data_dir)
    settings = BuildSettings(tz=TZ, attribution="end" if args.end_last_day else "arrival")
    grid = settings.grid(WINDOW if not args.end_last_day else _last_day(frame))
    stored = _stored(table, frame, args.worker_out.parent) if "store" in config else None
    build, writes = (
        _builder(args, frame, grid, settings, stored),
        config.endswith(("writes the store", "write the store")),
    )

    result: dict[str, Any] = {"config": config, "table": table, "rows": frame.height}
    engine, nodes = None, None
    if "nodes" in config:
        began = time.perf_counter()
        nodes = _two_nodes()
        result["cluster_start_s"] = round(time.perf_counter() - began, 2)
        engine = EngineSettings(kind="ray", address=nodes.address)
    elif config != "single machine":
        import ray

        began = time.perf_counter()
        # a cluster of its own (``local``), never one another process started on this machine
        ray.init(address="local", num_cpus=1 if "1 CPU" in config else 2,
                 include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")  # fmt: skip
        result["cluster_start_s"] = round(time.perf_counter() - began, 2)
        engine = EngineSettings(kind="ray")
    if stored is not None and args.end_last_day:
        from engine.distributed.ray_engine import _partitions
        from engine.output import delta

        result["partitions_read"] = len(_partitions(stored, grid.frame, settings))
        result["partitions"] = len(delta.partition_days(stored))
    if engine is not None and writes:  # value for value, before any time (unless --unchecked)
        out = args.worker_out.parent / "tables"
        checked = not args.unchecked
        result["table_rows"] = _written(table, out, build(), build(engine)) if checked else 0
        result["equal"] = checked
    elif engine is not None:
        _assert_same(table, build(engine), build())  # value for value, before any time
        result["equal"] = True
    result["load_before"] = loadavg()
    walls = []
    for _ in range(repeat):
        began = time.perf_counter()
        built = build(engine)
        walls.append(round(time.perf_counter() - began, 2))
    result["wall_s"] = walls
    result["load_after"] = loadavg()
    if not writes:
        result["table_rows"] = (built if table == "build" else built[0][0][0]).height
    result["driver_peak_mib"] = round(peak_rss_mib())
    if nodes is not None:
        from engine.distributed import helper

        helper.close()
        nodes.shutdown()
    args.worker_out.write_text(json.dumps(result))


def _last_day(frame: Any) -> tuple[datetime, datetime]:
    """The last UTC day the contacts are offered on."""
    day = frame["offered_at"].max().replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day + timedelta(days=1)


def _two_nodes() -> Any:
    """Two Ray nodes of one CPU each on loopback (Ray keeps loopback addresses so only with
    its loopback setting, which the helper process inherits)."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    loopback = {"node_ip_address": "127.0.0.1", "num_cpus": 1}
    cluster = Cluster(initialize_head=True, head_node_args={**loopback, "include_dashboard": False})
    cluster.add_node(**loopback)
    cluster.wait_for_nodes()
    return cluster


def _measure(args: argparse.Namespace, config: str, table: str) -> dict[str, Any]:
    """One configuration in a fresh process: its result, or what failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "benchmarks.distributed", "--worker", config,
               "--table", table, "--worker-out", str(out), "--rows", str(args.rows),
               "--repeat", str(args.repeat), "--data-dir", str(args.data_dir),
               *(["--busy"] if args.busy else []),
               *(["--end-last-day"] if args.end_last_day else []),
               *(["--unchecked"] if args.unchecked else [])]  # fmt: skip
        began = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            error = f"timed out after {args.timeout} s"
        else:
            if done.returncode == 0:
                found: dict[str, Any] = json.loads(out.read_text())
                return found
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            error = f"exit {done.returncode}: {' | '.join(tail)}"
        after = round(time.perf_counter() - began, 1)
        return {"config": config, "table": table, "rows": args.rows, "error": error,
                "after_s": after, "load_after": loadavg()}  # fmt: skip


def _row(m: dict[str, Any], single: dict[str, float]) -> list[str]:
    load = "/".join(f"{x:.1f}" for x in m.get("load_before", m.get("load_after", [])))
    if "error" in m:
        return [m["table"], m["config"], f"{m['rows']:,}", "-", "failed", "-", "-", "-", load]
    best = min(m["wall_s"])
    base = single.get(m["table"])
    return [m["table"], m["config"], f"{m['rows']:,}", f"{m['table_rows']:,}", f"{best:.2f}",
            f"{best / base:.1f}x" if base else "-", str(m.get("cluster_start_s", "-")),
            str(m["driver_peak_mib"]), load]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", nargs="+", choices=TABLES, default=list(TABLES))
    p.add_argument("--config", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--busy", action="store_true", help="busy rows only (--format parquet)")
    p.add_argument("--end-last-day", action="store_true", help="the last day, attribution at end")
    p.add_argument("--unchecked", action="store_true",
                   help="the writes configurations without the single machine's reference "
                        "(its peak is not in the driver's then; no equality check)")  # fmt: skip
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--timeout", type=int, default=3600, help="seconds per configuration")
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--json", type=Path, default=HERE / "results" / "distributed.json")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    measured = []
    for table in args.table:
        for config in args.config:
            measured.append(_measure(args, config, table))
            shown = measured[-1].get("wall_s", measured[-1].get("error"))
            print(f"  {table}, {config}: {shown} (load {os.getloadavg()[0]:.1f})", flush=True)
    single = {m["table"]: min(m["wall_s"]) for m in measured
              if m["config"] == "single machine" and "wall_s" in m}  # fmt: skip
    table = format_table(
        ["table", "engine", "rows in", "table rows", "best wall s", "vs single",
         "cluster start s", "driver peak MiB", "load 1/5/15"],
        [_row(m, single) for m in measured], "llrrrrrrr",
    )  # fmt: skip
    print(table)
    for m in measured:
        if "error" in m:
            print(f"  failed: {m['table']}, {m['config']}: {m['error']}")
    given = vars(args) | {"json": str(args.json), "worker_out": None, "data_dir": None}
    doc = {"benchmark": "distributed", "machine": machine_facts(), "args": given,
           "table": table, "measured": measured}  # fmt: skip
    write_json(args.json, doc)
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
