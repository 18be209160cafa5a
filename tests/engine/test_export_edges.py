"""The edges of ``export``: profiles of one's own that are wrong, and paging numbers out of range.

Each ends with exit 2 and one line naming what is wrong (the profile's key, the option), never a
traceback, and never a file written where it should not be or over another.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.output.files import write_store
from engine.settings import BuildSettings
from engine.tables.callvolume import build, derive

START = datetime(2026, 10, 1, tzinfo=UTC)
#: One column, then whatever a case adds.
COLUMN = '[[columns]]\nheader = "o"\ncolumn = "offered"\n'
#: Which line it is (its interval, queue and channel), then the one column: a profile that renders.
KEYED = (
    '[[columns]]\nheader = "at"\ncolumn = "interval_start_utc"\nformat = "%d%H%M"\n'
    '[[columns]]\nheader = "k"\ncolumn = "queue_key"\n' + COLUMN
)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built store: a day of demo contacts (closed by the tests' clock, 2026-11-09)."""
    out = tmp_path_factory.mktemp("store")
    settings = BuildSettings()
    contacts = generate_contacts(seed=5, start=START, days=1).lazy()
    window = (START, START + timedelta(days=1))
    table = derive(build(contacts, window=window, settings=settings), settings=settings)
    write_store(table.collect(), out / "store" / "callvolume", by="interval_start_utc")
    (out / "summary.json").write_text(json.dumps({"tz": "UTC", "interval_minutes": 15}))
    return out


def vendor(store: Path, out: Path, profile: str) -> tuple[int, str, str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / "profile.toml"
    path.write_text(f'name = "p"\n{profile}')
    return invoke("export", "vendor", "--profile-file", str(path), "--store", str(store),
                  "--out", str(out))  # fmt: skip


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (f'file_name = "p.csv"\nmax_file_bytes = 2000\n{COLUMN}', "must hold {part}"),
        (f'file_name = "p.csv"\nsplit_by = ["queue_id"]\n{COLUMN}', "must hold {queue_id}"),
        (f'file_name = ""\n{COLUMN}', "file_name '' is not the name of a file"),
        (f'file_name = "../../escaped_{{run}}.csv"\n{COLUMN}', "not a plain file name"),
        (f'file_name = "p_{{nope}}.csv"\n{COLUMN}', "{nope} is neither {part}"),
        (f'file_name = "p_{{0}}.csv"\n{COLUMN}', "a placeholder is a plain name"),
        (f'file_name = "p_{{.csv"\n{COLUMN}', "file_name 'p_{.csv': expected '}'"),
        ('file_name = "p.csv"\ncolumns = []\n', "columns: "),
        ('file_name = "p.csv"\ndelimiter = "\\n"\n' + COLUMN, "delimiter: "),
        (f'file_name = "p.csv"\n{COLUMN}const = "1"\n', "columns[0]: column 'o': give exactly"),
        ('file_name = "p.csv"\n[[columns]]\nheader = "x"\ncolumn = "nope"\n',
         "columns[0] ('x'): column 'nope' is not a column of the volume table"),
        (f'file_name = "p_{{nope}}.csv"\nsplit_by = ["nope"]\n{COLUMN}',
         "split_by 'nope' is not a column"),
        (f'file_name = "p.csv"\n{COLUMN}format = "%Y"\n', "columns[0] ('o'): format needs a date"),
        ('file_name = "p.csv"\n[[columns]]\nheader = "q"\ncolumn = "queue_name"\nunit = "s"\n',
         "columns[0] ('q'): unit = \"s\" needs a number of ms"),
    ],
)  # fmt: skip
def test_a_wrong_profile_file_is_one_line_naming_its_key_and_writes_nothing(
    store: Path, tmp_path: Path, profile: str, message: str
) -> None:
    """Bad keys gave tracebacks ("internal error"), or "wrote 31 file(s)" with one file on disk
    (the parts overwrote each other), a file at the --out path, or one outside --out."""
    out = tmp_path / "deep" / "out"
    code, stdout, stderr = vendor(store, out, profile)
    assert (code, stdout) == (2, "")
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"wfm-intervals: error: --profile-file {out.parent / 'profile.toml'}")
    assert message in stderr
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["profile.toml"]


