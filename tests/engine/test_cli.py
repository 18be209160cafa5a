"""The command line: build from every input kind, options, and every error path's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from engine.cli.main import cli
from engine.clock import StartedClock, use_clock
from engine.demo.contacts import generate_contacts, make_dirty
from engine.output import delta
from engine.output.migrate import migrate
from engine.pipeline.lock import store_lock
from engine.settings import BuildSettings

START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def contacts() -> pl.DataFrame:
    return generate_contacts(seed=5, start=START, days=2)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("kind", ["parquet", "csv", "ndjson"])
def test_build_reads_every_input_kind_to_the_same_table(kind, contacts, tmp_path: Path) -> None:
    path = tmp_path / f"contacts.{kind}"
    if kind == "parquet":
        contacts.write_parquet(path)
    else:
        text = contacts.with_columns(
            pl.col(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        )
        getattr(text, f"write_{kind}")(path)
    out = tmp_path / "out"
    code, stdout, stderr = invoke(
        "build", "--contacts", str(path), "--out", str(out),
        "--start", "2026-10-01T00:00:00Z", "--end", "2026-10-03T00:00:00Z",
    )  # fmt: skip
    assert code == 0, stderr
    assert "quarantined" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["contacts"] == contacts.height
    assert summary["intervals"] == 2 * 96
    table = pl.read_delta(str(out / "store" / "callvolume"))
    reference = tmp_path.parent / "reference.parquet"
    if kind == "parquet":
        table.write_parquet(reference)
    elif reference.exists():
        assert table.equals(pl.read_parquet(reference))
    for name in ("callvolume.csv", "callvolume.ndjson", "callvolume_document.json"):
        assert (out / "exports" / name).exists()


def test_options_change_the_table(contacts, tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    contacts.write_parquet(path)
    code, _, stderr = invoke(
        "build", "--contacts", str(path), "--out", str(tmp_path / "o"), "--interval", "60",
        "--tz", "Asia/Kathmandu", "--attribution", "end", "--sl-formula", "answered_only",
        "--sl-threshold", "voice=30s", "--sl-threshold", "q-billing/voice=10000",
        "--use-vendor-threshold", "--short-abandon-ms", "3000", "--format", "parquet",
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (summary["interval_minutes"], summary["tz"]) == (60, "Asia/Kathmandu")
    recorded = summary["sl_settings"]  # what a report of the store derives and labels with
    assert (recorded["sl_formula"], recorded["sl_comparator"]) == ("answered_only", "<=")
    assert recorded["sl_default_ms"] == {**BuildSettings().sl_default_ms, "voice": 30_000}
    override = {"queue_id": "q-billing", "channel": "voice", "threshold_ms": 10_000}
    assert recorded["sl_overrides"] == [override]
    assert (recorded["use_vendor_threshold"], recorded["short_abandon_ms"]) == (True, 3000)
    assert recorded["sl_target"] == BuildSettings().sl_target
    assert not (tmp_path / "o" / "exports").exists()
    table = pl.read_delta(str(tmp_path / "o" / "store" / "callvolume"))
    assert set(table["interval_start_utc"].dt.minute()) == {15}


def test_a_relative_out_builds_re_sent_rows_as_an_absolute_one_does(
    contacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows sent twice (an identity repeated: the build sets them apart, then keeps one) into
    ``--out`` given as a relative path, the way a person types it: the set-apart files were
    named under the folder twice over (``out/store/contacts/out/store/contacts/...``) and the
    build failed, exit 2, naming a file that never was."""
    resent = pl.concat([contacts, contacts.head(3)])
    resent.write_parquet(tmp_path / "c.parquet")
    monkeypatch.chdir(tmp_path)
    code, _, stderr = invoke("build", "--contacts", "c.parquet", "--out", "rel")
    assert code == 0, stderr
    assert invoke("build", "--contacts", "c.parquet", "--out", str(tmp_path / "abs"))[0] == 0
    summary = json.loads((tmp_path / "rel" / "summary.json").read_text())
    assert summary["contacts"] == contacts.height
    table = pl.read_delta(str(tmp_path / "rel" / "store" / "callvolume"))
    assert table.equals(pl.read_delta(str(tmp_path / "abs" / "store" / "callvolume")))


