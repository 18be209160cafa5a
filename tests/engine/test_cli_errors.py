"""Every error path of the command line: its exit code, and one line naming the file or setting.

Exit codes (SPEC §7.2): 1 data problems, 2 usage, configuration, source or I/O, 130
interrupted. Each case runs the console entry point (:func:`engine.cli.main.main`, as the
installed ``wfm-intervals`` does) in-process and checks that stderr holds exactly one
``wfm-intervals: …`` line, no traceback, no raw bytes and no secret, and that the line names
what is wrong. Sources that cannot be reached are a closed loopback port (127.0.0.1:1).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from polars.exceptions import PanicException

from engine.cli.main import COMMANDS, main
from engine.demo.callbacks import generate_attempts
from tests.environment import run_main

HEADER = "source,contact_id,segment_no,channel,queue_id,offered_at,outcome\n"
ROW = "u,c{n},1,voice,q,2026-10-01T09:{n:02d}:00Z,abandoned\n"
PASSWORD = "pw-never-printed-7"  # noqa: S105 - a fake, to show it is never printed
#: A source that refuses every connection, and gives up at once.
CLOSED = (
    "[sources.ujet]\nenabled = true\nbase_url = 'http://127.0.0.1:1/v1'\nusername = 'u'\n"
    "max_retries = 0\n[store]\nlanding = 'landing'\nstate = 'state'\n[output]\ndir = 'out'\n"
)


def run(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None):
    """``wfm-intervals ARGS`` in-process: (exit code, stdout, stderr)."""
    return run_main(args, env, stdin)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs, good and bad, and a built callbacks store with two damaged copies."""
    root = tmp_path_factory.mktemp("inputs")
    rows = "".join(ROW.format(n=n) for n in range(3))
    (root / "good.csv").write_text(HEADER + rows)
    (root / "empty.csv").write_bytes(b"")
    (root / "notes.txt").write_text("hello")
    (root / "nocolumns.csv").write_text("a,b\n1,2\n")
    (root / "yesterday.csv").write_text(
        HEADER + ROW.format(n=1).replace("2026-10-01T09:01:00Z", "x")
    )
    (root / "latin1.csv").write_bytes((HEADER + rows).encode() + b"u,c\xe92,1,voice,q,x,y\n")
    (root / "quoted.csv").write_bytes(HEADER.encode() + b'u,"c\n\xe9",1,voice,q,x,y\n')
    (root / "header.csv").write_bytes(b"sour\xe7e" + HEADER.encode()[6:] + rows.encode())
    (root / "notjson.ndjson").write_bytes(b"not json\n\xff\xfe\n")
    pl.DataFrame({"source": ["u"] * 50}).write_parquet(root / "torn.parquet")
    (root / "torn.parquet").write_bytes((root / "torn.parquet").read_bytes()[:40])
    attempts = generate_attempts(days=1, scale=0.1)
    attempts.write_parquet(root / "attempts.parquet")
    attempts.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("created_at")).write_parquet(
        root / "undated.parquet"
    )
    code, _, err = run(["callbacks", "--attempts", str(root / "attempts.parquet"),
                        "--out", str(root / "cb")])  # fmt: skip
    assert code == 0, err
    torn, layout = root / "cb-torn", root / "cb-layout"
    shutil.copytree(root / "cb", torn)
    shutil.copytree(root / "cb", layout)
    part = next((torn / "store" / "callback_attempts").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    log = sorted((layout / "store" / "callback_attempts" / "_delta_log").glob("*.json"))[-1]
    log.write_text("[]")
    (root / "bad.toml").write_text("[store\n")
    (root / "unknown.toml").write_text("[build]\nfoo = 1\n")
    (root / "duration.toml").write_text("[build]\nmax_duration_hours = 0\n")
    (root / "closed.toml").write_text(CLOSED)
    (root / "nothing").mkdir()
    return root


@dataclass(frozen=True)
class Case:
    """A command line (``{d}``: the inputs directory), its exit code and what its line says."""

    args: str
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None


CONTACTS = "build --out {d}/o --contacts"
CALLBACKS = "callbacks --out {d}/o --attempts"
METRICS = "callback-metrics --begin 2026-10-01 --end 2026-10-02"
WINDOW = "--start 1900-01-01 --end 2100-01-01"
DAY = "--start 2026-10-01 --end 2026-10-02"

CASES: dict[str, Case] = {
    # usage: what click refuses, one line naming the option
    "unknown command": Case("nope", 2, "No such command 'nope'"),
    "unknown option": Case(f"{CONTACTS} {{d}}/good.csv --bogus", 2, "--bogus"),
    "missing option": Case("build --out {d}/o", 2, "Missing option '--contacts'"),
    "bad choice": Case(f"{CONTACTS} {{d}}/good.csv --interval 7", 2, "--interval"),
    "out is a file": Case("build --contacts {d}/good.csv --out {d}/good.csv", 2, "--out"),
    "fraction above 1": Case(
        f"{CALLBACKS} {{d}}/attempts.parquet --max-quarantine-fraction 2", 2, "--max-quarantine"
    ),
    "duration bound 0": Case(f"{CONTACTS} {{d}}/good.csv --max-duration-hours 0", 2, "--max-dur"),
    "demo days": Case("demo --days 0", 2, "--days"),
    "report without --store": Case("report", 2, "--store"),
    "profile file missing": Case(
        "export vendor --profile-file {d}/missing.toml", 2, "--profile-file"
    ),
    # build: inputs and options
    "contacts missing": Case(f"{CONTACTS} {{d}}/missing.csv", 2, "missing.csv"),
    "contacts empty": Case(f"{CONTACTS} {{d}}/empty.csv", 2, "empty.csv: the file is empty"),
    "contacts unknown kind": Case(f"{CONTACTS} {{d}}/notes.txt", 2, "notes.txt: unknown file"),
    "contacts no columns": Case(f"{CONTACTS} {{d}}/nocolumns.csv", 2, "nocolumns.csv: input has"),
    "contacts torn parquet": Case(f"{CONTACTS} {{d}}/torn.parquet", 2, "--contacts {d}/torn"),
    "non-UTF-8 inside quotes": Case(f"{CONTACTS} {{d}}/quoted.csv", 2, "quoted.csv: line 3"),
    "non-UTF-8 header": Case(f"{CONTACTS} {{d}}/header.csv", 2, "header.csv: the header"),
    "start not an instant": Case(f"{CONTACTS} {{d}}/good.csv --start soon --end x", 2, "--start"),
    "start without end": Case(f"{CONTACTS} {{d}}/good.csv --start 2026-10-01", 2, "both --start"),
    "two centuries": Case(f"{CONTACTS} {{d}}/good.csv {WINDOW}", 2, "max_window_days (400)"),
    "huge threshold": Case(
        f"{CONTACTS} {{d}}/good.csv --sl-threshold voice=99999999999999999999999",
        2,
        "--sl-threshold",
    ),
    "unknown zone": Case(f"{CONTACTS} {{d}}/good.csv --tz Mars/Olympus", 2, "Mars/Olympus"),
    "out under a file": Case("build --contacts {d}/good.csv --out {d}/good.csv/o", 2, "good.csv/o"),
    "all quarantined": Case(f"{CONTACTS} {{d}}/yesterday.csv {DAY}", 1, "1 of 1 rows quarantined"),
    "a non-UTF-8 line": Case(f"{CONTACTS} {{d}}/latin1.csv", 1, "1 of 4 rows quarantined"),
    # callbacks and callback-metrics
    "attempts missing": Case(f"{CALLBACKS} {{d}}/missing.csv", 2, "--attempts: no such file"),
    "attempts no columns": Case(f"{CALLBACKS} {{d}}/nocolumns.csv", 2, "--attempts {d}/nocol"),
    "attempts torn parquet": Case(f"{CALLBACKS} {{d}}/torn.parquet", 2, "--attempts {d}/torn"),
    "attempts all quarantined": Case(f"{CALLBACKS} {{d}}/undated.parquet {DAY}", 1, "quarantined"),
    "attempts two centuries": Case(f"{CALLBACKS} {{d}}/attempts.parquet {WINDOW}", 2, "400"),
    "metrics bad begin": Case("callback-metrics --begin soon --end 2026-10-02", 2, "--begin"),
    "metrics no store": Case(f"{METRICS} --store {{d}}/nothing", 2, "--store {d}/nothing"),
    "metrics torn store": Case(f"{METRICS} --store {{d}}/cb-torn", 2, "store is damaged"),
    "metrics log holds []": Case(f"{METRICS} --store {{d}}/cb-layout", 2, "--store {d}/cb-layout"),
    "metrics torn attempts": Case(f"{METRICS} --attempts {{d}}/torn.parquet", 2, "--attempts"),
    "metrics no JSON at all": Case(f"{METRICS} --attempts {{d}}/notjson.ndjson", 2, "notjson"),
    # export and report
    "export no table": Case("export contact-volume --store {d}/nothing", 2, "--store {d}/nothing"),
    "export forecast kind": Case("export forecast --store {d}/cb --out {d}/f.txt", 2, "--store"),
    "export unknown profile": Case("export vendor nope --store {d}/cb --out {d}/v", 2, "'nope'"),
    "report no store": Case("report --store {d}/nothing --out {d}/r.html", 2, "nothing"),
    # serve (never starts listening in these cases)
    "serve port out of range": Case("serve --port 70000", 2, "--port"),
    "serve no credentials": Case("serve", 2, "serve: no credentials"),
    "serve open address without TLS": Case(
        "serve --host 0.0.0.0", 2, "serve.certfile", {"WFM_SERVE__TOKENS": '["' + "t" * 40 + '"]'}
    ),
    # reconcile
    "reconcile bad start": Case("reconcile --start soon --end 2026-10-02", 2, "--start 'soon'"),
    "reconcile no end": Case("reconcile --start 2026-10-01", 2, "Missing option '--end'"),
    # configuration
    "config not TOML": Case("config show --config {d}/bad.toml", 2, "bad.toml: not valid TOML"),
    "config unknown key": Case("run --config {d}/unknown.toml", 2, "build.foo"),
    "config file missing": Case("verify --config {d}/missing.toml", 2, "missing.toml"),
    "config bound 0": Case("run --config {d}/duration.toml", 2, "build.max_duration_hours"),
    "WFM_BUILD not JSON": Case("run", 2, "WFM_BUILD is not valid JSON", {"WFM_BUILD": "{bad"}),
    "WFM_STORE not JSON": Case("state show", 2, "WFM_STORE", {"WFM_STORE": "[1"}),
    "run two centuries": Case(f"run --config {{d}}/closed.toml -q {WINDOW}", 2, "max_window_days"),
    # sources
    "sync closed port": Case(
        "sync --config {d}/closed.toml --stream calls", 2, "ujet/calls: gave up after 1 attempts"
    ),
    "run closed port": Case(
        "run --config {d}/closed.toml -q --start 2026-10-01 --end 2026-10-02", 2, "127.0.0.1:1"
    ),
    # interrupted
    "reset no answer": Case("state reset", 2, "pass --yes", stdin=""),  # cron: once 130
}


@pytest.fixture(autouse=True)
def _no_settings_of_the_developer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("WFM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("name", CASES)
def test_each_error_is_one_line_and_its_exit_code(files: Path, name: str) -> None:
    case = CASES[name]
    args = case.args.format(d=files).split()
    secrets = {"WFM_SOURCES__UJET__PASSWORD": PASSWORD, "WFM_SOURCES__UJET__PII_HASH_SECRET": "k"}
    code, _, err = run(args, {**secrets, **case.env}, case.stdin)
    assert code == case.code, err
    lines = [line for line in err.splitlines() if line.startswith("wfm-intervals: ")]
    assert len(lines) == 1, err
    kind = {1: "problem: ", 2: "error: "}.get(case.code, "")
    assert lines[0].startswith(f"wfm-intervals: {kind}"), lines[0]
    assert case.says.format(d=files) in lines[0]
    assert "Traceback" not in err
    assert PASSWORD not in err
    assert all(c.isprintable() and c.isascii() for c in lines[0]), lines[0]


def test_the_walk_covers_every_command() -> None:
    walked = {case.args.split()[0] for case in CASES.values()}
    assert set(COMMANDS) <= walked, set(COMMANDS) - walked


def test_a_non_utf8_line_is_quarantined_with_its_bytes_escaped(files: Path) -> None:
    out = files / "latin"
    code, _, _ = run(["build", "--contacts", str(files / "latin1.csv"), "--out", str(out),
                      "--max-quarantine-fraction", "1"])  # fmt: skip
    assert code == 0
    rows = pl.read_csv(out / "quarantine" / "contacts.csv")
    assert rows.select("record_id", "reason", "raw").rows() == [
        ("line 5", "unparsable_line", "u,c\\xe92,1,voice,q,x,y")
    ]
    assert pl.read_delta(str(out / "store" / "contacts")).height == 3


@pytest.mark.parametrize("error", [RuntimeError, PanicException])
def test_a_bug_prints_its_traceback_then_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    error: type[BaseException],
) -> None:
    """An exception no command expects (a bug) is not Python's exit 1, which here means data
    problems: the traceback (for the report), then one line naming it, and exit 2. A panic in
    Polars' Rust code is one too, though Python raises it as a ``BaseException``."""
    import engine.cli.report

    def broken(*_: object, **__: object) -> None:
        raise error("boom")

    monkeypatch.setattr(engine.cli.report, "write_report", broken)
    with pytest.raises(SystemExit) as done:
        main(["report", "--store", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Traceback")
    assert err[-1] == (
        f"wfm-intervals: internal error ({error.__name__}: boom): a bug; please report it with the "
        "traceback above"
    )
