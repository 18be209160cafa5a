"""Edges of the command line: names checked before anything is done, values that are no values,
and a group given no command.

- ``sync`` checks every source and stream it is given (each once, in order) before it fetches
  anything: a bad name is exit 2 with nothing of the run committed (docs/operations.md);
- ``state reset`` refuses a source or stream that is not one (a typo would mark a stream no sync
  reads, the real cursor left as it was), and resets a source turned off or gone that has state;
- ``verify`` names the fix that works: a stream whose state file is torn is reset, which the
  next ``run`` then accepts;
- every float option refuses ``nan`` and ``inf``, every path option an empty path, ``--seed``
  a negative number: one line naming the option, exit 2, never a traceback or the working
  directory written into;
- an option of ``build``/``callbacks`` the build settings refuse (``--tz Mars/X``) is named as
  typed, never as the settings model's field;
- ``wfm-intervals``, ``state``, ``export`` and ``config`` alone print their help, as click does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import click
import pytest

from connectors.landing.check import Finding as LandingFinding
from connectors.landing.manifest import Span
from connectors.state import StateStore
from engine.cli.build import build_settings
from engine.cli.common import FiniteFloat, GivenPath
from engine.cli.main import COMMANDS, load
from engine.clock import StartedClock, use_clock
from engine.demo.callbacks import generate_attempts
from engine.demo.stack import Stack
from engine.pipeline.verify import _landing_fix
from tests.calendar import TEST_NOW
from tests.engine.run_support import clean_environment, emulators, invoke, lean_config
from tests.environment import run_main

HEADER = "source,contact_id,segment_no,channel,queue_id,offered_at,outcome\n"
ROW = "u,c1,1,voice,q,2026-10-01T09:01:00Z,abandoned\n"
#: Options of modules this change could not touch (engine/cli/build.py, export.py, serve.py,
#: run.py, reconcile.py): each to take FiniteFloat or GivenPath, then to leave this list.


def run(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """``wfm-intervals ARGS`` in-process, as the installed command, in ``cwd``."""
    return run_main(args, cwd=cwd)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("wfm-intervals: error: "), lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_environment(monkeypatch, tmp_path)


@pytest.fixture
def stack() -> Iterator[Stack]:
    with use_clock(StartedClock(TEST_NOW)), emulators() as s:
        yield s


def _nothing_synced(root: Path) -> None:
    assert StateStore(root / "state").show() == []
    assert not [p for p in (root / "landing").rglob("*") if p.is_file()]


# sync --------------------------------------------------------------------------------------


def test_sync_checks_every_name_before_it_fetches_anything(tmp_path: Path, stack: Stack) -> None:
    config = lean_config(tmp_path, stack)  # UJET and Mindful enabled, Dixa and Kore.ai not
    unknown = invoke(["sync", "--json", "ujet", "nosuch"], config)
    assert unknown.exit_code == 2
    assert "unknown source 'nosuch' (known: dixa, kore, mindful, ujet)" in one_line(unknown.stderr)
    assert unknown.stdout == ""
    _nothing_synced(tmp_path)
    stream = invoke(["sync", "--stream", "calls"], config)  # every enabled source: Mindful too
    assert stream.exit_code == 2
    assert "source 'mindful' has no stream 'calls' (streams: attempts)" in one_line(stream.stderr)
    _nothing_synced(tmp_path)
    typo = invoke(["sync", "ujet", "--stream", "call"], config)
    assert typo.exit_code == 2
    assert "no stream 'call' (streams: calls, chats)" in one_line(typo.stderr)
    off = invoke(["sync", "ujet", "dixa"], config)
    assert off.exit_code == 2
    assert "sources.dixa.enabled: the source is not enabled" in one_line(off.stderr)
    _nothing_synced(tmp_path)


def test_sync_pulls_a_name_given_twice_once(tmp_path: Path, stack: Stack) -> None:
    config = lean_config(tmp_path, stack)
    twice = invoke(["sync", "--json", "ujet", "ujet", "--stream", "calls", "--stream", "calls"],
                   config)  # fmt: skip
    assert twice.exit_code == 0, twice.output
    pulled = json.loads(twice.stdout)["pulled"]
    assert [(p["source"], p["stream"]) for p in pulled] == [("ujet", "calls")]


def test_a_later_source_s_torn_state_stops_sync_and_run_before_anything_is_fetched(
    tmp_path: Path, stack: Stack
) -> None:
    """``sync ujet mindful`` with Mindful's state file torn: UJET was synced and committed,
    then the sync stopped at Mindful (exit 2, no summary). Every stream of every source is
    checked first now: nothing is fetched, nothing committed; ``run`` likewise."""
    config = lean_config(tmp_path, stack)
    assert invoke(["run", "--quiet"], config).exit_code == 0
    torn = tmp_path / "state" / "mindful" / "attempts.json"
    torn.write_bytes(torn.read_bytes()[:30])
    cursors = (tmp_path / "state" / "ujet" / "calls.json").read_bytes()
    requests = stack.ujet.stats.requests
    for command in (["sync", "ujet", "mindful"], ["run", "--quiet"]):
        refused = invoke(command, config)
        assert refused.exit_code == 2, refused.output
        assert "mindful/attempts" in one_line(refused.stderr)
        assert "state reset mindful attempts" in one_line(refused.stderr)
    assert stack.ujet.stats.requests == requests  # nothing fetched
    assert (tmp_path / "state" / "ujet" / "calls.json").read_bytes() == cursors


# state reset -------------------------------------------------------------------------------


@pytest.fixture
def states(tmp_path: Path) -> tuple[Path, StateStore]:
    """A configuration with no source enabled, and the states of UJET's calls (a registered
    source turned off) and of a source no longer registered."""
    config = tmp_path / "wfm.toml"
    config.write_text(f"[store]\nlanding = '{tmp_path}/landing'\nstate = '{tmp_path}/state'\n")
    store = StateStore(tmp_path / "state")
    for source, stream in (("ujet", "calls"), ("oldvendor", "tickets")):
        store.commit(source, stream, TEST_NOW - timedelta(hours=1), lookback=timedelta(0))
    return config, store


@pytest.mark.parametrize(
    ("names", "says"),
    [
        (["ujet", "call"], "state reset: ujet has no stream 'call' (streams: calls, chats)"),
        (["ujte"], "state reset: unknown source 'ujte' (known: dixa, kore, mindful, oldvendor,"),
        ([""], "state reset: unknown source ''"),
        (["oldvendor", "calls"], "state reset: oldvendor has no stream 'calls' (streams: tickets)"),
    ],
)
@pytest.mark.parametrize("since", [[], ["--since", "2026-11-01"]])
def test_state_reset_refuses_a_name_that_is_not_one(
    tmp_path: Path, states: tuple[Path, StateStore], names: list[str], says: str, since: list[str]
) -> None:
    config, store = states
    before = sorted(p.name for p in store.root.rglob("*"))
    code, out, err = run(["state", "reset", "--yes", *names, *since, "--config", str(config)],
                         tmp_path)  # fmt: skip
    assert code == 2, out + err
    assert one_line(err).startswith(f"wfm-intervals: error: {says}")
    assert sorted(p.name for p in store.root.rglob("*")) == before  # no marker, nothing reset
    assert out == ""


def test_state_reset_of_a_source_turned_off_or_gone(
    tmp_path: Path, states: tuple[Path, StateStore]
) -> None:
    config, store = states
    for names in (["ujet", "calls"], ["oldvendor"], ["dixa", "conversations"]):
        code, out, err = run(["state", "reset", "--yes", *names, "--config", str(config)],
                             tmp_path)  # fmt: skip
        assert code == 0, err
        assert out.startswith(f"reset {'/'.join(names)}"), out
    assert store.show() == []


# verify ------------------------------------------------------------------------------------


def test_verify_names_the_reset_a_torn_state_file_needs(tmp_path: Path, stack: Stack) -> None:
    config = lean_config(tmp_path, stack)
    first = invoke(["run", "--quiet"], config)
    assert first.exit_code == 0, first.output
    state = tmp_path / "state" / "ujet" / "calls.json"
    state.write_bytes(state.read_bytes()[:30])  # torn
    found = invoke(["verify", "--json"], config)
    assert found.exit_code == 2
    reset = "`wfm-intervals state reset ujet calls --yes`"
    fixes = {f["check"]: f["fix"] for f in json.loads(found.stdout)["findings"]}
    assert fixes["state ujet/calls"].startswith(reset)
    assert fixes["landing ujet/calls"].startswith(reset)
    refused = invoke(["run", "--quiet"], config)  # as verify says: the run refuses it
    assert refused.exit_code == 2
    assert "state reset ujet calls --yes" in refused.stderr
    assert invoke(["state", "reset", "ujet", "calls", "--yes"], config).exit_code == 0
    again = invoke(["run", "--quiet"], config)
    assert again.exit_code == 0, again.output
    assert invoke(["verify"], config).exit_code == 0


def _lost(problem: str, *, start: bool) -> LandingFinding:
    span = Span(start=TEST_NOW if start else None, end=TEST_NOW, committed=None)
    return LandingFinding(problem, Path("f.parquet"), "lost", span)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("problems", "cursor", "fix"),
    [
        ([_lost("missing", start=True)], True, "wfm-intervals run"),
        ([_lost("damaged", start=True), _lost("unlisted", start=True)], True, "wfm-intervals run"),
        ([_lost("manifest_damaged", start=True)], True, "wfm-intervals run"),
        ([_lost("missing", start=False)], False, "wfm-intervals run"),  # the stream starts over
        ([_lost("missing", start=False)], True, "`wfm-intervals state reset"),
        ([_lost("state_unreadable", start=True)], True, "`wfm-intervals state reset"),
        ([_lost("state_missing", start=True), _lost("missing", start=True)], False, "`wfm-in"),
        ([_lost("landing_missing", start=True)], True, "restore the landing store, or `"),
    ],
)
def test_each_landing_problem_gets_the_fix_the_next_sync_accepts(
    problems: list[LandingFinding], cursor: bool, fix: str
) -> None:
    assert _landing_fix(problems, "ujet", "calls", cursor=cursor).startswith(fix)


# values that are no values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        ("build --contacts {d}/good.csv --out {d}/o --max-quarantine-fraction nan", "--max-q"),
        ("build --contacts {d}/good.csv --out {d}/o --max-quarantine-fraction -inf", "--max-q"),
        ("callbacks --attempts {d}/good.csv --out {d}/o --max-quarantine-fraction nan", "--max"),
        ("report --store {d} --out {d}/r.html --sl-target nan", "--sl-target"),
        ("demo --days 1 --scale nan --out {d}/demo", "--scale"),
        ("demo --days 1 --scale inf --out {d}/demo", "--scale"),
        ("demo --days 1 --seed -1 --out {d}/demo", "--seed"),
        ("report --store {d} --out ", "--out"),
        ("report --store  --out {d}/r.html", "--store"),
        ("demo --days 1 --out ", "--out"),
        ("callbacks --attempts {d}/good.csv --out ", "--out"),
        ("callback-metrics --begin 2026-10-01 --end 2026-10-02 --store ", "--store"),
        ("state show --config ", "--config"),
    ],
)
def test_a_value_that_is_no_value_is_one_line_naming_the_option(
    tmp_path: Path, args: str, option: str
) -> None:
    (tmp_path / "good.csv").write_text(HEADER + ROW)
    work = tmp_path / "work"
    work.mkdir()
    code, out, err = run(args.format(d=tmp_path).split(" "), work)
    assert code == 2, out + err
    assert f"Invalid value for '{option}" in one_line(err)
    assert "Traceback" not in err
    assert list(work.iterdir()) == []  # nothing written into the working directory
    assert not (tmp_path / "demo").exists()
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    ["build --contacts {d}/good.csv --out {d}/o --org-id ",
     "export contact-volume --store {d}/o --org-id "],
)  # fmt: skip
def test_an_empty_org_id_is_refused_as_the_settings_file_refuses_it(
    tmp_path: Path, args: str
) -> None:
    """``build --org-id ""`` wrote ``"orgId": ""``; ``export contact-volume --org-id ""`` used
    the default without a word; ``[output] org_id = ""`` was refused. Now all refuse it."""
    (tmp_path / "good.csv").write_text(HEADER + ROW)
    assert (
        run(f"build --contacts {tmp_path}/good.csv --out {tmp_path}/o".split(" "), tmp_path)[0] == 0
    )
    code, _, err = run(args.format(d=tmp_path).split(" "), tmp_path)
    assert code == 2
    assert (
        one_line(err)
        == "wfm-intervals: error: --org-id: an empty orgId (give the organisation's id)"
    )


def test_callback_metrics_checks_its_zone_without_a_step(tmp_path: Path) -> None:
    """``--tz Nowhere/X`` passed, exit 0, when no ``--step`` used it."""
    args = "callback-metrics --begin 2026-10-01 --end 2026-10-02 --tz Nowhere/X --store"
    code, _, err = run([*args.split(" "), str(tmp_path)], tmp_path)
    assert code == 2
    assert one_line(err) == "wfm-intervals: error: --tz: unknown IANA time zone 'Nowhere/X'"


@pytest.mark.parametrize("command", ["build", "callbacks"])
def test_a_bad_zone_of_build_or_callbacks_names_the_option_as_typed(
    command: str, tmp_path: Path
) -> None:
    """``--tz Mars/X`` is named ``--tz``, as typed (it said ``invalid setting tz: Value
    error, ...``, the field of the settings model)."""
    if command == "build":
        (tmp_path / "c.csv").write_text(HEADER + ROW)
        given = ["--contacts", str(tmp_path / "c.csv")]
    else:
        generate_attempts(days=1, scale=0.1).write_parquet(tmp_path / "a.parquet")
        given = ["--attempts", str(tmp_path / "a.parquet")]
    args = [command, *given, "--out", str(tmp_path / "o"), "--tz", "Mars/X"]
    code, _, err = run(args, tmp_path)
    assert code == 2
    assert one_line(err) == "wfm-intervals: error: --tz: unknown IANA time zone 'Mars/X'"


@pytest.mark.parametrize(
    ("field", "value", "option"),
    [
        ("interval_minutes", 7, "--interval"),
        ("tz", "Mars/X", "--tz"),
        ("attribution", "start", "--attribution"),
        ("sl_formula", "nope", "--sl-formula"),
        ("sl_comparator", "=", "--sl-comparator"),
        ("sl_default_ms", {"vioce": 1}, "--sl-threshold"),
        ("sl_overrides", ({"queue_id": "q", "threshold_ms": -1},), "--sl-threshold"),
        ("use_vendor_threshold", "sometimes", "--use-vendor-threshold"),
        ("short_abandon_ms", -1, "--short-abandon-ms"),
        ("max_duration_hours", 0, "--max-duration-hours"),
    ],
)
def test_every_option_into_the_build_settings_is_named_as_typed(
    field: str, value: object, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever option of ``build``/``callbacks`` the settings model refuses, the one line
    names that option, never the model's field."""
    with pytest.raises(SystemExit) as exited:
        build_settings(**{field: value})
    assert exited.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"wfm-intervals: error: {option}: "), line
    assert "Value error" not in line