def test_a_folder_another_build_is_writing_is_refused_not_written_twice(
    contacts, tmp_path: Path
) -> None:
    """Two builds into one new folder at once both exited 0 with every contact counted twice
    (each committed a first version of the tables, keeping its own rows). The second writer
    now finds the folder's lock held and exits 2 naming the holder, writing nothing; the lock
    is given back at the end, whatever the end."""
    contacts.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "o"
    for command, given in (("build", "--contacts"), ("callbacks", "--attempts")):
        with store_lock(out):
            code, stdout, stderr = invoke(
                command, given, str(tmp_path / "c.parquet"), "--out", str(out)
            )
        assert code == 2, stdout
        assert stderr.startswith(f"wfm-intervals: error: the store is in use by pid {os.getpid()}")
        assert "(another `wfm-intervals run`, `sync`, `build` or `callbacks` writing it)" in stderr
        assert stderr.rstrip().endswith("(`run` can: --wait SECONDS)")  # `sync` has no --wait
    assert not (out / "store").exists()
    assert invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out))[0] == 0
    assert invoke("build", "--contacts", str(tmp_path / "nope.parquet"), "--out", str(out))[0] == 2
    assert invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out))[0] == 0
    code, _, stderr = invoke(
        "build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out / "summary.json" / "x")
    )
    assert code == 2
    assert stderr.startswith("wfm-intervals: error: --out ")


def test_contacts_whose_every_row_is_quarantined_say_so_and_exit_1(
    contacts, tmp_path: Path
) -> None:
    """Every row unreadable (times without their offset) and no window given: exit 2 said
    "give --start and --end", and no quarantine file showed why. It is a data problem: exit 1,
    the reasons in the line, every row in the quarantine file; given a window, as before."""
    path = tmp_path / "naive.csv"
    naive = contacts.head(4).with_columns(
        pl.col(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    naive.write_csv(path)
    out = tmp_path / "o"
    code, _, stderr = invoke("build", "--contacts", str(path), "--out", str(out))
    assert code == 1
    assert stderr.splitlines() == [
        f"wfm-intervals: problem: --contacts {path}: no valid contacts: every row read was "
        f"quarantined (unparsable_timestamp 4; written to {out / 'quarantine' / 'contacts.csv'}), "
        "so there is no window to build"
    ]
    assert pl.read_csv(out / "quarantine" / "contacts.csv").height == 4
    window = ("--start", "2026-10-01T00:00:00Z", "--end", "2026-10-02T00:00:00Z")
    assert invoke("build", "--contacts", str(path), "--out", str(out), *window)[0] == 1


def test_a_first_commit_that_never_happened_does_not_block_the_next_build(
    contacts, tmp_path: Path
) -> None:
    """A disk full (or a kill) while a table was first created leaves its log folder with no
    version in it. Every later build failed on it ("not a readable store table ... No files in
    log segment", exit 2, no fix named): no version, no table; the next build creates it."""
    contacts.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "o"
    for name in ("contacts", "callvolume"):
        (out / "store" / name / "_delta_log").mkdir(parents=True)
        (out / "store" / name / "_delta_log" / ".tmp-00000000000000000000.json").write_text("{")
    orphan = (
        out / "store" / "contacts" / "date=2026-10-01" / "part-0123456789ab-0123456789ab.parquet"
    )
    contacts.head(2).write_parquet(orphan, mkdir=True)  # written, never committed
    assert not migrate(out / "store" / "contacts", by="offered_at")  # no old store's files
    assert not delta.is_table(out / "store" / "contacts")
    code, _, stderr = invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out))
    assert code == 0, stderr
    assert pl.read_delta(str(out / "store" / "contacts")).height == contacts.height


