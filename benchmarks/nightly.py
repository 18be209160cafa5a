"""Benchmark of the nightly job: what one ``wfm-intervals run`` costs as the history grows.

Per case, ``--days`` of history (7, 90, 365 by default) are built by untimed runs against the
UJET and Mindful emulators on 127.0.0.1 (every ``--chunk-days`` days, then the day before the
last: see :func:`benchmarks.nightly_data.schedule`), the vendors then serve one more day, and
the command a tenant schedules is timed as a child process::

    WFM_CLOCK_AT=2026-11-05T02:00:00Z wfm-intervals run --config wfm.toml   # one day new
    WFM_CLOCK_AT=2026-11-05T02:10:00Z wfm-intervals run --config wfm.toml   # nothing new

and the one-day run again from the same stores on the night of the weekly sweep of leftovers
(``sweep-night``: the housekeeping record removed, :func:`engine.pipeline.lock.housekeeping`).
Every case's history is built first; then the cases' timed runs alternate (round ``r`` times
each case's one-day and nothing-new runs in turn, in reverse order every other round; each
run's ``order`` says where it fell), so that a drift of the machine's speed over minutes lands
on every case alike instead of on the one timed last.

Every instant is fixed (the history ends 2026-11-04, a Wednesday, the new day; the job runs at
02:00 UTC): the run's "now" is
``WFM_CLOCK_AT``. Each timed run goes through :func:`benchmarks.common.run_worker`: a small
worker process (stdlib only) starts the command and reports its wall time, CPU time and peak
resident memory (``ru_maxrss`` from ``os.wait4``, exact because the worker is small; see
``benchmarks/common.py``), exit code and step times (its ``event=step`` log lines).

The first setup run pulls the most at once; its records, records/s and peak memory per record
are reported as ``first_run`` (issue 13, item 4; ``--chunk-days`` above ``--days`` makes it
the whole history).

A time is reported only for a run that exited 0 and whose store is right
(:func:`benchmarks.nightly_data.verify_store`: the stored volume table's ``offered`` per day
equals what the emulators served, the new day included, and each callback attempt is stored
once); the one-day run must not be a full rebuild, and the nothing-new run must land nothing new.

Usage::

    python -m benchmarks.nightly                          # --days 7,90,365
    python -m benchmarks.nightly --days 7,90 --repeat 3
    python -m benchmarks.nightly --quick                  # tiny sizes, seconds (the smoke test)
    python -m benchmarks.nightly --quick --days 1,2 --repeat 2   # the alternation, tiny
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    _maxrss_mib,
    child_environment,
    format_table,
    installed_command,
    loadavg,
    machine_facts,
    run_worker,
    watch,
    write_json,
)
from engine import clock

MODULE = "benchmarks.nightly"
HERE = Path(__file__).resolve().parent
#: The job's time of day (UTC), and how long after the one-day run the nothing-new run starts.
RUN_AT, AGAIN_AFTER = timedelta(hours=2), timedelta(minutes=10)
_STEP = re.compile(r"event=step step=(\w+) seconds=([0-9.]+)")
_STORES = ("landing", "state", "out")
_ORDER = itertools.count(1)


# --- the worker: one run of the command, in a small process of its own ----------------------


def _measure(
    command: str, root: Path, at: str, label: str, *, timeout_s: float, cap_mib: float
) -> dict[str, Any]:
    """Run ``command run --config root/wfm.toml`` (``command``: the installed ``wfm-intervals``
    the parent checked) in ``root`` on the clock ``at``.

    The environment is this process's without any ``WFM_`` variable (the secrets are in
    ``root/.env``, the configuration in ``wfm.toml``) plus ``WFM_CLOCK_AT``. Output goes to
    ``root/logs/<label>.out|.err``. Killed past ``timeout_s`` or above ``cap_mib`` resident.
    """
    env = child_environment({k: v for k, v in os.environ.items() if not k.startswith("WFM_")})
    env[clock.CLOCK_AT_VARIABLE] = at
    # An installed package has its bytecode compiled (pip does it at install time); a shell with
    # PYTHONDONTWRITEBYTECODE set would have every run compile the engine again (~0.2 s), a cost
    # no user's nightly run pays. The untimed setup runs write the bytecode the timed runs use.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    cmd = [command, "run", "--config", str(root / "wfm.toml")]
    err_path = logs / f"{label}.err"
    with (logs / f"{label}.out").open("wb") as out, err_path.open("wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=err)
        watched = watch(proc, max_rss_mib=cap_mib, timeout_s=timeout_s, every_s=0.02)
        status, usage, killed, hwm = (
            watched.status,
            watched.usage,
            watched.killed,
            watched.vmhwm_mib,
        )
        wall = time.perf_counter() - began
    steps = {m[1]: float(m[2]) for m in _STEP.finditer(err_path.read_text(errors="replace"))}
    return {
        "label": label,
        "clock_at": at,
        "exit_code": os.waitstatus_to_exitcode(status),
        "killed": killed,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(_maxrss_mib(usage.ru_maxrss), 1),
        "vmhwm_polled_mib": round(hwm, 1),
        "steps": steps,
    }


def _worker(args: argparse.Namespace) -> None:
    limits = {"timeout_s": args.timeout, "cap_mib": args.max_rss_mib}
    report = _measure(args.command, args.root, args.clock_at, args.label, **limits)
    Path(args.worker_out).write_text(json.dumps(report))


# --- the parent ------------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(root: Path, at: datetime, label: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of the command, measured by a worker; adds what ``run_summary.json`` says."""
    flags = ["--worker", "measure", "--root", str(root), "--clock-at", _iso(at), "--label", label]
    flags += ["--command", args.command]
    flags += ["--timeout", str(args.timeout), "--max-rss-mib", str(args.max_rss_mib)]
    report = run_worker(MODULE, flags, timeout_s=args.timeout + 60).report
    summary_path = root / "out" / "run_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    started = datetime.fromisoformat(
        summary.get("started_at", "1970-01-01Z").replace("Z", "+00:00")
    )
    if not at <= started < at + AGAIN_AFTER:  # the summary of an earlier run: this one wrote none
        summary = {}
    report["run_seconds"] = summary.get("seconds")
    report["full_rebuild"] = summary.get("window", {}).get("full_rebuild")
    report["new"] = {f"{p['source']}/{p['stream']}": p["new"] for p in summary.get("pulled", [])}
    report["records"] = sum(p["records"] for p in summary.get("pulled", []))
    report["summary_ok"] = summary.get("ok")
    print(
        f"  {label:<12} at {_iso(at)}: exit {report['exit_code']}, {report['wall_s']:.2f} s, "
        f"peak {report['peak_rss_mib']:,.0f} MiB, new {sum(report['new'].values()):,}",
        flush=True,
    )
    return report


