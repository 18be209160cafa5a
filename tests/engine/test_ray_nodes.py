"""``--engine ray`` on a cluster of two Ray nodes (issue 14): ``build``, ``callbacks`` and ``run``
join it by its address, their tasks run on both nodes, and the tables equal the local engine's;
a cluster that goes away mid-job ends the command with exit 2 and one line.

Both nodes run on this machine on loopback (``ray.cluster_utils.Cluster``: a head and a worker
node of one CPU each, their own raylets and object stores, in a temporary directory of their
own), started once for the module. The commands are given the head's address, as on a real
cluster, so each joins it from a helper process (``engine.distributed.helper``); this process
never joins it. Which node ran a task is recorded by the workers themselves: a
``sitecustomize`` module on the ``PYTHONPATH`` the driver ships to them wraps the partition
read task (``engine.distributed.cluster._read``) to leave a file named by its node. Ray turns a
loopback address into the machine's first address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
is off (its loopback setting), which the tests set so that nothing leaves loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from engine.cli.main import cli
from engine.clock import sleep
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.demo.stack import Stack
from engine.errors import ClusterError
from engine.pipeline.tables import TABLES
from tests.calendar import run_process, wait_for_exit
from tests.engine.run_support import clean_environment as _clean
from tests.engine.run_support import invoke, table, write_config

ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from engine.distributed import helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 10, 31, tzinfo=UTC)

#: The workers' spy: each partition read leaves ``read-<node id>-<n>`` in its folder; while a
#: file ``hold`` is there, the read waits (so that a test can stop the cluster mid-job).
SPY = """
import os, threading, time, uuid
try:
    import faketime_sleep  # a date run's (tests/faketime): this file shadows its sitecustomize
except ImportError:
    pass
_pause = threading.Event()  # never set: a wait of its timeout
try:
    from engine.distributed import cluster as _cluster
except ImportError:
    _cluster = None
if _cluster is not None:
    _real = _cluster._read

    def _read(batch, *, read):
        import ray
        node = ray.get_runtime_context().get_node_id()
        open(os.path.join(HERE, f"read-{node}-{uuid.uuid4().hex}"), "w").close()
        while os.path.exists(os.path.join(HERE, "hold")):
            _pause.wait(0.05)
        return _real(batch, read=read)

    _cluster._read = _read