def test_a_reader_that_went_away_is_an_io_error_not_a_data_problem(
    contacts, tmp_path: Path
) -> None:
    """``wfm-intervals build … | head -1``: the reader closes the pipe, the next line written
    fails. Click ended that with exit 1 and no word, which here means data problems. It is an
    I/O error: exit 2, one line on stderr; the tables were written all the same."""
    contacts.write_parquet(tmp_path / "c.parquet")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    args = ["build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(tmp_path / "o")]
    child = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", *args], stdout=write, stderr=subprocess.PIPE
    )
    os.close(write)
    timer = threading.Timer(120, child.kill)  # not communicate(timeout=): faketime's clock
    timer.start()
    try:
        _, err = child.communicate()
    finally:
        timer.cancel()
    assert child.returncode == 2
    assert err.decode().splitlines() == [
        "wfm-intervals: error: stdout was closed before the output was written (broken pipe)"
    ]
    assert pl.read_delta(str(tmp_path / "o" / "store" / "callvolume")).height


def test_a_store_table_without_its_log_is_refused_not_read_as_plain_files(
    contacts, tmp_path: Path
) -> None:
    """Built twice, the volume table's folder holds both versions' files; only its log says
    which are current. With the log gone (a backup that skipped ``_*`` folders), the exports
    read it as a plain Parquet directory and counted every contact twice, exit 0."""
    contacts.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "o"
    for _ in range(2):
        assert invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out))[0] == 0
    log = out / "store" / "callvolume" / "_delta_log"
    log.rename(tmp_path / "kept_log")
    code, stdout, stderr = invoke("export", "contact-volume", "--store", str(out))
    assert code == 2, stdout
    assert "a store table without its log (_delta_log)" in stderr
    code, _, stderr = invoke("report", "--store", str(out), "--out", str(tmp_path / "r.html"))
    assert code == 2  # it said "no store/ ... run build first"
    assert "a store table without its log (_delta_log)" in stderr
    log.mkdir()  # a log with no version: a first commit that never happened
    code, _, stderr = invoke(
        "export", "forecast", "--store", str(out), "--out", str(tmp_path / "f.parquet")
    )
    assert code == 2
    assert "a store table never committed (its log holds no version)" in stderr


def test_the_contact_volume_document_has_one_row_order_however_it_is_read(
    contacts, tmp_path: Path
) -> None:
    """``build``'s document ordered an interval's channels voice, chat, email (the builder's
    types), ``export contact-volume`` and ``serve`` chat, email, voice (the store's text): a
    client paging one and the other by skip/limit got other rows on a page. One order now."""
    one_queue = contacts.with_columns(queue_id=pl.lit("q"), queue_name=pl.lit("All"))
    one_queue.write_parquet(tmp_path / "c.parquet")  # its channels side by side in an interval
    out = tmp_path / "o"
    assert invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out))[0] == 0
    built = json.loads((out / "exports" / "callvolume_document.json").read_text())
    code, stdout, _ = invoke("export", "contact-volume", "--store", str(out), "--limit", "1000")
    assert code == 0
    paged = json.loads(stdout)
    ids = [r["_id"] for r in built["CallVolumeUpdate"][:1000]]
    assert len({r["_id"][:14] for r in built["CallVolumeUpdate"]}) > 1  # pairs: the channels
    assert [r["_id"] for r in paged["CallVolumeUpdate"]] == ids


@pytest.mark.parametrize("damage", ["torn", "gone", "no zone"])
def test_a_store_whose_build_settings_cannot_be_read_is_not_read_on_another_grid(
    contacts, tmp_path: Path, damage: str
) -> None:
    """A store built hourly in Australia/Lord_Howe, its ``summary.json`` torn, gone, or
    without a zone. The exports took UTC and 15 minutes instead: fake 15-minute zero rows,
    vendor files of hourly counts as quarter-hours, exit 0. They refuse, naming the file."""
    contacts.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "o"
    hourly = ("--tz", "Australia/Lord_Howe", "--interval", "60", "--format", "parquet")
    assert (
        invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out), *hourly)[0]
        == 0
    )
    summary = out / "summary.json"
    if damage == "torn":
        summary.write_bytes(summary.read_bytes()[:40])
    elif damage == "gone":
        summary.unlink()
    else:
        summary.write_text(json.dumps({"contacts": 1}))
    code, stdout, stderr = invoke("export", "contact-volume", "--store", str(out))
    assert code == 2, stdout
    assert "the zone and interval length its store was built with are unknown" in stderr
    assert ("neither summary.json" if damage == "gone" else str(summary)) in stderr
    if damage == "torn":  # the report read it bare: a JSONDecodeError traceback
        code, _, stderr = invoke("report", "--store", str(out), "--out", str(tmp_path / "r.html"))
        assert code == 2
        assert stderr.startswith(f"wfm-intervals: error: {summary}: cannot be read (")
        assert len(stderr.splitlines()) == 1


