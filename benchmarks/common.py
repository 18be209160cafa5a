"""Shared helpers of the benchmarks: timing, isolated worker processes, machine facts, output.

Every engine of a benchmark runs in its own fresh child process (``python -m <benchmark> --worker
...``) so that its peak resident memory is its own. The worker reports its own high-water mark
(:func:`peak_rss_mib`); the parent also keeps the child's ``ru_maxrss`` from ``os.wait4`` (exact
per child, unlike ``RUSAGE_CHILDREN``, the maximum over all children so far), which on Linux
starts at the parent's own peak, so the parent should stay small (no engine work in it).

Example:
    >>> timings, value = best_of(lambda: sum(range(10)), repeat=2, warmup=0)
    >>> len(timings.wall_s), value
    (2, 45)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from engine import clock

__all__ = [
    "Timings",
    "WorkerRun",
    "best_of",
    "child_environment",
    "format_table",
    "installed_command",
    "loadavg",
    "machine_facts",
    "merge_runs",
    "peak_rss_mib",
    "run_worker",
    "write_json",
]

T = TypeVar("T")

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Timings:
    """Wall-clock and CPU (user + system, all threads) seconds of each timed call."""

    wall_s: list[float]
    cpu_s: list[float]


def best_of(fn: Callable[[], T], *, repeat: int, warmup: int = 1) -> tuple[Timings, T]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    The warm-up matters: first touch of fresh memory costs about 2 s/GiB on the benchmark
    machines (PERF-NOTES), which a cold first run would wrongly charge to the engine. CPU time is
    recorded too: on a shared machine it is less disturbed by other processes than wall time.

    Returns:
        The timings of the timed calls and the value of the last call.
    """
    for _ in range(warmup):
        fn()
    timings = Timings(wall_s=[], cpu_s=[])
    value: T | None = None
    for _ in range(max(1, repeat)):
        cpu, began = os.times(), time.perf_counter()
        value = fn()
        wall, after = time.perf_counter() - began, os.times()
        timings.wall_s.append(wall)
        timings.cpu_s.append(after.user + after.system - cpu.user - cpu.system)
    assert value is not None
    return timings, value


def _maxrss_mib(ru_maxrss: int) -> float:
    """``ru_maxrss`` is KiB on Linux and bytes on macOS."""
    return ru_maxrss / _MIB if sys.platform == "darwin" else ru_maxrss / 1024