"""


def _free_port() -> int:
    """A free loopback port (the head's own services default to fixed ones)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Nodes:
    """The running two-node cluster: its address and node ids, the spy's folder."""

    def __init__(self, cluster: Any, spy: Path) -> None:
        self.cluster, self.spy = cluster, spy
        self.address: str = cluster.address
        self.ids = {cluster.head_node.node_id, *(n.node_id for n in cluster.worker_nodes)}

    def readers(self) -> list[str]:
        """The node of each partition read since the last call."""
        found = sorted(self.spy.glob("read-*"))
        for f in found:
            f.unlink()
        return [f.name.split("-")[1] for f in found]


def _start(*, head_cpus: int) -> tuple[Any, Any, Path]:
    """A cluster on loopback: a head of ``head_cpus`` CPUs and one worker node of one CPU, every
    port of theirs free (another cluster may hold Ray's defaults); the cluster, its worker node
    and its temporary folder (``spy/`` in it: the workers' spy)."""
    from ray.cluster_utils import Cluster

    temp = Path(tempfile.mkdtemp(prefix="ray"))  # short: Ray's socket paths have a limit
    spy = temp / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(f"HERE = {str(spy)!r}\n{SPY}")
    head = {
        "node_ip_address": "127.0.0.1",
        "num_cpus": head_cpus,
        "include_dashboard": False,
        "temp_dir": str(temp / "ray"),
        "dashboard_port": _free_port(),
        "dashboard_agent_listen_port": _free_port(),
    }
    # Ray records the head's address in its default folder (``/tmp/ray``, which a fresh machine
    # lacks: FileNotFoundError), where any ``ray.init()`` without an address would find and join
    # it: in the cluster's own folder instead.
    kept = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(temp)
    try:
        cluster = Cluster(initialize_head=True, head_node_args=head)
        worker = cluster.add_node(
            node_ip_address="127.0.0.1", num_cpus=1, dashboard_agent_listen_port=_free_port()
        )
    finally:
        if kept is None:
            del os.environ["RAY_TMPDIR"]
        else:
            os.environ["RAY_TMPDIR"] = kept
    cluster.wait_for_nodes()
    return cluster, worker, temp


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    assert not ray.is_initialized()  # no test of this process joins a cluster itself
    cluster, _, temp = _start(head_cpus=1)
    try:
        yield Nodes(cluster, temp / "spy")
    finally:
        helper.close()  # the commands' helper processes (their drivers) leave first
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def joined(nodes: Nodes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Nodes:
    """The environment of a command on the cluster: the spy on the ``PYTHONPATH`` (the helper
    process and, through it, the workers import it), loopback kept, working in ``tmp_path``."""
    _clean(monkeypatch, tmp_path)
    path = os.pathsep.join([str(nodes.spy), str(ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path.rstrip(os.pathsep))
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    nodes.readers()
    return nodes


@contextmanager
def _spread(nodes: Nodes) -> Iterator[None]:
    """A job on ``nodes`` whose reads wait (the spy's ``hold``) until each node has begun one,
    so that both nodes read a partition whatever the machine's load. Without it, a short job
    can run every read on the head, one after another, before the worker node's worker is up
    (seen once in a whole-suite run). Given up after a deadline: then the check says which
    nodes read."""
    hold, done = nodes.spy / "hold", threading.Event()

    def release() -> None:
        deadline = time.monotonic() + 120  # a loaded machine starts workers slowly
        while not done.is_set() and time.monotonic() < deadline:
            if {f.name.split("-")[1] for f in nodes.spy.glob("read-*")} >= nodes.ids:
                break
            done.wait(0.05)
        hold.unlink(missing_ok=True)

    hold.touch()
    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        yield
    finally:
        done.set()
        releaser.join()
        hold.unlink(missing_ok=True)


def _on_the_cluster(nodes: Nodes, *, both: bool = True) -> None:
    """The partitions were read on the cluster's nodes (``both``: on each of them; Ray
    spreads a job's tasks over the nodes, so a job of several partitions uses both)."""
    readers = nodes.readers()
    assert readers
    assert set(readers) == nodes.ids if both else set(readers) <= nodes.ids


def test_build_and_callbacks_by_address_run_on_both_nodes(
    joined: Nodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths on the command line (``--out ray``): the workers, whose working folder is
    not this one, are handed absolute paths; so is the helper process, whose working folder
    stays the one it started in (``callbacks`` runs from another folder than ``build``). With
    ``--format parquet`` the tasks write the tables' files themselves."""
    generate_contacts(seed=5, start=START, days=4, scale=0.05).write_parquet("c.parquet")
    generate_attempts(seed=4, start=START, days=4, scale=0.05).write_parquet("a.parquet")
    ray_ = ["--engine", "ray", "--ray-address", joined.address]
    for command, given, tables, where in (
        ("build", ["--contacts", "c.parquet", "--format", "parquet"], ["callvolume", "contacts"],
         tmp_path),
        ("callbacks", ["--attempts", "../a.parquet", "--tz", "America/New_York"],
         ["callback_attempts", "callback_intervals", "retry_outcomes"], tmp_path / "elsewhere"),
    ):  # fmt: skip
        where.mkdir(exist_ok=True)
        monkeypatch.chdir(where)
        out = "" if where == tmp_path else "../"
        local = CliRunner().invoke(cli, [command, *given, "--out", f"{out}local"])
        with _spread(joined):
            remote = CliRunner().invoke(cli, [command, *given, "--out", f"{out}ray", *ray_])
        assert local.exit_code == remote.exit_code == 0, remote.output
        _on_the_cluster(joined)
        for name in tables:
            read = [pl.read_delta(str(tmp_path / d / "store" / name)) for d in ("local", "ray")]
            assert read[0].height > 0
            assert_frame_equal(read[0], read[1], check_row_order=False)
    exports = ["callback_metrics.json", "callback_intervals.csv", "retry_outcomes.csv"]
    for export in exports:
        texts = [(tmp_path / d / "exports" / export).read_text() for d in ("local", "ray")]
        assert texts[0] == texts[1]
    # the store alone: the tasks on both nodes write the tables, the command commits them
    given = ["callbacks", "--attempts", "../a.parquet", "--format", "parquet"]
    local = CliRunner().invoke(cli, [*given, "--out", "../local-store"])
    with _spread(joined):
        remote = CliRunner().invoke(cli, [*given, "--out", "../ray-store", *ray_])
    assert local.exit_code == remote.exit_code == 0, remote.output
    _on_the_cluster(joined)
    for name in ("callback_intervals", "retry_outcomes"):
        read = [
            pl.read_delta(str(tmp_path / d / "store" / name)) for d in ("local-store", "ray-store")
        ]
        assert read[0].height > 0
        assert_frame_equal(read[0], read[1], check_row_order=False)


@pytest.mark.usefixtures("now")
def test_run_joins_the_address_of_its_configuration(
    joined: Nodes, tmp_path: Path, stack: Stack
) -> None:
    """``[engine] kind = "ray"`` and ``address = "127.0.0.1:PORT"``: the run's tables, built on
    the cluster, equal a local run's."""
    lean: dict[str, dict[str, Any]] = {
        "sources__dixa": {"enabled": False}, "sources__kore": {"enabled": False},
        "run": {"report": False, "lookback_minutes": 60},
    }  # fmt: skip
    configs = []
    for root, engine in (("local", {}), ("ray", {"kind": "ray", "address": joined.address})):
        (tmp_path / root).mkdir()
        configs.append(write_config(tmp_path / root, stack, **lean, engine=engine))
    for config in configs:
        result = invoke(["run", "--quiet"], config)
        assert result.exit_code == 0, result.output
    _on_the_cluster(joined, both=False)  # a run's jobs read a partition or two each
    outs = [tmp_path / d / "out" for d in ("local", "ray")]
    for name in (*TABLES, "staffing"):
        got, want = table(outs[1], name), table(outs[0], name)
        assert want.height > 0, name
        assert_frame_equal(got, want, check_row_order=False)
    doc = [json.loads((o / "exports" / "callback_metrics.json").read_text()) for o in outs]
    assert doc[0] == doc[1]


def test_a_cluster_that_goes_away_mid_job_is_exit_2_and_one_line(
    joined: Nodes, tmp_path: Path
) -> None:
    """The command (its own process) waits in a read task; the cluster is stopped; the command
    ends with exit 2 and one line naming the address, no traceback. Last in this module: the
    cluster does not come back."""
    generate_contacts(seed=5, start=START, days=2, scale=0.02).write_parquet("c.parquet")
    (joined.spy / "hold").touch()
    args = ["build", "--contacts", "c.parquet", "--out", "ray", "--format", "parquet"]
    command = [sys.executable, "-m", "engine.cli.main", *args]
    command += ["--engine", "ray", "--ray-address", joined.address]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        try:
            deadline = time.monotonic() + 300  # a loaded machine starts workers slowly
            while not list(joined.spy.glob("read-*")) and run.poll() is None:
                assert time.monotonic() < deadline, "no read task started"
                sleep(0.1)
            joined.cluster.shutdown()
            out, err = run.communicate(timeout=300)
        finally:
            (joined.spy / "hold").unlink(missing_ok=True)
            if run.poll() is None:
                run.kill()
    assert run.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"wfm-intervals: error: Ray cluster {joined.address}: lost mid-job")
    assert not (tmp_path / "ray" / "store" / "callvolume").exists()  # no table was written


# --- the helper process, without a cluster ----------------------------------------------------


def _echo(value: int) -> int:
    return value


def _fails() -> None:
    class WrappedError(Exception):  # made on the fly, as Ray's task errors are: it does not pickle
        pass

    raise WrappedError("the task's own error") from KeyError("read failed")


def _dies() -> None:
    os.write(2, b"[2026-11-01 00:00:00,000 W 1 2] connection.cc:216: The store is gone.\n")
    os.write(2, b"[2026-11-01 00:00:00,001 E 1 2] core_worker.cc:9: :info_message: Retrying.\n")
    os._exit(1)


def test_the_helper_gives_one_line_for_a_failed_job_and_a_lost_driver() -> None:
    """A job's error that does not pickle is one line (its root cause); a helper process that
    ends mid-job is one line with the last native line it logged, and by then the threads of its
    lost pool have ended (one still closing its pipes races the interpreter's exit, which then
    prints a traceback after the command's line); the next job starts a new helper process."""
    where = "127.0.0.1:9"
    before = set(threading.enumerate())
    try:
        assert helper.call(where, _echo, 7) == 7
        pools = set(threading.enumerate()) - before  # the threads of this helper's pool
        assert pools
        with pytest.raises(ClusterError) as failed:
            helper.call(where, _fails)
        assert str(failed.value) == f"Ray cluster {where}: the job failed (KeyError: 'read failed')"
        with pytest.raises(ClusterError) as lost:
            helper.call(where, _dies)
        assert str(lost.value) == (
            f"Ray cluster {where}: lost mid-job (its driver process ended: The store is gone.)"
        )
        assert [thread.name for thread in pools if thread.is_alive()] == []
        assert helper.call(where, _echo, 8) == 8
    finally:
        helper.close()


def test_no_address_starts_a_cluster_of_its_own_whatever_ray_address_says(tmp_path: Path) -> None:
    """Without an address the engine starts its own local cluster: Ray's default would join the
    cluster ``RAY_ADDRESS`` (or another job's ``ray start`` here) names. A dead address there
    must not matter."""
    script = (
        "import ray\n"
        "from engine.distributed.cluster import connect\n"
        "connect(None)\n"
        "print('cpus', int(ray.cluster_resources()['CPU']))\n"
        "ray.shutdown()\n"
    )
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    done = run_process(
        [sys.executable, "-c", script], timeout=300, cwd=tmp_path, env=env, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].startswith("cpus ")


def test_a_job_left_with_no_cpu_is_given_up_exit_2_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster of its own whose head has no CPU: its one worker node is removed while a read
    task waits, so the job's tasks could wait for ever. With ``WFM_RAY_STALL_SECONDS=4`` the
    command gives up: exit 2, one line saying so, no table written."""
    cluster, worker, temp = _start(head_cpus=0)
    spy = temp / "spy"
    try:
        _clean(monkeypatch, tmp_path)
        path = os.pathsep.join([str(spy), str(ROOT), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), "WFM_RAY_STALL_SECONDS": "4"}
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback: the node's own IP, as `joined`
        generate_contacts(seed=5, start=START, days=2, scale=0.02).write_parquet("c.parquet")
        (spy / "hold").touch()
        command = [sys.executable, "-m", "engine.cli.main", "build", "--contacts", "c.parquet"]
        command += ["--out", "ray", "--format", "parquet"]
        address = cluster.address
        command += ["--engine", "ray", "--ray-address", address]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as run:
            try:
                deadline = time.monotonic() + 300  # a loaded machine starts workers slowly
                while not list(spy.glob("read-*")) and run.poll() is None:
                    assert time.monotonic() < deadline, "no read task started"
                    sleep(0.1)
                cluster.remove_node(worker)
                out, err = run.communicate(timeout=300)
            finally:
                (spy / "hold").unlink(missing_ok=True)
                if run.poll() is None:
                    run.kill()
    finally:
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    assert run.returncode == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"wfm-intervals: error: Ray cluster {address}: no node with a CPU for 4 s"
    )
    assert not (tmp_path / "ray" / "store" / "callvolume").exists()  # no table was written


def test_a_stall_limit_that_is_not_seconds_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        for bad in ("soon", "-1", "nan"):
            monkeypatch.setenv(helper.STALL_VARIABLE, bad)
            with pytest.raises(ClusterError, match=f"{helper.STALL_VARIABLE}="):
                helper.call("127.0.0.1:1", _echo, 1)
        monkeypatch.setenv(helper.STALL_VARIABLE, "0")  # never given up: no watch; the job runs
        assert helper.call("127.0.0.1:1", _echo, 7) == 7
    finally:
        helper.close()


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


def test_a_helper_whose_command_is_killed_ends_by_itself(tmp_path: Path) -> None:
    """The command is killed outright (no ``atexit`` runs): its helper process does not stay
    behind holding its cluster's job, it ends by itself."""
    script = (
        "import os, sys, threading\n"
        "from engine.distributed import helper\n"
        "print(helper.call('127.0.0.1:9', os.getpid), flush=True)\n"  # the helper's pid
        "threading.Event().wait(600)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env
    ) as command:
        assert command.stdout is not None
        pid = int(command.stdout.readline())
        assert pid != command.pid
        assert not _gone(pid)
        command.kill()
        wait_for_exit(command, 30)
    deadline = time.monotonic() + 60
    while not _gone(pid):
        assert time.monotonic() < deadline, f"helper {pid} outlived its command"
        sleep(0.1)


def test_sigterm_after_a_cluster_of_its_own_started_is_exit_130_and_one_line(
    tmp_path: Path,
) -> None:
    """Ray's driver sets a SIGTERM handler of its own when it starts (exit 15; here the process
    aborted in Ray's shutdown, exit 134, no line). The command's is put back: a service
    manager's stop once the tasks have written is the interruption it is everywhere else."""
    contacts = generate_contacts(seed=5, start=START, days=1, scale=0.1)
    contacts.write_parquet(tmp_path / "c.parquet")
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env |= {"WFM_KILL_AT": "delta.files_written@2", "WFM_KILL_SIGNAL": "SIGTERM"}  # the table's
    args = ["build", "--contacts", "c.parquet", "--out", "out", "--engine", "ray"]
    done = run_process(
        [sys.executable, "-m", "engine.cli.main", *args, "--format", "parquet"],
        timeout=300, cwd=tmp_path, env=env, text=True,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == "wfm-intervals: interrupted by SIGTERM"