@pytest.mark.parametrize("damage", ["emptied", "torn"])
def test_a_torn_last_commit_is_refused_by_readers_and_set_aside_by_the_next_build(
    contacts, tmp_path: Path, damage: str
) -> None:
    """The volume table's last commit file emptied (a crash of the machine) or cut short.
    Emptied, the exports read another version silently (an empty table, exit 0); cut short,
    every later build failed on it ("not a readable store table", exit 2) with no way back
    but deleting it by hand. Readers refuse it, naming the file; the next build sets the
    table aside, says so, and writes it anew."""
    contacts.write_parquet(tmp_path / "c.parquet")
    out, build = tmp_path / "o", ("build", "--contacts", str(tmp_path / "c.parquet"))
    for _ in range(2):
        assert invoke(*build, "--out", str(out), "--format", "parquet")[0] == 0
    first = pl.read_delta(str(out / "store" / "callvolume"))
    last = sorted((out / "store" / "callvolume" / "_delta_log").glob("*.json"))[-1]
    last.write_bytes(b"" if damage == "emptied" else last.read_bytes()[:30])
    code, stdout, stderr = invoke("export", "contact-volume", "--store", str(out))
    assert code == 2, stdout
    assert "not a readable store table" in stderr
    if damage == "emptied":
        assert f"its log's {last.name} is empty: a torn commit" in stderr
    code, _, stderr = invoke(*build, "--out", str(out), "--format", "parquet")
    assert code == 0, stderr
    assert stderr.startswith(f"wfm-intervals: note: {out / 'store' / 'callvolume'}: ")
    assert "set aside as .callvolume.old-" in stderr
    assert_frame_equal(
        pl.read_delta(str(out / "store" / "callvolume")), first, check_row_order=False
    )


def test_the_report_names_a_data_file_cut_short(contacts, tmp_path: Path) -> None:
    """A volume data file cut short: the report failed with Parquet's "The file must end with
    PAR1", naming no file; the exports named it. It names it too."""
    contacts.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "o"
    assert invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out))[0] == 0
    cut = sorted((out / "store" / "callvolume").rglob("part-*.parquet"))[0]
    cut.write_bytes(cut.read_bytes()[:100])
    code, _, stderr = invoke("report", "--store", str(out), "--out", str(tmp_path / "r.html"))
    assert code == 2
    assert stderr.startswith(f"wfm-intervals: error: {cut}: 100 bytes, the log says ")