def _options(command: click.Command, path: str) -> Iterator[tuple[str, click.Parameter]]:
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, f"{path} {name}")
    for param in command.params:
        yield f"{path} {param.opts[0]}", param


def test_every_float_and_path_option_takes_the_checked_types() -> None:
    offenders = set()
    for name in COMMANDS:
        for where, param in _options(load(name), name):
            kind = param.type
            loose_float = isinstance(kind, click.types.FloatParamType) and not isinstance(
                kind, FiniteFloat
            )
            if loose_float or (isinstance(kind, click.Path) and not isinstance(kind, GivenPath)):
                offenders.add(where)
    assert not offenders, offenders


# a group given no command ------------------------------------------------------------------


@pytest.mark.parametrize("group", [[], ["state"], ["export"], ["config"]])
def test_a_group_alone_prints_its_help_as_click_does(tmp_path: Path, group: list[str]) -> None:
    code, out, err = run(group, tmp_path)
    assert code == 2  # click's own, as for any usage error: no command was given
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"Usage: {' '.join(['wfm-intervals', *group])} [OPTIONS] COMMAND [ARGS]..."
    assert "Commands:" in lines
    assert "wfm-intervals: error" not in err
    assert err == run([*group, "--help"], tmp_path)[1]  # the help --help prints