def _proc_status_mib(pid: int | str, field: str) -> float | None:
    """A memory field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status`` in MiB, None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def peak_rss_mib() -> float:
    """This process's own peak resident memory so far (call it at the end of a worker).

    On Linux this is ``VmHWM``, the high-water mark of the process's own address space. Not
    ``ru_maxrss``: that survives ``fork`` + ``exec``, so a child starts at its *parent's* peak (a
    child that allocates nothing reports 500 MiB after a 500 MiB parent), which would charge the
    benchmark's parent to whichever engine is measured. Elsewhere ``ru_maxrss`` is the fallback.
    """
    hwm = _proc_status_mib("self", "VmHWM")
    return (
        hwm if hwm is not None else _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    )


@dataclass(frozen=True)
class WorkerRun:
    """What one worker process reported, and its peak resident memory.

    ``peak_rss_mib`` is what the worker measured of itself (:func:`peak_rss_mib`, reported as
    ``report["peak_rss_mib"]``) when it did, else the ``ru_maxrss`` of ``os.wait4``, which is kept
    as ``ru_maxrss_mib`` either way.
    """

    report: dict[str, Any]
    peak_rss_mib: float
    ru_maxrss_mib: float
    wall_s: float


@dataclass(frozen=True)
class Watched:
    """How a watched child ended: its wait status and resource usage, why it was killed (empty
    when it was not), and the highest ``VmHWM`` seen while polling (MiB)."""

    status: int
    usage: Any
    killed: str
    vmhwm_mib: float


def watch(
    proc: subprocess.Popen[Any],
    *,
    max_rss_mib: float | None = None,
    timeout_s: float | None = None,
    every_s: float = 0.05,
) -> Watched:
    """Wait for ``proc``, polling its memory every ``every_s``: killed above ``max_rss_mib``
    resident or after ``timeout_s`` (so that a runaway engine cannot push a shared machine into
    the OOM killer)."""
    began, killed, hwm = time.perf_counter(), "", 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return Watched(status, usage, killed, hwm)
        hwm = max(hwm, _proc_status_mib(proc.pid, "VmHWM") or 0.0)
        rss = _proc_status_mib(proc.pid, "VmRSS") if max_rss_mib is not None else None
        if rss is not None and max_rss_mib is not None and rss > max_rss_mib:
            killed = f"killed: resident memory {rss:,.0f} MiB > cap {max_rss_mib:,.0f} MiB"
        elif timeout_s is not None and time.perf_counter() - began > timeout_s:
            killed = f"killed: still running after {timeout_s:,.0f} s"
        if killed:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            return Watched(status, usage, killed, hwm)
        clock.sleep(every_s)


def run_worker(
    module: str,
    args: Sequence[str],
    *,
    timeout_s: float | None = None,
    max_rss_mib: float | None = None,
) -> WorkerRun:
    """Run ``python -m module --worker-out FILE *args`` in a fresh process.

    The worker writes its JSON report to ``FILE``; its stdout and stderr pass through. The parent
    kills it past ``timeout_s`` or when its resident memory exceeds ``max_rss_mib`` (checked
    every 50 ms), so that a runaway engine cannot push a shared machine into the OOM killer.

    Raises:
        RuntimeError: the worker failed, was killed, or wrote no report.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", module, "--worker-out", str(out), *args]
        began = time.perf_counter()
        proc = subprocess.Popen(cmd)
        watched = watch(proc, max_rss_mib=max_rss_mib, timeout_s=timeout_s)
        status, usage, killed = watched.status, watched.usage, watched.killed
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        if killed or proc.returncode != 0 or not out.exists():
            why = killed or f"exit {proc.returncode}"
            raise RuntimeError(f"{why} ({wall:.1f} s): {' '.join(cmd[3:])}")
        report = json.loads(out.read_text())
    ru_maxrss = _maxrss_mib(usage.ru_maxrss)
    peak = float(report.get("peak_rss_mib", ru_maxrss))
    return WorkerRun(report=report, peak_rss_mib=peak, ru_maxrss_mib=ru_maxrss, wall_s=wall)


def merge_runs(runs: Sequence[WorkerRun]) -> WorkerRun:
    """Several workers of one engine as one: timing lists concatenated, peaks and numbers maxed.

    Running each engine in rounds (A, B, A, B, ...) instead of back to back exposes every engine
    to the same background noise on a shared machine.
    """
    report: dict[str, Any] = {}
    for run in runs:
        for key, value in run.report.items():
            if isinstance(value, list):
                report[key] = [*report.get(key, []), *value]
            elif isinstance(value, int | float):
                report[key] = max(report.get(key, value), value)
            else:
                report[key] = value
    return WorkerRun(
        report=report,
        peak_rss_mib=max(r.peak_rss_mib for r in runs),
        ru_maxrss_mib=max(r.ru_maxrss_mib for r in runs),
        wall_s=sum(r.wall_s for r in runs),
    )


