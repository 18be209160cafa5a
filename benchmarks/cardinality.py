"""Benchmark at real cardinality: the whole ``build`` and ``callbacks`` commands against DuckDB.

Per case (``many-queues``: 1,000 queue x channel pairs and 200 call targets; ``seven-pairs``:
the demo's 7 pairs and 5 targets; :mod:`benchmarks.cardinality_data`), command and size, one
seeded input file is written once (lz4 Parquet, cached in ``--data-dir``). Then, alternately
(ours, DuckDB, ours, DuckDB, ... ``--rounds`` times), each engine does the whole job from that
file in a fresh process:

- ours: ``wfm-intervals build --contacts FILE --out DIR --format parquet`` (or ``callbacks
  --attempts FILE``) with the case's ``--start``/``--end``/``--tz``: validate, de-duplicate,
  write the canonical table, aggregate, zero-fill, write the tables (and its summary and
  quarantine files);
- DuckDB: the same job as SQL (:mod:`benchmarks.cardinality_duckdb`, 2 threads).

Each run is started by a small stdlib-only worker (:func:`benchmarks.common.run_worker`) that
times the command (wall; CPU = user + system of all threads; peak resident memory =
``ru_maxrss`` of ``os.wait4``, exact because the worker is small). After the first round a
``verify`` worker reads both engines' outputs back and compares every table value for value
(:mod:`benchmarks.cardinality_check`); any difference ends the run with FAIL and no time.

Usage::

    python -m benchmarks.cardinality                       # 10M, both cases, both commands
    python -m benchmarks.cardinality --quick               # 20K rows, one round (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    format_table,
    installed_command,
    loadavg,
    machine_facts,
    run_worker,
    watch,
    write_json,
)

MODULE = "benchmarks.cardinality"
HERE = Path(__file__).resolve().parent
CASES = ("many-queues", "seven-pairs")  # benchmarks.cardinality_data.CASES (parent: stdlib only)
COMMANDS = ("build", "callbacks")
ENGINES = ("wfm-intervals", "duckdb")
_MIB = 1024 * 1024


def data_path(data_dir: Path, command: str, case: str, size: int, seed: int) -> Path:
    kind = "contacts" if command == "build" else "attempts"
    return data_dir / f"cardinality-{kind}-{case}-{size}-seed{seed}-lz4.parquet"


# --- workers (each runs in a fresh process) -------------------------------------------------


def _generate(command: str, case: str, size: int, seed: int, path: Path) -> dict[str, Any]:
    from benchmarks import cardinality_data as data
    from benchmarks.common import peak_rss_mib

    make = data.contacts if command == "build" else data.attempts
    frame = make(case, size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.write_parquet(partial, compression="lz4")
    partial.replace(path)
    return {"rows": frame.height, "peak_rss_mib": peak_rss_mib()}


def _script(command: str, path: Path, out: Path, script: Path) -> dict[str, Any]:
    from benchmarks import cardinality_data as data
    from benchmarks.cardinality_duckdb import build_script, callbacks_script

    make = build_script if command == "build" else callbacks_script
    script.write_text(make(str(path), str(out), window=data.WINDOW, tz=data.TZ))
    return {"script": str(script), "window_args": data.window_args()}


def _run(cmd: list[str], log: Path, timeout_s: float, cap_mib: float) -> dict[str, Any]:
    """Run ``cmd`` (stdout and stderr to ``log``) and report its wall, CPU and peak memory."""
    with log.open("wb") as sink:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        watched = watch(proc, max_rss_mib=cap_mib, timeout_s=timeout_s, every_s=0.02)
        wall = time.perf_counter() - began
    usage = watched.usage
    return {
        "exit_code": os.waitstatus_to_exitcode(watched.status),
        "killed": watched.killed,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "vmhwm_polled_mib": round(watched.vmhwm_mib, 1),
    }


def _worker(args: argparse.Namespace) -> None:
    if args.worker == "generate":
        report = _generate(args.command, args.case, args.size, args.seed, args.data_path)
    elif args.worker == "script":
        report = _script(args.command, args.data_path, args.out, args.script)
    elif args.worker == "verify":
        from benchmarks.cardinality_check import verify

        report = verify(args.command, args.out)
    else:  # run: a command, timed from this small process
        report = _run(json.loads(args.cmd), args.log, args.timeout, args.max_rss_mib)
    Path(args.worker_out).write_text(json.dumps(report))


# --- the parent: stdlib only, so that it stays small (see benchmarks.common) ---------------


def _bytes(root: Path) -> dict[str, int]:
    """Bytes of every file under ``root``, in all and per table directory."""
    sizes: dict[str, int] = {"total": 0}
    for folder, _, names in os.walk(root):
        n = sum((Path(folder) / name).stat().st_size for name in names)
        sizes["total"] += n
        rel = Path(folder).relative_to(root).parts
        table = rel[1] if rel[:1] == ("store",) and len(rel) > 1 else (rel[0] if rel else "")
        if table and table not in ("store", "quarantine", "exports", "logs"):
            sizes[table] = sizes.get(table, 0) + n
    return sizes


def _one(engine: str, plan: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    out = plan["out"][engine]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if engine == "duckdb":
        cmd = [sys.executable, "-m", "benchmarks.cardinality_duckdb", str(plan["script"])]
    else:
        flag = "--contacts" if plan["command"] == "build" else "--attempts"
        cmd = [args.cli, plan["command"], flag, str(plan["path"]), "--out", str(out)]
        cmd += ["--format", "parquet", *plan["window_args"]]
    log = out.with_name(f"{out.name}.log")
    flags = ["--worker", "run", "--cmd", json.dumps(cmd), "--log", str(log)]
    flags += ["--timeout", str(args.timeout), "--max-rss-mib", str(args.max_rss_mib)]
    report = run_worker(MODULE, flags, timeout_s=args.timeout + 60).report
    if report["exit_code"] != 0 or report["killed"]:
        tail = log.read_text(errors="replace")[-2000:]
        sys.exit(f"FAIL: {engine} {plan['label']}: {report['killed'] or report}\n{tail}")
    return report | {"bytes": _bytes(out), "loadavg_after": loadavg()}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def _measure(command: str, case: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    label = f"{command} {case} {size:,}"
    path = data_path(args.data_dir, command, case, size, args.seed)
    work = args.work_dir / f"{command}-{case}-{size}"
    common = ["--command", command, "--case", case, "--size", str(size), "--seed", str(args.seed)]
    common += ["--data-path", str(path)]
    limits = {"timeout_s": args.timeout, "max_rss_mib": args.max_rss_mib}
    if not path.exists():
        print(f"[{label}] generating {path.name} ...", flush=True)
        gen = run_worker(MODULE, ["--worker", "generate", *common], **limits)
        print(f"[{label}] generated in {gen.wall_s:.1f} s, peak {gen.peak_rss_mib:,.0f} MiB")
    out = {e: work / e for e in ENGINES}
    work.mkdir(parents=True, exist_ok=True)
    script = work / "duckdb.sql"
    prep = ["--worker", "script", "--out", str(out["duckdb"]), "--script", str(script)]
    made = run_worker(MODULE, [*prep, *common], **limits).report
    plan = {"command": command, "path": path, "out": out, "script": script, "label": label}
    plan["window_args"] = made["window_args"]
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in ENGINES}
    check: dict[str, Any] = {}
    for round_no in range(1, args.rounds + 1):
        for engine in ENGINES:
            print(f"[{label}] {engine} (round {round_no}/{args.rounds}) ...", flush=True)
            runs[engine].append(_one(engine, plan, args))
        if round_no == 1:  # value for value, before any time is reported
            try:
                flags = ["--worker", "verify", "--out", str(work), *common]
                check = run_worker(MODULE, flags, **limits).report
            except RuntimeError:
                sys.exit(f"FAIL: [{label}] the engines' outputs differ (above); no time reported")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        e: {k: _median(r, k) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
        | {"bytes": r[-1]["bytes"]}
        for e, r in runs.items()
    }
    return {
        "command": command,
        "case": case,
        "size": size,
        "path": str(path),
        "summary": summary,
        "runs": runs,
        "check": check,
    }


def render(measured: list[dict[str, Any]]) -> str:
    headers = ["command", "case", "rows in", "engine", "wall s", "CPU s", "peak MiB", "out MB"]
    headers += ["vs DuckDB", "by CPU", "runs"]
    rows = []
    for m in measured:
        duck = m["summary"]["duckdb"]
        for engine, s in m["summary"].items():
            rows.append(
                [
                    m["command"],
                    m["case"],
                    f"{m['check']['rows_in']:,}",
                    engine,
                    f"{s['wall_s']:.2f}",
                    f"{s['cpu_s']:.2f}",
                    f"{s['peak_rss_mib']:,.0f}",
                    f"{s['bytes']['total'] / 1e6:,.1f}",
                    f"{duck['wall_s'] / s['wall_s']:.2f}x",
                    f"{duck['cpu_s'] / s['cpu_s']:.2f}x",
                    str(len(m["runs"][engine])),
                ]
            )
    return format_table(headers, rows, "lllrrrrrrrr")


def _engine_state() -> dict[str, Any]:
    def git(*a: str) -> str:
        done = subprocess.run(
            ["git", *a], cwd=HERE.parent, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_engine_files": [f for f in changed if f.startswith("engine/")],
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000_000], help="rows per input")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    p.add_argument("--rounds", type=int, default=3, help="alternate the engines this many times")
    p.add_argument("--quick", action="store_true", help="20,000 rows, one round (a smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--work-dir", type=Path, default=HERE / "data" / "cardinality-runs")
    p.add_argument("--keep", action="store_true", help="keep the outputs of the last round")
    p.add_argument("--json", type=Path, default=HERE / "results" / "cardinality.json")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--max-rss-mib", type=float, default=14_336.0, help="kill a run above this")
    hidden = argparse.SUPPRESS
    p.add_argument("--worker", choices=["generate", "script", "run", "verify"], help=hidden)
    p.add_argument("--worker-out", help=hidden)
    for name in ("--command", "--case", "--cmd"):
        p.add_argument(name, help=hidden)
    p.add_argument("--size", type=int, help=hidden)
    for name in ("--data-path", "--out", "--script", "--log"):
        p.add_argument(name, type=Path, help=hidden)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds = [20_000], 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return
    machine = machine_facts() | {"engine": _engine_state()}
    args.cli = installed_command()  # checked once, before any data is generated
    measured = [
        _measure(command, case, size, args)
        for size in args.sizes
        for case in args.cases
        for command in args.commands
    ]
    machine["loadavg_1_5_15_at_end"] = loadavg()
    table = render(measured)
    print(table)
    doc = {
        "benchmark": "cardinality",
        "machine": machine,
        "args": {k: str(v) for k, v in vars(args).items() if v is not None and k != "cli"},
        "table": table.splitlines(),
        "measured": measured,
    }
    write_json(args.json, doc)
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
