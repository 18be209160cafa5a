"""Bad input gets one line naming the file or setting and its exit code, never a traceback; an
interrupted command exits 130 (issue 12, the cases done so far)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result

from engine.cli.main import cli
from engine.clock import sleep
from engine.demo.callbacks import generate_attempts
from engine.settings import MAX_DURATION_LIMIT_HOURS, MAX_THRESHOLD_MS, BuildSettings
from tests.calendar import wait_for_exit

ROW = "u,c1,1,voice,q,2026-10-01T09:00:00Z,abandoned\n"
HEADER = "source,contact_id,segment_no,channel,queue_id,offered_at,outcome\n"


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wfm-intervals: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", ["empty.csv", "empty.ndjson", "empty.parquet"])
def test_an_empty_contacts_file_is_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    result = invoke(["build", "--contacts", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{path}: the file is empty" in one_line(result)


def test_a_header_only_file_builds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(HEADER)
    out = tmp_path / "o"
    result = invoke(["build", "--contacts", str(path), "--out", str(out), "--start",
                     "2026-10-01T00:00:00Z", "--end", "2026-10-01T01:00:00Z"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pl.read_delta(str(out / "store" / "callvolume")).height == 0


def test_a_threshold_beyond_a_week_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + ROW)
    huge = "voice=99999999999999999999999"
    result = invoke(
        ["build", "--contacts", str(path), "--out", str(tmp_path), "--sl-threshold", huge]
    )
    assert result.exit_code == 2
    assert f"at most {MAX_THRESHOLD_MS} ms" in one_line(result)
    with pytest.raises(ValueError, match="a week"):
        BuildSettings(sl_default_ms={"voice": MAX_THRESHOLD_MS + 1})


@pytest.mark.parametrize("command", ["build", "callbacks"])
def test_a_window_of_two_centuries_is_refused_before_any_allocation(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + ROW)
    option = "--contacts" if command == "build" else "--attempts"
    window = ["--start", "1900-01-01T00:00:00Z", "--end", "2100-01-01T00:00:00Z"]
    result = invoke([command, option, str(path), "--out", str(tmp_path / "o"), *window])
    assert result.exit_code == 2
    line = one_line(result)
    assert "73,049 days is longer than max_window_days (400)" in line
    assert not (tmp_path / "o").exists()


def test_a_settings_variable_that_is_not_json_names_itself(tmp_path: Path) -> None:
    result = invoke(["run"], {"WFM_BUILD": "{bad"})
    assert result.exit_code == 2
    assert "WFM_BUILD is not valid JSON" in one_line(result)


def test_a_declined_reset_changes_nothing_and_exits_0(tmp_path: Path) -> None:
    """Declining does what was asked: nothing (once exit 130, which says 'interrupted')."""
    env = {"WFM_STORE__STATE": str(tmp_path / "state")}
    result = CliRunner().invoke(cli, ["state", "reset"], env=env, input="n\n")
    assert result.exit_code == 0
    assert "cancelled: nothing was reset" in result.stdout


#: A command that waits a minute: ``ready`` said inside its ``try`` (a signal can only come
#: once in the block), ``cleaned up`` by its ``finally``.
_WAITING = (
    "import sys, threading\n"
    "sys.argv[1:] = ['wait']\n"
    "import click\n"
    "from engine.cli import main\n"
    "@click.command('wait')\n"
    "def wait():\n"
    "    try:\n"
    "        print('ready', flush=True)\n"
    "        threading.Event().wait(60)\n"
    "    finally:\n"
    "        print('cleaned up', flush=True)\n"
    "main.COMMANDS['wait'] = main.Command('__main__', 'wait', 'Wait.')\n"
    "main.main()\n"
)


def _console_script(code: str) -> str:
    """A file named as the console script (``wfm-intervals``) that runs ``code``."""
    path = Path(tempfile.mkdtemp(prefix="wfm-script-")) / "wfm-intervals"
    path.write_text(code)
    return str(path)


def _waiting(*, ignore: signal.Signals | None = None) -> subprocess.Popen[str]:
    """The waiting command in a child process, once it is ready (``ignore``: a signal its
    parent started it with ignored, as ``nohup`` ignores SIGHUP)."""

    def ignored() -> None:
        if ignore is not None:
            signal.signal(ignore, signal.SIG_IGN)

    child = subprocess.Popen(
        [sys.executable, _console_script(_WAITING)],  # its early handlers too
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignored,  # noqa: PLW1509 - sets one signal disposition, nothing else
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    child = _waiting()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and child.poll() is None:
        os.kill(child.pid, signal.SIGINT)
        if wait_for_exit_quietly(child):
            break
        sleep(0.05)
    assert wait_for_exit(child, 30) == 130
    _, err = child.communicate()
    assert err.strip() == "wfm-intervals: interrupted"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_exits_130_with_one_line_and_runs_the_clean_up(stop: signal.Signals) -> None:
    """A service manager's stop (SIGTERM) or a hang-up (SIGHUP: the SSH session the command
    was started from dropped) is an interruption: the command's ``finally`` runs (here it
    prints), one line names the signal, exit 130 (not death by signal, no line)."""
    child = _waiting()
    child.send_signal(stop)
    assert wait_for_exit(child, 30) == 130
    out, err = child.communicate()
    assert out.strip() == "cleaned up"
    assert err.strip() == f"wfm-intervals: interrupted by {stop.name}"


#: A command during which a signal arrives while Polars' Rust code is calling back into Python
#: (it builds a frame's dtypes through the Python classes): the handler's exception is raised
#: there, and Polars turns it into a panic. Seen as a sync stopped by SIGTERM at that moment.
_UNDER_RUST = (
    "import os, signal, sys\n"
    "import click\n"
    "import polars as pl\n"
    "from polars.datatypes import classes\n"
    "from engine.cli import main\n"
    "real, armed = classes.Datetime.__init__, []\n"
    "def init(self, *args, **kwargs):\n"
    "    if armed:\n"
    "        armed.clear()\n"
    "        os.kill(os.getpid(), signal.SIG{name})\n"
    "        sum(range(1000))  # the handler runs here, under Rust\n"
    "    real(self, *args, **kwargs)\n"
    "@click.command('frame')\n"
    "def frame():\n"
    "    try:\n"
    "        f = pl.DataFrame({{'t': [0]}}, schema={{'t': pl.Datetime('us', 'UTC')}})\n"
    "        classes.Datetime.__init__ = init\n"
    "        armed.append(1)\n"
    "        f.dtypes\n"
    "    finally:\n"
    "        print('cleaned up', flush=True)\n"
    "main.COMMANDS['frame'] = main.Command('__main__', 'frame', 'A frame.')\n"
    "sys.argv = ['wfm-intervals', 'frame']\n"
    "main.main()\n"
)


@pytest.mark.parametrize(
    ("name", "line"),
    [("TERM", "wfm-intervals: interrupted by SIGTERM"), ("INT", "wfm-intervals: interrupted")],
)
def test_a_signal_under_polars_rust_code_is_an_interruption_not_a_bug(name: str, line: str) -> None:
    """The exception Polars makes of it is a panic; the command still ends as interrupted:
    clean-ups ran, its one line last (after Rust's panic message), exit 130, not exit 2 with
    'internal error'. (A CI run of the stopped-sync test met this.)"""
    code = _UNDER_RUST.format(name=name)
    run = [sys.executable, "-c", code]
    done = subprocess.run(run, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stdout.strip() == "cleaned up"
    assert done.stderr.strip().splitlines()[-1] == line
    assert "internal error" not in done.stderr


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("TERM", "wfm-intervals: interrupted by SIGTERM"),
        ("HUP", "wfm-intervals: interrupted by SIGHUP"),
        ("INT", "wfm-intervals: interrupted"),
    ],
)
def test_a_signal_while_the_console_script_starts_is_130_and_one_line(name: str, line: str) -> None:
    """A signal in the first tenth of a second, while the command's modules are imported
    (before main() sets its handlers), or while the interpreter exits after it: Ctrl-C was a
    ``KeyboardInterrupt`` traceback from an import, SIGTERM a death by the signal with no line
    (a scheduler saw 143)."""
    code = (
        "import os, signal, sys, threading\n"
        "import engine.cli\n"
        f"os.kill(os.getpid(), signal.SIG{name})\n"
        "threading.Event().wait(30)\n"
    )
    script = _console_script(code)
    done = subprocess.run(
        [sys.executable, script, "run"], check=False, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (130, line + "\n")
    # a child it spawns (the Ray helper) is no console script: its own signals are its own
    spawned = (
        "import multiprocessing, signal\n"
        "import engine.cli\n"
        "def handler(_):\n"
        "    import engine.cli\n"
        "    return signal.getsignal(signal.SIGTERM) is engine.cli.stop_outside_a_command\n"
        "if __name__ == '__main__':\n"
        "    with multiprocessing.get_context('spawn').Pool(1) as pool:\n"
        "        print(pool.apply(handler, (0,)))\n"
    )
    child = [sys.executable, _console_script(spawned)]
    done = subprocess.run(child, check=True, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"


def test_a_hang_up_whose_terminal_is_gone_is_still_130_and_cleans_up() -> None:
    """After a hang-up stderr may be gone: the lines that cannot be written (click's blank
    line, ours) do not turn the interruption into a traceback and Python's exit 1 (which here
    means data problems)."""
    child = _waiting()
    assert child.stderr is not None
    assert child.stdout is not None
    child.stderr.close()
    child.send_signal(signal.SIGHUP)
    assert wait_for_exit(child, 30) == 130
    with child.stdout:
        assert child.stdout.read().strip() == "cleaned up"


def test_a_hang_up_ignored_by_the_parent_stays_ignored() -> None:
    """``nohup wfm-intervals run`` meant it: a SIGHUP then does not stop the command; a
    SIGTERM still does."""
    child = _waiting(ignore=signal.SIGHUP)
    child.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        wait_for_exit(child, 1)
    child.send_signal(signal.SIGTERM)
    assert wait_for_exit(child, 30) == 130
    out, err = child.communicate()
    assert (out.strip(), err.strip()) == ("cleaned up", "wfm-intervals: interrupted by SIGTERM")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ignored_by_the_parent_stays_ignored(stop: signal.Signals) -> None:
    """A parent that started the command with a stop signal ignored meant it: the handler is
    not set over that, and the previous handlers come back after the command."""
    from engine.cli.main import terminate_as_interrupt

    before = signal.signal(stop, signal.SIG_IGN)
    try:
        with terminate_as_interrupt():
            assert signal.getsignal(stop) is signal.SIG_IGN
        signal.signal(stop, signal.SIG_DFL)
        with terminate_as_interrupt():
            assert signal.getsignal(stop) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(stop) is signal.SIG_DFL
    finally:
        signal.signal(stop, before)


def wait_for_exit_quietly(child: subprocess.Popen[str]) -> bool:
    try:
        wait_for_exit(child, 0.5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_build_and_callbacks_exit_1_when_too_much_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + ROW + ROW.replace("2026-10-01T09:00:00Z", "yesterday"))
    args = ["build", "--contacts", str(path), "--out", str(tmp_path / "o")]
    half = invoke(args)
    assert half.exit_code == 1
    assert half.stderr.strip() == (
        "wfm-intervals: problem: 1 of 2 rows quarantined "
        "(50.0% > --max-quarantine-fraction 5.0%); see quarantine/"
    )
    assert (tmp_path / "o" / "quarantine" / "contacts.csv").is_file()  # written all the same
    assert invoke([*args, "--max-quarantine-fraction", "0.5"]).exit_code == 0
    attempts = tmp_path / "a.parquet"
    generated = generate_attempts(days=1, scale=0.1)
    broken = generated.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("created_at"))
    broken.write_parquet(attempts)
    cb = ["callbacks", "--attempts", str(attempts), "--out", str(tmp_path / "cb")]
    cb += ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z"]
    bad = invoke(cb)
    assert bad.exit_code == 1, bad.output
    assert f"{generated.height:,} of {generated.height:,} rows quarantined" in bad.stderr


def test_a_placeholder_date_refuses_a_window_of_billions_of_zero_rows(tmp_path: Path) -> None:
    """A null written as 1900-01-01 by the system that exported the file, in a file of 30
    queues: the window taken from the data would zero-fill 126 years of 15-minute intervals
    for each queue, ~133 million rows (at 1,000 queues, billions: the process is killed for
    memory, with no line). One line asks for the window instead, naming the span; a window
    given, or the store alone (busy rows only, no zero row), builds."""
    rows = [f"u,c{q},1,voice,q{q},2026-10-01T09:{q:02d}:00Z,abandoned\n" for q in range(30)]
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "u,c-old,1,voice,q0,1900-01-01T00:00:00Z,abandoned\n" + "".join(rows))
    refused = invoke(["build", "--contacts", str(path), "--out", str(tmp_path / "o")])
    assert refused.exit_code == 2
    line = one_line(refused)
    assert "the 31 contacts span 1900-01-01T00:00:00Z .. 2026-10-01T09:29:00Z" in line
    intervals = (datetime(2026, 10, 1, 9, 29, tzinfo=UTC) - datetime(1900, 1, 1, tzinfo=UTC)) // (
        timedelta(minutes=15)
    ) + 1
    assert f"their 30 queue x channel pairs, ~{30 * intervals:,} rows;" in line
    assert "give --start and --end" in line
    window = ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z"]
    given = invoke(["build", "--contacts", str(path), "--out", str(tmp_path / "w"), *window])
    assert given.exit_code == 0, given.output
    store = ["build", "--contacts", str(path), "--out", str(tmp_path / "s"), "--format", "parquet"]
    stored = invoke(store)
    assert stored.exit_code == 0, stored.output
    assert pl.read_delta(str(tmp_path / "s" / "store" / "callvolume"))["offered"].sum() == 31


def test_callbacks_refuse_a_window_of_zero_rows_from_one_placeholder_date(tmp_path: Path) -> None:
    """One callback attempt of ~400 moved to 1900-01-01: the window taken from the requests
    would zero-fill both tables for 126 years (~150 million rows: the process was killed
    for memory after 2.5 minutes, at 24 GB). One line instead; a window given, or the store
    alone, builds."""
    generated = generate_attempts(days=2, scale=0.1)
    first = generated.head(1)
    shift = datetime(1900, 1, 1, tzinfo=UTC) - first["created_at"].item()
    instants = [c for c, t in first.schema.items() if isinstance(t, pl.Datetime)]
    old = first.with_columns(pl.col(c) + shift for c in instants).with_columns(
        pl.lit("old-1").alias("attempt_id"), pl.lit("old-1").alias("original_id")
    )
    path = tmp_path / "a.parquet"
    pl.concat([old, generated]).write_parquet(path)
    args = ["callbacks", "--attempts", str(path)]
    refused = invoke([*args, "--out", str(tmp_path / "o")])
    assert refused.exit_code == 2
    line = one_line(refused)
    assert f"the {generated.height + 1:,} attempts span 1900-01-01T00:00:00Z .. " in line
    assert "give --start and --end" in line
    window = ["--start", "2026-09-30T00:00:00Z", "--end", "2026-10-03T00:00:00Z"]
    assert invoke([*args, "--out", str(tmp_path / "w"), *window]).exit_code == 0
    store = invoke([*args, "--out", str(tmp_path / "s"), "--format", "parquet"])
    assert store.exit_code == 0, store.output


def test_one_bad_ndjson_line_is_quarantined_as_that_line(tmp_path: Path) -> None:
    good = (
        '{"source":"u","contact_id":"%s","segment_no":1,"channel":"voice","queue_id":"q",'
        '"offered_at":"2026-10-01T09:%s:00Z","outcome":"abandoned"}'
    )
    path = tmp_path / "c.ndjson"
    path.write_text("\n".join([good % ("c1", "00"), "not json", "", "[1, 2]", good % ("c2", "10")]))
    out = tmp_path / "o"
    result = invoke(["build", "--contacts", str(path), "--out", str(out),
                     "--max-quarantine-fraction", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pl.read_delta(str(out / "store" / "contacts"))["contact_id"].sort().to_list() == [
        "c1",
        "c2",
    ]
    quarantine = pl.read_csv(out / "quarantine" / "contacts.csv")
    assert quarantine.select("record_id", "reason", "raw").rows() == [
        ("line 2", "unparsable_line", "not json"),
        ("line 4", "unparsable_line", "[1, 2]"),
    ]
    assert "rows in                     4" in result.stdout


def test_a_torn_parquet_input_names_the_option_and_the_file(tmp_path: Path) -> None:
    contacts = tmp_path / "c.parquet"
    pl.DataFrame({"source": ["u"] * 50}).write_parquet(contacts)
    contacts.write_bytes(contacts.read_bytes()[:40])
    attempts = tmp_path / "a.parquet"
    attempts.write_bytes(contacts.read_bytes())
    built = invoke(["build", "--contacts", str(contacts), "--out", str(tmp_path / "o")])
    assert built.exit_code == 2
    assert one_line(built).startswith(f"wfm-intervals: error: --contacts {contacts}: ")
    cb = invoke(["callbacks", "--attempts", str(attempts), "--out", str(tmp_path / "o")])
    assert cb.exit_code == 2
    assert one_line(cb).startswith(f"wfm-intervals: error: --attempts {attempts}: ")


def test_a_directory_whose_files_disagree_on_a_type_is_read_as_text(tmp_path: Path) -> None:
    rows = pl.read_csv((HEADER + ROW + ROW.replace("c1", "c2")).encode(), infer_schema=False)
    rows = rows.with_columns(pl.col("segment_no").cast(pl.Int32))
    folder = tmp_path / "in"
    folder.mkdir()
    rows.head(1).write_parquet(folder / "a.parquet")
    rows.tail(1).with_columns(pl.col("segment_no").cast(pl.String)).write_parquet(
        folder / "b.parquet"
    )
    out = tmp_path / "o"
    result = invoke(["build", "--contacts", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_delta(str(out / "store" / "contacts")).height == 2


def test_whole_floats_in_a_directory_of_mixed_types_are_taken_as_alone(tmp_path: Path) -> None:
    """A file whose ``wait_ms`` is whole floats beside one whose ``wait_ms`` is integers: the
    column was read as text ``"331213.0"``, which the integer parse refuses, so every row of
    the float file was quarantined (``wrong_type``, exit 1) though that file alone is taken
    whole. A fractional one is still ``wrong_type``."""
    rows = pl.read_csv((HEADER + ROW + ROW.replace("c1", "c2")).encode(), infer_schema=False)
    rows = rows.with_columns(pl.col("segment_no").cast(pl.Int32), wait_ms=pl.lit(331213))
    folder = tmp_path / "in"
    folder.mkdir()
    rows.head(1).write_parquet(folder / "a.parquet")
    floats = rows.tail(1).with_columns(pl.col("wait_ms").cast(pl.Float64))
    floats.write_parquet(folder / "b.parquet")
    out = tmp_path / "o"
    result = invoke(["build", "--contacts", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_delta(str(out / "store" / "contacts"))["wait_ms"].to_list() == [331213] * 2
    floats.with_columns(wait_ms=pl.lit(2.5)).write_parquet(folder / "b.parquet")
    args = ["build", "--contacts", str(folder), "--out", str(tmp_path / "f")]
    result = invoke([*args, "--max-quarantine-fraction", "1"])
    assert result.exit_code == 0, result.output
    bad = pl.read_csv(tmp_path / "f" / "quarantine" / "contacts.csv")
    assert bad.select("reason", "detail").rows() == [("wrong_type", "wait_ms")]


def test_a_smaller_duration_bound_quarantines_what_the_default_accepts(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    two_hours = str(2 * 3_600_000)
    path.write_text(HEADER.replace("\n", ",talk_ms\n") + ROW.replace("\n", f",{two_hours}\n"))
    args = ["build", "--contacts", str(path), "--max-quarantine-fraction", "1"]
    assert invoke([*args, "--out", str(tmp_path / "a")]).exit_code == 0
    assert pl.read_csv(tmp_path / "a" / "quarantine" / "contacts.csv").height == 0
    window = ["--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z"]
    result = invoke([*args, "--out", str(tmp_path / "b"), "--max-duration-hours", "1", *window])
    assert result.exit_code == 0, result.output
    bad = pl.read_csv(tmp_path / "b" / "quarantine" / "contacts.csv")
    assert bad.select("reason", "detail").rows() == [("implausible_duration", "talk_ms")]
    with pytest.raises(ValueError, match="max_duration_hours"):
        BuildSettings(max_duration_hours=MAX_DURATION_LIMIT_HOURS + 1)


def test_the_largest_accepted_durations_sum_exactly(tmp_path: Path) -> None:
    """No sum can overflow: a frame holds at most 2**32 - 1 rows, handle_ms adds three durations
    of at most the largest bound allowed; and many rows at that bound sum exactly."""
    limit = BuildSettings(max_duration_hours=MAX_DURATION_LIMIT_HOURS)
    assert 3 * limit.max_duration_ms * (2**32 - 1) <= 2**63 - 1
    n, ms = 20_000, limit.max_duration_ms
    rows = pl.DataFrame(
        {
            "source": "u",
            "contact_id": [f"c{i}" for i in range(n)],
            "segment_no": 1,
            "channel": "voice",
            "queue_id": "q",
            "offered_at": "2026-10-01T09:00:00Z",
            "answered_at": "2026-10-01T09:00:00Z",
            "outcome": "answered",
            "wait_ms": ms,
            "talk_ms": ms,
            "hold_ms": ms,
            "acw_ms": ms,
        }
    )
    path = tmp_path / "c.parquet"
    rows.write_parquet(path)
    out = tmp_path / "o"
    result = invoke(["build", "--contacts", str(path), "--out", str(out),
                     "--max-duration-hours", str(MAX_DURATION_LIMIT_HOURS)])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pl.read_delta(str(out / "store" / "callvolume")).filter(pl.col("offered") > 0)
    assert table.select("handle_ms", "talk_ms", "wait_answered_ms").row(0) == (
        3 * ms * n,
        ms * n,
        ms * n,
    )


def test_a_non_utf8_ndjson_line_is_quarantined_as_that_line(tmp_path: Path) -> None:
    good = '{"source":"u","contact_id":"c1","segment_no":1,"channel":"voice","queue_id":"q",'
    good += '"offered_at":"2026-10-01T09:00:00Z","outcome":"abandoned"}'
    path = tmp_path / "c.ndjson"
    path.write_bytes(good.encode() + b'\n{"contact_id":"c\xff2"}\n')
    out = tmp_path / "o"
    result = invoke(["build", "--contacts", str(path), "--out", str(out),
                     "--max-quarantine-fraction", "1", "--start", "2026-10-01T00:00:00Z",
                     "--end", "2026-10-02T00:00:00Z"])  # fmt: skip
    assert result.exit_code == 0, result.output
    quarantine = pl.read_csv(out / "quarantine" / "contacts.csv")
    line = quarantine.filter(pl.col("reason") == "unparsable_line")
    assert line.select("record_id", "raw").rows() == [("line 2", '{"contact_id":"c\\xff2"}')]