def test_a_profile_file_s_files_are_all_on_disk_or_one_line_says_why(store: Path, tmp_path: Path):
    """What the command says it wrote is on disk, one file per name; a file it cannot write (a
    folder in its place) ended in a traceback."""
    out = tmp_path / "out"
    profile = 'file_name = "p_{channel}_{part}.csv"\nsplit_by = ["channel"]\n'
    profile += "max_file_bytes = 5000\n" + KEYED
    code, stdout, stderr = vendor(store, out, profile)
    assert code == 0, stderr
    written = sorted(p.name for p in out.iterdir() if p.name != ".p.exported.json")
    assert stdout == f"wrote {len(written)} p file(s) to {out}\n"
    assert len(written) > 2
    assert "p_voice_002.csv" in written
    (out / "p_voice_002.csv").unlink()
    (out / "p_voice_002.csv").mkdir()
    code, stdout, stderr = vendor(store, out, profile)
    assert (code, stdout) == (2, "")
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"wfm-intervals: error: --out {out}: ")


def test_paging_numbers_out_of_range_are_a_usage_error(store: Path) -> None:
    """A --skip or --limit beyond a 64-bit integer ended in an OverflowError traceback; the
    largest allowed give a page."""
    for option, value in (
        ("--skip", str(2**63)),
        ("--skip", str(2**53 + 1)),
        ("--limit", str(2**64)),
        ("--limit", "1001"),
    ):
        args = ("export", "contact-volume", "--store", str(store), option, value)
        code, stdout, stderr = invoke(*args)
        assert (code, stdout) == (2, "")
        assert "Traceback" not in stderr
        assert f"Invalid value for '{option}': {value} is not in the range" in stderr
    code, stdout, stderr = invoke(
        "export", "contact-volume", "--store", str(store), "--skip", str(2**53), "--limit", "1000"
    )
    assert code == 0, stderr
    assert '"CallVolumeUpdate": []' in stdout


def test_export_vendor_removes_what_its_earlier_export_wrote_and_nothing_else(
    store: Path, tmp_path: Path
) -> None:
    """A later export into the same --out with fewer parts left the earlier parts there, their
    keys twice in the folder; now what the earlier export of the profile recorded writing and
    this one did not is removed, as `run` removes it. Files it did not write stay, however they
    are named (a user's `mine_0001.csv`, an import log); a profile naming each export's files
    apart (`{run}`: Calabrio) removes nothing, its deliveries maybe not collected yet."""
    out, profile = tmp_path / "out", tmp_path / "mine.toml"
    out.mkdir()
    head = 'name = "mine"\ninterval_minutes = 15\nfile_name = "mine_{part}.csv"\n'
    profile.write_text(head + "max_file_bytes = 1000\n" + KEYED)
    mine = ["export", "vendor", "--store", str(store), "--out", str(out)]
    assert invoke(*mine, "--profile-file", str(profile))[0] == 0
    parts = sorted(p.name for p in out.glob("mine_*.csv"))
    assert len(parts) > 2
    users = ["mine_0001.csv", "mine_import_log.csv", "notes.txt"]
    for name in users:
        (out / name).write_text("theirs\n")
    profile.write_text(head + KEYED)  # one file now
    code, stdout, stderr = invoke(*mine, "--profile-file", str(profile))
    assert (code, stdout) == (0, f"wrote 1 mine file(s) to {out}\n"), stderr
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert left == sorted(["mine_001.csv", *users])
    assert all((out / name).read_text() == "theirs\n" for name in users)
    earlier = out / "calabrio_queue_statistics_20261108T003000Z.csv"
    earlier.write_text("not collected yet\n")
    assert invoke("export", "vendor", "calabrio", "--store", str(store), "--out", str(out))[0] == 0
    assert earlier.read_text() == "not collected yet\n"
