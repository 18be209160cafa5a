"""Benchmark of ``--engine ray``: the volume table on a local Ray cluster, against one machine.

From the cardinality benchmark's contacts file (1,000 queue x channel pairs, 30 days, New York;
its first ``--rows`` rows, validated once, untimed), each configuration builds the volume table
of the whole window in a fresh worker process: the single-machine builder
(:func:`engine.pipeline.build.volume_table`), and :func:`engine.distributed.ray_engine.volume_table`
on a local cluster of 1 and of 2 CPUs (one Ray worker per CPU). Each result is compared with the
single machine's, value for value, before its time is reported. The cluster's start is timed
apart (``ray.init``): it is paid once per process, not per table.

Usage::

    python -m benchmarks.distributed --rows 1000000 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import format_table, machine_facts, write_json

HERE = Path(__file__).resolve().parent
CONFIGS = ("single machine", "ray, 1 CPU", "ray, 2 CPUs")


def _worker(config: str, rows: int, repeat: int, out: Path) -> None:
    import polars as pl
    from polars.testing import assert_frame_equal

    from benchmarks.cardinality import data_path
    from benchmarks.cardinality_data import TZ, WINDOW
    from engine.pipeline.build import volume_table
    from engine.settings import BuildSettings
    from engine.validate.contacts import validate_contacts

    path = data_path(HERE / "data", "build", "many-queues", 10_000_000, 0)
    raw = pl.scan_parquet(path).head(rows)
    contacts = validate_contacts(raw)[0].collect()
    settings = BuildSettings(tz=TZ)
    grid = settings.grid(WINDOW)
    reference = volume_table(contacts, window=grid, settings=settings)
    result: dict[str, Any] = {
        "config": config,
        "contacts": contacts.height,
        "rows": reference.height,
    }
    build = lambda: volume_table(contacts, window=grid, settings=settings)  # noqa: E731
    if config != "single machine":
        import ray

        from engine.distributed.ray_engine import volume_table as on_ray

        began = time.perf_counter()
        ray.init(num_cpus=1 if "1 CPU" in config else 2, include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        result["cluster_start_s"] = round(time.perf_counter() - began, 2)
        build = lambda: on_ray(contacts, grid=grid, settings=settings)  # noqa: E731
        assert_frame_equal(build(), reference)  # value for value, before any time
    walls = []
    for _ in range(repeat):
        began = time.perf_counter()
        build()
        walls.append(round(time.perf_counter() - began, 2))
    result["wall_s"] = walls
    out.write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", type=Path, default=HERE / "results" / "distributed.json")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.rows, args.repeat, args.worker_out)
        return
    measured = []
    for config in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            cmd = [sys.executable, "-m", "benchmarks.distributed", "--worker", config,
                   "--worker-out", str(out), "--rows", str(args.rows),
                   "--repeat", str(args.repeat)]  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True)
            measured.append(json.loads(out.read_text()))
            print(f"  {config}: {measured[-1]['wall_s']}", flush=True)
    single = min(measured[0]["wall_s"])
    rows = [
        [m["config"], f"{m['contacts']:,}", f"{m['rows']:,}", f"{min(m['wall_s']):.2f}",
         f"{min(m['wall_s']) / single:.1f}x", str(m.get("cluster_start_s", "-"))]
        for m in measured
    ]  # fmt: skip
    table = format_table(
        ["engine", "contacts", "table rows", "best wall s", "vs single", "cluster start s"],
        rows, "lrrrrr",
    )  # fmt: skip
    print(table)
    given = vars(args) | {"json": str(args.json), "worker_out": None}
    doc = {"benchmark": "distributed", "machine": machine_facts(), "args": given,
           "table": table, "measured": measured}  # fmt: skip
    write_json(args.json, doc)
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