def test_dirty_rows_are_quarantined_not_fatal(contacts, tmp_path: Path) -> None:
    dirty, injected = make_dirty(contacts, seed=1, fraction=0.05)
    path = tmp_path / "dirty.csv"
    dirty.write_csv(path)
    code, _, stderr = invoke("build", "--contacts", str(path), "--out", str(tmp_path / "o"))
    assert code == 0, stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["quarantined"] == {k: v for k, v in sorted(injected.items()) if v}
    quarantine = pl.read_csv(tmp_path / "o" / "quarantine" / "contacts.csv")
    assert quarantine.height == sum(injected.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--contacts", "nope.parquet"], "no such file"),
        (["--tz", "Mars/Olympus"], "tz"),
        # Python knows it, Polars not: it failed later, blaming --contacts
        (["--tz", "right/UTC"], "unknown IANA time zone 'right/UTC'"),
        (["--start", "2026-10-01"], "both --start and --end"),
        (["--start", "yesterday", "--end", "2026-10-02T00:00:00Z"], "ISO 8601"),
        (["--start", "2026-10-01T00:00:00", "--end", "2026-10-02T00:00:00Z"], "UTC offset"),
        (["--start", "2026-10-02T00:00:00Z", "--end", "2026-10-01T00:00:00Z"], "not after"),
        (["--sl-threshold", "voice"], "TARGET=MILLISECONDS"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(args, message, contacts, tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    contacts.write_parquet(path)
    base = ["build", "--contacts", str(path), "--out", str(tmp_path / "o")]
    if args[0] == "--contacts":
        base = ["build", "--out", str(tmp_path / "o")]
    code, _, stderr = invoke(*base, *args)
    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_missing_required_column_is_exit_2(contacts, tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    contacts.drop("queue_id").write_parquet(path)
    code, _, stderr = invoke("build", "--contacts", str(path), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "queue_id" in stderr


def test_unknown_input_kind_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "contacts.xlsx"
    path.write_bytes(b"PK")
    code, _, stderr = invoke("build", "--contacts", str(path), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "unknown file kind" in stderr


def test_usage_error_is_exit_2() -> None:
    code, _, _ = invoke("build", "--interval", "45")
    assert code == 2


def test_demo_runs_the_whole_job_on_the_emulators(tmp_path: Path) -> None:
    code, stdout, stderr = invoke("demo", "--out", str(tmp_path / "d"), "--days", "2")
    assert code == 0, stderr
    summary = json.loads((tmp_path / "d" / "run_summary.json").read_text())
    assert summary["ok"]
    pulled = {p["source"] for p in summary["pulled"]}
    assert pulled == {"ujet", "dixa", "mindful", "kore"}
    assert summary["segments"] > 0
    assert summary["attempts"] > 0
    assert all(c["status"] in {"ok", "within_tolerance"} for c in summary["reconcile"]["checks"])
    assert (tmp_path / "d" / "report.html").exists()
    assert "reconcile kore: ok" in stdout


def test_a_demo_just_after_utc_midnight_reconciles(tmp_path: Path) -> None:
    """Ten minutes after midnight, chains begun before it have retries still to come: the
    Mindful emulator served them and counted them in its metrics, while the sync reads the hour
    files up to now, so the demo ended with Mindful out of tolerance, exit 1 (``.ci/run`` would
    fail for the first hours of every UTC day). What does not exist yet is not served."""
    with use_clock(StartedClock(datetime(2026, 12, 8, 0, 10, tzinfo=UTC))):
        code, stdout, stderr = invoke("demo", "--out", str(tmp_path / "d"), "--days", "4")
    assert code == 0, stdout + stderr
    assert "reconcile mindful: ok (0 differences" in stdout


def test_a_second_demo_into_its_folder_starts_from_new_tables(contacts, tmp_path: Path) -> None:
    """``make demo`` twice: the second demo's landing store is new (temporary), and the run
    refused to rebuild the first demo's store from it (exit 2). The demo owns its folder and
    replaces its tables; a folder holding another store is refused, nothing touched."""
    out = tmp_path / "d"
    for _ in range(2):
        code, _, stderr = invoke("demo", "--out", str(out), "--days", "1", "--scale", "0.01")
        assert code == 0, stderr
    assert json.loads((out / "run_summary.json").read_text())["ok"]
    assert not list(out.glob(".store.old-*"))  # the first demo's store, gone
    contacts.write_parquet(tmp_path / "c.parquet")
    built = tmp_path / "b"
    assert invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(built))[0] == 0
    before = sorted(p.name for p in (built / "store").rglob("*"))
    code, _, stderr = invoke("demo", "--out", str(built), "--days", "1")
    assert code == 2
    assert "holds a store the demo did not write" in stderr
    assert sorted(p.name for p in (built / "store").rglob("*")) == before


def test_the_program_lists_every_command_and_each_loads() -> None:
    """In a fresh interpreter, as the console script runs: import order must not matter."""
    import subprocess
    import sys

    code = (
        "import click; from engine.cli.main import cli, load, COMMANDS\n"
        "ctx = click.Context(cli)\n"
        "for name in cli.list_commands(ctx):\n"
        "    command = load(name)\n"
        "    assert command.name == name, (name, command.name)\n"
        "    assert command.get_short_help_str(limit=200) == COMMANDS[name].help, name\n"
        "print(' '.join(cli.list_commands(ctx)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["build", "callback-metrics", "callbacks", "config", "demo", "export",
                   "reconcile", "report", "run", "serve", "state", "sync", "verify"]  # fmt: skip


def test_help_imports_no_heavy_library() -> None:
    """``--help`` lists the commands from their entries alone: Polars and Plotly stay out."""
    import subprocess
    import sys

    code = (
        "import sys; from engine.cli.main import main\n"
        "sys.argv = ['wfm-intervals', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('polars', 'plotly', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "callback-metrics  Print the callback metrics document" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_allocator_gets_an_arena_for_two_cpus_and_the_operators_settings_after() -> None:
    from engine.cli.main import ALLOCATOR_VARIABLE, allocator_settings

    for cpus, arenas in ((None, 1), (1, 1), (2, 1), (3, 2), (64, 32)):
        environ: dict[str, str] = {}
        allocator_settings(environ, cpus)
        assert environ == {ALLOCATOR_VARIABLE: f"narenas:{arenas}"}
    allocator_settings(environ := {ALLOCATOR_VARIABLE: "narenas:8,dirty_decay_ms:0"}, 2)
    assert environ[ALLOCATOR_VARIABLE] == "narenas:1,narenas:8,dirty_decay_ms:0"  # theirs win


def test_the_nightly_job_hands_freed_pages_back_at_once_and_the_batch_commands_do_not() -> None:
    from engine.cli.main import ALLOCATOR_VARIABLE, allocator_settings, command_of

    prompt = "dirty_decay_ms:0,muzzy_decay_ms:0"
    for args, setting in (
        (["run", "--config", "site.toml"], f"narenas:1,{prompt}"),
        (["--log-format", "json", "--log-level", "debug", "run"], f"narenas:1,{prompt}"),
        (["demo", "--days", "2"], f"narenas:1,{prompt}"),
        (["build", "--contacts", "run", "--out", "demo"], "narenas:1"),  # values are not commands
        (["callbacks", "--attempts", "a.parquet"], "narenas:1"),
        (["--help"], "narenas:1"),
        ([], "narenas:1"),
    ):
        environ: dict[str, str] = {}
        allocator_settings(environ, 2, command_of(args))
        assert environ == {ALLOCATOR_VARIABLE: setting}, args
    environ = {ALLOCATOR_VARIABLE: "dirty_decay_ms:100"}
    allocator_settings(environ, 2, "run")
    assert environ[ALLOCATOR_VARIABLE] == f"narenas:1,{prompt},dirty_decay_ms:100"  # theirs win
    # started from a process that imported Polars (an Airflow task, a test): Polars' own
    # settings were written into the environment; they are not the operator's (who writes
    # them in another order: docs/operations.md, "Memory")
    for inherited, theirs in (
        ("dirty_decay_ms:500,muzzy_decay_ms:1000", ""),
        ("dirty_decay_ms:500,muzzy_decay_ms:1000,narenas:3", ",narenas:3"),
        ("dirty_decay_ms:500,muzzy_decay_ms:1000,thp:always,metadata_thp:always", ""),
        ("muzzy_decay_ms:1000,dirty_decay_ms:500", ",muzzy_decay_ms:1000,dirty_decay_ms:500"),
    ):
        allocator_settings(environ := {ALLOCATOR_VARIABLE: inherited}, 2, "run")
        assert environ[ALLOCATOR_VARIABLE] == f"narenas:1,{prompt}{theirs}", inherited


def test_what_polars_writes_into_the_environment_is_what_the_program_drops() -> None:
    """Polars' own settings are recognised by their text: a Polars that writes others fails
    here, not silently in every Airflow task's run."""
    import os
    import subprocess
    import sys

    from engine.cli.main import ALLOCATOR_VARIABLE, POLARS_DEFAULTS

    env = {k: v for k, v in os.environ.items() if k not in {ALLOCATOR_VARIABLE, "POLARS_THP"}}
    code = f"import os, polars\nprint(os.environ[{ALLOCATOR_VARIABLE!r}])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == POLARS_DEFAULTS


def test_a_command_starts_polars_allocator_with_its_settings() -> None:
    """In a fresh interpreter, as the console script runs: the allocator's own statistics
    (printed at exit when asked for) show the settings reached it (arenas for every command,
    freed pages back at once for ``run``), and the operator's win."""
    import os
    import subprocess
    import sys

    from engine.cli.main import ALLOCATOR_VARIABLE, allocator_settings

    ours: dict[str, str] = {}  # what this machine's CPUs give (the test above holds the rule)
    allocator_settings(ours, len(os.sched_getaffinity(0)))
    default = ours[ALLOCATOR_VARIABLE].removeprefix("narenas:")
    for command, given, arenas, decay in (
        ("build", "", default, None),
        ("build", "narenas:3,", "3", None),
        ("run", "", default, "0"),
        ("run", "dirty_decay_ms:250,", default, "250"),
        ("run", "dirty_decay_ms:500,muzzy_decay_ms:1000,", default, "0"),  # a Polars parent's
    ):
        code = (
            "from engine.cli.main import main\n"
            f"try:\n    main([{command!r}, '--help'])\n"
            "finally:\n    import polars  # the allocator starts (and reads its settings) here\n"
        )
        env = {**os.environ, ALLOCATOR_VARIABLE: f"{given}stats_print:true"}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        if "opt.narenas" not in done.stderr:
            pytest.skip("this Polars build's allocator is not jemalloc")
        assert f"opt.narenas: {arenas}\n" in done.stderr, (command, given)
        if decay is None:  # Polars' own: a freed page kept a while for reuse
            assert "opt.dirty_decay_ms: 0 " not in done.stderr, (command, given)
        else:
            assert f"opt.dirty_decay_ms: {decay} " in done.stderr, (command, given)
            assert "opt.muzzy_decay_ms: 0 " in done.stderr, (command, given)


def test_a_zone_is_known_where_the_system_has_no_zone_database(contacts, tmp_path: Path) -> None:
    """A slim container or Windows has no IANA database for ``zoneinfo``: the ``tzdata``
    package is the one read then, so ``--tz America/New_York`` still builds, the same table
    as with the system's zones."""
    import os
    import subprocess
    import sys

    path = tmp_path / "c.parquet"
    contacts.write_parquet(path)
    empty = tmp_path / "no-zones"
    empty.mkdir()
    code = "from engine.cli.main import main; main()"
    args = ["build", "--contacts", str(path), "--tz", "America/New_York",
            "--start", "2026-10-01T04:00:00Z", "--end", "2026-10-02T04:00:00Z"]  # fmt: skip
    tables = []
    for zones in (str(empty), None):  # no system database; then the system's, if any
        env = {k: v for k, v in os.environ.items() if k != "PYTHONTZPATH"}
        if zones is not None:
            env["PYTHONTZPATH"] = zones
        out = tmp_path / f"out-{len(tables)}"
        done = subprocess.run(
            [sys.executable, "-c", code, *args, "--out", str(out)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        tables.append(pl.read_delta(str(out / "store" / "callvolume")))
    assert tables[0].height > 0
    assert tables[0].get_column("utc_offset_min").unique().to_list() == [-240]  # EDT
    assert tables[0].equals(tables[1])


def test_export_contact_volume_stamps_the_configurations_org_id_and_unit(
    contacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``export contact-volume --config`` (``--tenant``) took ``wfm-intervals`` and ms whatever
    ``[output]`` said, unlike the runs' document and ``serve``: now the configuration's."""
    for name in [n for n in os.environ if n.startswith("WFM_")]:
        monkeypatch.delenv(name)
    contacts.write_parquet(tmp_path / "c.parquet")
    out = tmp_path / "o"
    stamped = ("--org-id", "o-acme", "--duration-unit", "s")
    assert (
        invoke("build", "--contacts", str(tmp_path / "c.parquet"), "--out", str(out), *stamped)[0]
        == 0
    )
    built = json.loads((out / "exports" / "callvolume_document.json").read_text())
    config = tmp_path / "c.toml"
    config.write_text(f'[output]\ndir = "{out}"\norg_id = "o-acme"\nduration_unit = "s"\n')
    code, stdout, _ = invoke("export", "contact-volume", "--config", str(config), "--limit", "5")
    assert code == 0
    assert json.loads(stdout)["CallVolumeUpdate"] == built["CallVolumeUpdate"][:5]
    code, stdout, _ = invoke("export", "contact-volume", "--store", str(out), "--limit", "1")
    assert json.loads(stdout)["CallVolumeUpdate"][0]["orgId"] == "wfm-intervals"  # no config