def _problems(run: dict[str, Any], check: dict[str, Any], *, one_day: bool) -> list[str]:
    """What is wrong with a timed run: its exit, its kind, or its store."""
    found = [f"exit code {run['exit_code']} {run['killed']}".strip()] if run["exit_code"] else []
    if one_day and run["full_rebuild"] is not False:
        found.append(f"not an incremental run (full_rebuild={run['full_rebuild']})")
    if one_day and not sum(run["new"].values()):
        found.append("the one-day run pulled nothing new")
    if not one_day and any(run["new"].values()):
        found.append(f"the nothing-new run pulled new records: {run['new']}")
    if one_day and check.get("new_day_offered_stored") != check.get("new_day_offered_served"):
        found.append("the new day's offered does not match what was served")
    return found + list(check.get("problems", []))


def _snapshot(root: Path, to: Path, *, restore: bool) -> None:
    """Copy the stores of ``root`` to ``to`` (or back, with ``restore``)."""
    for name in _STORES:
        source, target = (to / name, root / name) if restore else (root / name, to / name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


@dataclass
class _Case:
    """One history built and ready to be timed: its stores, traffic and timed runs so far."""

    history: int
    root: Path
    traffic: Any
    keys: dict[str, str]
    served: Any
    previous: datetime
    setup: list[dict[str, Any]]
    setup_s: float
    timed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def _build(history: int, args: argparse.Namespace) -> _Case:
    """Build ``history`` days of stores by untimed runs (every ``--chunk-days``, then the day
    before the last)."""
    from benchmarks import nightly_data as data

    root = args.work_dir / f"history-{history}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    began = time.perf_counter()
    traffic = data.generate(
        history=history,
        contacts_per_day=args.contacts_per_day,
        callbacks_per_day=args.callbacks_per_day,
        seed=args.seed,
    )
    keys, served = data.write_secrets(root), data.Served()
    print(
        f"[{history} days] {traffic.contacts.height:,} contact rows, "
        f"{traffic.attempts.height:,} callback attempts; building the history ...",
        flush=True,
    )
    setup: list[dict[str, Any]] = []
    previous: datetime | None = None
    for n, at in enumerate(data.schedule(history, chunk_days=args.chunk_days, run_at=RUN_AT), 1):
        contacts, attempts = (
            traffic.contacts_served(previous, at),
            traffic.attempts_served(previous, at),
        )
        with data.serve(contacts, attempts, keys) as emulators:
            served.add(emulators.ujet, emulators.mindful)
            data.write_config(root, emulators, start=traffic.start)
            setup.append(_run(root, at, f"setup-{n}", args))
        if setup[-1]["exit_code"]:
            sys.exit(f"FAIL: the setup run {n} of {history} days exited {setup[-1]['exit_code']}")
        previous = at
    assert previous is not None  # schedule() gives at least one run
    timed: dict[str, list[dict[str, Any]]] = {"one-day": [], "nothing-new": [], "sweep-night": []}
    return _Case(history, root, traffic, keys, served, previous, setup,
                 time.perf_counter() - began, timed)  # fmt: skip


def _measure_cases(cases: list[_Case], args: argparse.Namespace) -> None:
    """Time every case, their runs alternated: round ``r`` times the one-day and the
    nothing-new run of each case in turn (the order reversed every other round), then the
    sweep nights the same way. The vendors' new day is served by each case's own emulators,
    all up together. A virtual machine's speed drifts over minutes; alternating puts the same
    drift on every case instead of on whichever ran last."""
    from benchmarks import nightly_data as data

    at = data.HISTORY_END + data.DAY + RUN_AT
    with ExitStack() as stack:
        for case in cases:
            emulators = stack.enter_context(
                data.serve(
                    case.traffic.contacts_served(case.previous, at),
                    case.traffic.attempts_served(case.previous, at),
                    case.keys,
                )
            )
            case.served.add(emulators.ujet, emulators.mindful)
            data.write_config(case.root, emulators, start=case.traffic.start)
            _snapshot(case.root, case.root / "snapshot", restore=False)
        for r in range(args.repeat):
            for case in cases if r % 2 == 0 else cases[::-1]:
                if r:
                    _snapshot(case.root, case.root / "snapshot", restore=True)
                for name, when in (("one-day", at), ("nothing-new", at + AGAIN_AFTER)):
                    case.timed[name].append(_timed(case, when, name, r, args))
        # the same one-day run on the night of the weekly sweep of leftovers (housekeeping)
        for r in range(args.repeat):
            for case in cases if r % 2 == 0 else cases[::-1]:
                _snapshot(case.root, case.root / "snapshot", restore=True)
                (case.root / "state" / "housekeeping.json").unlink(missing_ok=True)
                case.timed["sweep-night"].append(_timed(case, at, "sweep-night", r, args))


def _result(case: _Case) -> dict[str, Any]:
    return {
        "history_days": case.history,
        "contact_rows": case.traffic.contacts.height,
        "callback_attempts": case.traffic.attempts.height,
        "setup_s": round(case.setup_s, 1),
        "setup": case.setup,
        "first_run": _first_run(case.setup[0]),
        "cases": {name: _summarise(runs, case.checks[name]) for name, runs in case.timed.items()},
    }


def _timed(
    case: _Case, when: datetime, name: str, r: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One timed run of ``name`` and the check of the store it leaves."""
    from benchmarks import nightly_data as data

    run = _run(case.root, when, f"{name}-{r + 1}", args)
    run["order"] = next(_ORDER)  # the place of this run among every case's timed runs
    check = data.verify_store(case.root / "out", case.served, new_day=data.HISTORY_END)
    run["problems"] = _problems(run, check, one_day=name != "nothing-new")
    case.checks[name] = check
    return run


def _first_run(run: dict[str, Any]) -> dict[str, Any]:
    """The first setup run (the whole history pulled at once): records pulled, peak memory per
    record, records per second (issue 13, item 4: at most 1 KB a record at ~290K records)."""
    records = run.get("records") or 0
    return {
        "records": records,
        "wall_s": run["wall_s"],
        "peak_rss_mib": run["peak_rss_mib"],
        "kb_per_record": round(run["peak_rss_mib"] * 1024 / records, 2) if records else None,
        "records_per_s": round(records / run["wall_s"]) if run["wall_s"] else None,
        "steps": run["steps"],
    }


def _summarise(runs: list[dict[str, Any]], check: dict[str, Any]) -> dict[str, Any]:
    problems = [p for run in runs for p in run["problems"]]
    return {
        "verified": not problems,
        "problems": problems,
        "exit_codes": [r["exit_code"] for r in runs],
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "check": check,
        "runs": runs,
    }


def _targets(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets: one-day within 25 % from the shortest to the longest history;
    nothing-new under 2 s at 90 days."""
    one_day = {m["history_days"]: m["cases"]["one-day"]["wall_s"] for m in measured}
    out: dict[str, Any] = {}
    if len(one_day) > 1:
        low, high = min(one_day), max(one_day)
        change = one_day[high] / one_day[low] - 1
        out["one_day_change"] = {"from_days": low, "to_days": high, "change": round(change, 3)}
        out["one_day_within_25pct"] = abs(change) <= 0.25
    at_90 = [m["cases"]["nothing-new"]["wall_s"] for m in measured if m["history_days"] == 90]
    if at_90:
        out["nothing_new_at_90_under_2s"] = at_90[0] < 2.0
    return out


def render(doc: dict[str, Any]) -> str:
    """The results table, the step times and the targets, as text."""
    rows, steps = [], []
    names = ("sync", "rebuild", "build", "export", "reconcile", "report")
    for m in doc["measured"]:
        for case, c in m["cases"].items():
            codes = ",".join(str(x) for x in c["exit_codes"])
            verified = "yes" if c["verified"] else "NO"
            rows.append(
                [case, m["history_days"], f"{c['wall_s']:.2f}", f"{c['cpu_s']:.2f}",
                 f"{c['peak_rss_mib']:,.0f}", codes, verified]
            )  # fmt: skip
            first = c["runs"][0]
            startup = first["wall_s"] - (first["run_seconds"] or 0.0)
            cells = [f"{first['steps'].get(s, 0.0):.2f}" for s in names]
            steps.append([case, m["history_days"], *cells, f"{startup:.2f}"])
    heads = ["case", "history days", "wall s", "cpu s", "peak MiB", "exit code", "verified"]
    text = [format_table(heads, rows, "lrrrrrl"), ""]
    text.append("seconds per step (first run of each case; startup = wall - run()):")
    text.append(format_table(["case", "history days", *names, "startup"], steps, "lrrrrrrrr"))
    for m in doc["measured"]:
        first = m.get("first_run") or {}
        if first.get("records"):
            text.append(
                f"first run ({m['history_days']} days): {first['records']:,} records pulled in "
                f"{first['wall_s']:.1f} s ({first['records_per_s']:,}/s), peak "
                f"{first['peak_rss_mib']:,.0f} MiB = {first['kb_per_record']:.2f} KB a record"
            )
    text += ["", f"targets: {json.dumps(doc['targets'])}"]
    return "\n".join(text)


def _days(text: str) -> list[int]:
    days = sorted({int(x) for x in text.split(",") if x.strip()})
    if not days or days[0] < 1:
        raise argparse.ArgumentTypeError("--days takes positive whole numbers, e.g. 7,90,365")
    return days


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    p.add_argument("--days", type=_days, default=None, help="histories [7,90,365; --quick: 2]")
    p.add_argument("--contacts-per-day", type=int, default=1000, help="UJET contact rows per day")
    p.add_argument(
        "--callbacks-per-day",
        type=int,
        default=None,
        help="callback requests per weekday (default: contacts / 10)",
    )
    p.add_argument("--chunk-days", type=int, default=30, help="days served per untimed setup run")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per case (the median is kept)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: 50 contacts a day (and --days 2 unless given)",
    )
    p.add_argument("--work-dir", type=Path, default=HERE / "data" / "nightly")
    p.add_argument("--keep", action="store_true", help="keep each case's stores and logs")
    p.add_argument("--json", type=Path, default=HERE / "results" / "nightly.json")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--max-rss-mib", type=float, default=8192.0, help="kill a run above this")
    hidden = argparse.SUPPRESS
    p.add_argument("--worker", choices=["measure"], help=hidden)
    p.add_argument("--worker-out", help=hidden)
    p.add_argument("--root", type=Path, help=hidden)
    p.add_argument("--clock-at", help=hidden)
    p.add_argument("--label", help=hidden)
    p.add_argument("--command", help=hidden)
    args = p.parse_args(argv)
    if args.quick:
        args.contacts_per_day, args.chunk_days = 50, 30
    if args.days is None:
        args.days = [2] if args.quick else [7, 90, 365]
    if args.callbacks_per_day is None:
        args.callbacks_per_day = max(1, args.contacts_per_day // 10)
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return
    machine = machine_facts(("polars", "deltalake", "pyarrow", "numpy"))
    args.command = installed_command()  # checked once, before an hour of history is built
    cases = [_build(days, args) for days in args.days]
    _measure_cases(cases, args)
    if not args.keep:
        for case in cases:
            shutil.rmtree(case.root, ignore_errors=True)
    measured = [_result(case) for case in cases]
    machine["loadavg_1_5_15_at_end"] = loadavg()
    hidden = ("worker", "root", "clock", "label", "command", "work_dir", "json")  # machine paths
    settings = {k: v for k, v in vars(args).items() if not k.startswith(hidden)}
    doc = {
        "benchmark": "nightly",
        "command": "wfm-intervals run --config wfm.toml",
        "machine": machine,
        "args": json.loads(json.dumps(settings, default=str)),
        "measured": measured,
    }
    doc["targets"] = _targets(measured)
    print()
    print(render(doc))
    write_json(args.json, doc)
    print(f"\nwritten: {args.json}")
    if any(not c["verified"] for m in measured for c in m["cases"].values()):
        sys.exit(
            "FAIL: a timed run exited non-zero or left a wrong store (see problems in the JSON)"
        )


if __name__ == "__main__":
    main()
