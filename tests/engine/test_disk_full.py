"""A write the disk refuses (full, over quota, a file too large) is one line naming the file and
exit 2, never an "internal error", and the next run loses nothing.

The refusal is real: the child process runs under ``RLIMIT_FSIZE``, so the kernel fails every
write past the limit with ``EFBIG`` (Python ignores the ``SIGXFSZ`` that comes with it), the
same way it fails them with ``ENOSPC`` on a full disk: through ``os.write`` and through Polars'
and deltalake's Rust writers, none of which names the file.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from engine.clock import CLOCK_AT_VARIABLE, StartedClock, use_clock
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.demo.stack import Stack
from engine.errors import naming
from tests.calendar import TEST_NOW, run_process
from tests.engine.run_support import SECRETS, clean_environment, emulators, invoke, table
from tests.engine.run_support import lean_config as write_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics")

LIMIT = 1_000  # bytes: below every landing page of the tests' day
TABLES = ("contacts", "callback_attempts", "callvolume", "callback_intervals", "retry_outcomes")


def _limited(limit: int = LIMIT) -> None:  # runs in the child, before it starts
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    clean_environment(monkeypatch, tmp_path)
    with use_clock(StartedClock(TEST_NOW)), emulators() as s:
        yield s


def _refused(config: Path, *command: str) -> str:
    """``command`` run against ``config`` in a child whose writes past :data:`LIMIT` fail; its
    stderr, after checking it is one line and exit 2."""
    env = os.environ | SECRETS | {CLOCK_AT_VARIABLE: TEST_NOW.isoformat()}
    cli = [sys.executable, "-m", "engine.cli.main", *command, "--config", str(config)]
    child = run_process(cli, env=env, cwd=config.parent, timeout=180, preexec_fn=_limited)
    err = child.stderr.decode()
    assert child.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err  # no traceback, no "internal error"
    return err.strip()


@pytest.mark.parametrize("command", [("run", "--quiet"), ("sync", "ujet")])
def test_a_refused_write_names_its_file_and_the_next_run_loses_nothing(
    tmp_path: Path, stack: Stack, command: tuple[str, ...]
) -> None:
    refused = write_config(tmp_path / "refused", stack)
    line = _refused(refused, *command)
    landing = tmp_path / "refused" / "landing" / "raw" / "source=ujet" / "stream=calls"
    prefix = f"wfm-intervals: error: File too large: {landing}{os.sep}"
    assert line.startswith(prefix), line  # the landing page's own path, not the output folder
    assert line.endswith(".parquet"), line
    with use_clock(StartedClock(TEST_NOW)):
        again = invoke(["run", "--quiet"], refused)
        assert again.exit_code == 0, again.output
        clean = write_config(tmp_path / "clean", stack)
        assert invoke(["run", "--quiet"], clean).exit_code == 0
    for name in TABLES:
        got, want = (
            table(tmp_path / "refused" / "out", name),
            table(tmp_path / "clean" / "out", name),
        )
        assert want.height > 0, name
        assert_frame_equal(got, want, check_row_order=False)


_WRITERS = """
import io, json, sys
from pathlib import Path
import polars as pl
from engine.durable import atomic_write_bytes
from engine.errors import naming
from engine.output.datafiles import write_partitions, days_of

root, frame = Path(sys.argv[1]), pl.DataFrame({"x": range(100_000)})
def python_write(p):  # os.write: an OSError with no file name
    atomic_write_bytes(p, b"x" * 100_000)
def parquet_write(p):  # Polars: a ComputeError around "(os error 27)"
    with naming(p):
        frame.write_parquet(p)
def csv_write(p):  # Polars: an OSError with no errno, "(os error 27)" in its text
    with naming(p):
        frame.write_csv(p)
def store_write(p):  # the store's data files
    rows = frame.with_columns(at=pl.datetime(2026, 11, 8, time_zone="UTC"))
    write_partitions(p, rows.with_columns(days_of("at")).drop("at"), "t1")
def not_io(p):  # any other error passes unchanged
    with naming(p):
        raise ValueError("not an I/O error")
def lost_errno(p):  # Polars' Parquet footer write refused: its error has no errno left
    with naming(p):
        try:
            p.write_bytes(b"x" * 100_000)  # the file stops at the limit
        except OSError:
            pass
        raise pl.exceptions.ComputeError("parquet: File out of specification: Invalid thrift")
found = {}
for write in (python_write, parquet_write, csv_write, store_write, not_io, lost_errno):
    path = root / write.__name__
    try:
        write(path)
        found[write.__name__] = None
    except Exception as exc:
        found[write.__name__] = [type(exc).__name__, getattr(exc, "errno", None),
                                 getattr(exc, "filename", None)]
print(json.dumps(found))
"""


def test_each_writer_names_the_file_the_disk_refused(tmp_path: Path) -> None:
    child = run_process(
        [sys.executable, "-c", _WRITERS, str(tmp_path)], timeout=120, preexec_fn=_limited
    )
    assert child.returncode == 0, child.stderr.decode()
    found = json.loads(child.stdout)
    for name in ("python_write", "parquet_write", "csv_write", "lost_errno"):
        assert found[name] == ["OSError", 27, str(tmp_path / name)], name
    kind, errno, filename = found["store_write"]
    assert (kind, errno) == ("OSError", 27)
    store = tmp_path / "store_write"
    assert Path(filename).parent == store / "date=2026-11-08", filename
    assert found["not_io"] == ["ValueError", None, None]


@pytest.mark.parametrize("command", ["build", "callbacks"])
def test_a_build_the_disk_refuses_names_the_store_not_its_input(
    tmp_path: Path, command: str
) -> None:
    """The streamed builds read their input as they write the store: a refused write names the
    store, never the input file (which a reader of "--contacts c.parquet: ..." would think
    damaged)."""
    given = tmp_path / "input.parquet"
    if command == "build":
        generate_contacts(days=1).write_parquet(given)
        args = ["build", "--contacts", str(given)]
    else:
        generate_attempts(days=1).write_parquet(given)
        args = ["callbacks", "--attempts", str(given)]
    cli = [sys.executable, "-m", "engine.cli.main", *args, "--out", str(tmp_path / "out")]
    child = run_process(cli, cwd=tmp_path, timeout=180, preexec_fn=_limited)
    err = child.stderr.decode().strip()
    assert child.returncode == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"wfm-intervals: error: File too large: {tmp_path / 'out' / 'store'}"), (
        err
    )


def test_a_refused_temporary_file_is_named_as_the_file_asked_for(tmp_path: Path) -> None:
    """A read-only output folder: the error named the hidden temporary sibling the durable
    write goes through (``.r.html.tmp-bb48…``), not the ``--out`` file the user gave."""
    asked = tmp_path / "r.html"
    refused = OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".r.html.tmp-0123"))
    with pytest.raises(OSError, match="Read-only") as info, naming(asked):
        raise refused  # as a read-only mount refuses the temporary file's creation
    assert (info.value.errno, info.value.filename) == (errno.EROFS, str(asked))


def test_a_temporary_file_of_another_is_named_as_it_is(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="Read-only") as info, naming(tmp_path / "r.html"):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".other.tmp-1"))
    assert info.value.filename == str(tmp_path / ".other.tmp-1")