def _meminfo_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / _MIB, 1)
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def loadavg() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded (a busy machine is slower)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts(
    packages: Sequence[str] = ("polars", "duckdb", "pyarrow", "numpy"),
) -> dict[str, Any]:
    """Where and with what a benchmark ran (load average included: a busy machine is slower)."""
    return {
        "recorded_at": clock.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "mem_total_gib": _meminfo_gib(),
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in packages},
        "loadavg_1_5_15": loadavg(),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str) -> str:
    """A plain aligned text table; ``align`` has one ``l`` or ``r`` per column.

    Example:
        >>> print(format_table(["engine", "s"], [["duckdb", "1.25"], ["polars", "0.5"]], "lr"))
        engine     s
        ------  ----
        duckdb  1.25
        polars   0.5
    """
    cells = [[str(h) for h in headers], *([str(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = (
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        )
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


#: The repository's root: paths under it are recorded relative to it.
REPO = Path(__file__).resolve().parents[1]


def portable(text: str) -> str:
    """``text`` with this machine's paths made portable: the repository's root dropped (paths
    relative to it) and the temporary folder written ``<tmp>``.

    Example:
        >>> portable(f"{REPO}/benchmarks/data/x.parquet")
        'benchmarks/data/x.parquet'
    """
    text = text.replace(f"{REPO}{os.sep}", "").replace(str(REPO), ".")
    return text.replace(tempfile.gettempdir(), "<tmp>")


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as indented JSON, creating the folder; paths of this machine are written
    relative to the repository (:func:`portable`), so results can be committed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(portable(json.dumps(doc, indent=2)) + "\n")


def add_worker_arguments(
    p: argparse.ArgumentParser,
    *,
    workers: Sequence[str],
    check_peer: int,
    max_rss_mib: float,
) -> None:
    """The options every engine-against-DuckDB benchmark shares, and its hidden worker flags."""
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker")
    p.add_argument(
        "--check-peer",
        type=int,
        default=check_peer,
        metavar="FRAMES",
        help="first check the SQL against the engine on this many adversarial frames (0: skip)",
    )
    p.add_argument(
        "--max-rss-mib",
        type=float,
        default=max_rss_mib,
        help="kill a worker whose resident memory exceeds this (protects a shared machine)",
    )
    p.add_argument(
        "--compression",
        choices=["zstd", "lz4", "snappy", "uncompressed"],
        default="lz4",
        help="Parquet codec of the data file (lz4: the store's, engine.output.files)",
    )
    hidden = argparse.SUPPRESS
    p.add_argument("--worker", choices=["generate", "check-peer", "verify", *workers], help=hidden)
    p.add_argument("--worker-out", help=hidden)
    p.add_argument("--data-path", type=Path, help=hidden)
    p.add_argument("--size", type=int, help=hidden)
    p.add_argument("--result", type=Path, help=hidden)


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with each entry of ``PYTHONPATH`` made absolute, so that
    a command started in another folder imports what this process imports: from a checkout,
    ``PYTHONPATH=. python -m benchmarks.nightly`` starts each run in its case's folder, where
    ``.`` is that folder, and the command would import whatever engine the environment has
    installed instead of the checkout's.

    Example:
        >>> child_environment({"PYTHONPATH": "."})["PYTHONPATH"] == str(Path.cwd())
        True
    """
    env = dict(os.environ if env is None else env)
    if env.get("PYTHONPATH"):
        entries = env["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) if e else e for e in entries)
    return env


def _interpreter(script: Path) -> list[str]:
    """The Python that runs the console script ``script`` (its ``#!`` line, which may be
    ``/usr/bin/env python3``; else this one)."""
    with script.open("rb") as f:
        first = f.readline().decode(errors="replace").strip()
    shebang = first.startswith("#!") and "python" in first
    return shlex.split(first[2:]) if shebang else [sys.executable]


def installed_command(name: str = "wfm-intervals") -> str:
    """The installed command ``name`` next to this interpreter (else on ``PATH``), checked to
    import the very engine this benchmark imports (under :func:`child_environment`, from another
    folder): a benchmark that verified one engine's results and timed another's would report
    figures of neither. Exits with ``FAIL`` when there is no such command or it runs another
    engine."""
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.is_file() else shutil.which(name)
    if found is None:
        sys.exit(f"FAIL: no {name} command next to this Python or on PATH")
    probe = "import engine; print(engine.__file__)"
    with tempfile.TemporaryDirectory(prefix="bench-") as elsewhere:
        done = subprocess.run(
            [*_interpreter(Path(found)), "-c", probe],
            cwd=elsewhere,
            env=child_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
    theirs = Path(done.stdout.strip()).resolve() if done.returncode == 0 else None
    spec = importlib.util.find_spec("engine")  # found, not run: this process stays small
    ours = Path(spec.origin if spec and spec.origin else "?").resolve()
    if theirs != ours:
        said = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        what = theirs or f"nowhere ({said[-1]})"
        sys.exit(f"FAIL: {found} imports the engine from {what}, this benchmark from {ours}")
    return found


def check_peer(module: str, args: argparse.Namespace) -> None:
    """Run the ``check-peer`` worker (``--check-peer`` frames); exit with FAIL if it disagrees."""
    if not args.check_peer:
        return
    flags = ["--worker", "check-peer", "--size", str(args.check_peer), "--seed", str(args.seed)]
    try:
        run_worker(module, flags, timeout_s=args.timeout)
    except RuntimeError:
        sys.exit("FAIL: the DuckDB peer disagrees with the engine (see above)")
    print(f"peer check: DuckDB == engine on {args.check_peer} adversarial frames")
