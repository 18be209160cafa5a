"""The ``wfm-intervals`` command line: the group, and where each command lives.

Commands are imported when they are run, not when the program starts: ``wfm-intervals --help``
lists every command from :data:`COMMANDS` (its module, its object and its one-line help)
without importing Polars, the connectors or the report's charting library.
``tests/engine/test_cli.py`` checks that each entry loads and that its help line is the
command's own.

Exit codes: 0 ok; 1 data problems found; 2 usage, configuration or I/O error (with a one-line
message naming the setting, file or URL, never a secret).

Example:
    $ wfm-intervals build --contacts contacts.parquet --out out/ --tz Europe/London
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, MutableMapping
from types import FrameType
from typing import Final, NamedTuple

import click

from engine.cli import interrupted_line, stop_outside_a_command
from engine.errors import OutputClosedError, WfmError, printable

__all__ = ["ALLOCATOR_VARIABLE", "COMMANDS", "POLARS_DEFAULTS", "PROMPT_RETURN", "RETURN_AT_ONCE",
           "STOP_SIGNALS", "Command", "Terminated", "allocator_settings", "cli", "command_of",
           "main", "terminate_as_interrupt"]  # fmt: skip

#: Where Polars' allocator (jemalloc) takes its settings from, once, when Polars is imported
#: (Polars puts its own first; a later setting of the same name wins).
ALLOCATOR_VARIABLE = "_RJEM_MALLOC_CONF"


class Command(NamedTuple):
    """Where a command lives, and its one-line help (shown by ``--help`` without importing it)."""

    module: str
    attribute: str
    help: str


#: Every command by name.
COMMANDS: dict[str, Command] = {
    "build": Command(
        "engine.cli.build", "build", "Build the interval tables from a canonical contacts file."
    ),
    "callback-metrics": Command(
        "engine.cli.callbacks",
        "callback_metrics_command",
        "Print the callback metrics document (Mindful's seed-000 shape) as JSON.",
    ),
    "callbacks": Command(
        "engine.cli.callbacks",
        "callbacks",
        "Build the callback interval and retry outcome tables from callback attempts.",
    ),
    "config": Command("engine.cli.sync", "config_group", "Show the effective configuration."),
    "demo": Command(
        "engine.cli.demo",
        "demo",
        "Run the whole job on built-in vendor emulators (loopback only, no configuration).",
    ),
    "export": Command("engine.cli.export", "export", "Export the volume table in other shapes."),
    "reconcile": Command(
        "engine.cli.reconcile",
        "reconcile_command",
        "Compare our numbers with Mindful's and Kore.ai's own for a window.",
    ),
    "report": Command(
        "engine.cli.report",
        "report",
        "Write a self-contained HTML report (charts, tables, data quality) of a built store.",
    ),
    "run": Command(
        "engine.cli.run",
        "run_command",
        "Sync, rebuild, build, export, reconcile and report: the whole job, once.",
    ),
    "serve": Command(
        "engine.cli.serve",
        "serve",
        "Serve the Kore.ai and Mindful APIs over the committed store (Ctrl-C stops).",
    ),
    "state": Command("engine.cli.sync", "state_group", "Show or reset the incremental sync state."),
    "sync": Command(
        "engine.cli.sync",
        "sync",
        "Pull SOURCES (default: every enabled source) into the landing store.",
    ),
    "verify": Command(
        "engine.cli.verify",
        "verify_command",
        "Check the landing store, the state and the store against each other (writes nothing).",
    ),
}


def load(name: str) -> click.Command:
    """Import the command called ``name`` (a ``KeyError`` for an unknown name)."""
    where = COMMANDS[name]
    command = getattr(importlib.import_module(where.module), where.attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{where.module}.{where.attribute} is not a click command")
    return command


class _Commands(click.Group):
    """A group that imports a command only when it is invoked or asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load(cmd_name) if cmd_name in COMMANDS else None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:  # click ends a broken pipe with exit 1 (here: data problems)
            if exc.errno != errno.EPIPE:
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush fails
            msg = "stdout was closed before the output was written (broken pipe)"
            raise OutputClosedError(msg) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name].help) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wfm-intervals")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="WFM_LOG_FORMAT",
    help="Log lines on stderr: key=value text, or one JSON object per line [$WFM_LOG_FORMAT].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="WFM_LOG_LEVEL",
    help="The lowest level logged [$WFM_LOG_LEVEL].",
)
@click.pass_context
def cli(ctx: click.Context, log_format: str, log_level: str) -> None:
    """wfm-intervals: contact-centre records to exact 15-minute interval tables."""
    from engine.app import logs  # noqa: PLC0415 - standard library only; loaded with a command

    logs.configure("json" if log_format == "json" else "text", log_level)
    if isinstance(ctx.obj, Mapping) and ctx.obj.get("environ") is not None:
        # a caller's environment for the command's WFM_ variables (engine.app.environment)
        from engine.app.environment import reading  # noqa: PLC0415 - only when given

        ctx.with_resource(reading(ctx.obj["environ"]))


def _object_storage(args: list[str]) -> str | None:
    """An option naming an object-store location (``s3://``) where only a local path works:
    any but ``--out`` of ``build`` and ``callbacks`` (docs/scale-out.md says why)."""
    writes_out = command_of(args) in {"build", "callbacks"}
    for i, arg in enumerate(args):
        option, _, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        option = option or (args[i - 1] if i else "")
        allowed = option == "--out" and writes_out
        if value.startswith("s3:/") and not allowed:
            return f"{option} {value}".strip()
    return None


#: What Polars puts first in ``ALLOCATOR_VARIABLE`` when it is imported (``polars/__init__.py``;
#: with ``POLARS_THP=1``, transparent huge pages after it).
POLARS_DEFAULTS: Final = "dirty_decay_ms:500,muzzy_decay_ms:1000"
#: The commands of the nightly job, whose memory is what a machine is sized for and whose time
#: is the vendors' (their rate limits): Polars' allocator hands each freed page back at once.
PROMPT_RETURN: Final = frozenset({"run", "demo"})
#: jemalloc's setting for that: no freed page kept for reuse (``docs/operations.md``, "Memory").
RETURN_AT_ONCE: Final = "dirty_decay_ms:0,muzzy_decay_ms:0"


def allocator_settings(
    environ: MutableMapping[str, str], cpus: int | None, command: str | None = None
) -> None:
    """Give Polars' allocator one arena for every two CPUs the command may use (``narenas``),
    and for a command of the nightly job (:data:`PROMPT_RETURN`) freed pages handed back at
    once, in ``environ``, before Polars is imported; what the operator set in
    ``ALLOCATOR_VARIABLE`` comes after, so it wins.

    jemalloc's default is four arenas a CPU, made for servers with many more threads than
    cores; Polars runs a worker per core beside the interpreter's thread, and the pages one
    arena frees are not reused for another's allocations. Measured on 2 cores
    (``docs/operations.md``, "Memory"), one arena against the default eight: a first run at
    272 days peaks 20-70 MiB lower (two arenas: 30-50), the 10M-row ``callbacks`` runs 2-6 %
    faster in ~95 MiB less, ``build`` as fast in ~120 MiB less. Two workers an arena is the
    sharing measured; a larger machine keeps it at that.

    Polars keeps a freed page ~1.5 s for reuse; each step of a ``run`` then stands on what the
    steps before it freed. Handed back at once, a first run at 272 days (299,327 records
    pulled) peaked at 296-300 MiB instead of 340-352 (1.01-1.02 KB a record instead of
    1.16-1.20), a night's run at 212-229 MiB instead of 227-276, for a median ~7-8 % more CPU
    (alternated nightly benchmarks). The batch commands (``build``, ``callbacks`` of millions
    of rows) keep Polars' reuse: their time is CPU.

    Example:
        >>> environ = {ALLOCATOR_VARIABLE: "dirty_decay_ms:0"}
        >>> allocator_settings(environ, 8)
        >>> environ[ALLOCATOR_VARIABLE]
        'narenas:4,dirty_decay_ms:0'
        >>> allocator_settings(environ := {}, 2, "run")
        >>> environ[ALLOCATOR_VARIABLE]
        'narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0'
    """
    arenas = max(1, -(-(cpus or 1) // 2))
    prompt = RETURN_AT_ONCE if command in PROMPT_RETURN else ""
    given = _operators(environ.get(ALLOCATOR_VARIABLE, ""))
    environ[ALLOCATOR_VARIABLE] = ",".join(v for v in (f"narenas:{arenas}", prompt, given) if v)


def _operators(value: str) -> str:
    """What the operator set in ``ALLOCATOR_VARIABLE``: ``value`` without the defaults a
    parent process's Polars put in front of it. Importing Polars writes its own settings into
    the environment, which every process started from it inherits (Airflow's, Dagster's, a
    test's, a benchmark's): taken for the operator's, they would undo ours; Polars puts them
    first again in this process.

    Example:
        >>> _operators("dirty_decay_ms:500,muzzy_decay_ms:1000,narenas:3")
        'narenas:3'
    """
    for polars_own in (f"{POLARS_DEFAULTS},thp:always,metadata_thp:always", POLARS_DEFAULTS):
        if value == polars_own or value.startswith(polars_own + ","):
            return value[len(polars_own) + 1 :]
    return value


def command_of(args: list[str]) -> str | None:
    """The command a command line names: its first word that is one (the group's options and
    their values come before it, and none is a command's name).

    Example:
        >>> command_of(["--log-format", "json", "run", "--config", "build"])
        'run'
    """
    return next((arg for arg in args if arg in COMMANDS), None)


#: The signals that stop a command as an interruption: a service manager's stop (SIGTERM) and
#: a hang-up (SIGHUP: the terminal or the SSH session the command ran from went away).
STOP_SIGNALS: Final = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: a service manager stopping the job (systemd at
    ``TimeoutStartSec``, a scheduler's timeout, Kubernetes, ``kill``), or the terminal the
    command ran from gone (a dropped SSH session). A :class:`KeyboardInterrupt`, so that every
    clean-up a Ctrl-C runs (temporary files removed, nothing half-committed, the lock given
    back) runs for it too. ``args[0]`` is the signal's number."""


#: The signals that interrupted the running command (SIGINT too): raised in Python code that
#: Polars' Rust code called, an interruption reaches main() as a panic of that code.
_RECEIVED: list[int] = []


def _terminated(signum: int, frame: FrameType | None) -> None:
    _RECEIVED.append(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, each of :data:`STOP_SIGNALS` raises :class:`Terminated` in the main
    thread, as SIGINT raises :class:`KeyboardInterrupt`; the previous handlers are put back
    after it. Python's default would end the process at once, with no line for the operator
    and no clean-up. Off the main thread (where no handler can be set), the block runs as it
    is; a signal the parent ignored (``nohup`` ignores SIGHUP) stays ignored. They and SIGINT
    are noted as they arrive (:data:`_RECEIVED`).

    Example:
        >>> with terminate_as_interrupt():
        ...     signal.getsignal(signal.SIGTERM) is _terminated
        True
        >>> signal.getsignal(signal.SIGTERM) is _terminated
        False
    """
    _RECEIVED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        number: signal.signal(number, _terminated)
        for number in STOP_SIGNALS
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    # Python's own, or the console script's until now (engine.cli): noted
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, stop_outside_a_command):
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _terminated)
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back from here
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or while handling, and so on."""
    seen: set[int] = set()
    at: BaseException | None = exc
    while at is not None and id(at) not in seen:
        seen.add(id(at))
        yield at
        at = at.__cause__ or at.__context__


def _interrupted() -> int:
    """Say that the command was interrupted (by which signal, if not Ctrl-C); 130."""
    _say(interrupted_line(_RECEIVED[0] if _RECEIVED else signal.SIGINT))
    return 130


def _say(line: str) -> None:
    """``line`` on stderr, if it can be written (after a hang-up: EIO, the exit code stays)."""
    with contextlib.suppress(OSError, ValueError):
        click.echo(line, err=True)


def main(args: list[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Console entry point (``args``: the command line, default ``sys.argv[1:]``; ``environ``:
    the environment the settings' ``WFM_`` variables are read from, default the process's: a
    caller in this process gives its own without changing the process's).

    Exit 130 when interrupted (Ctrl-C, SIGTERM or SIGHUP: :func:`terminate_as_interrupt`), as
    shells expect, also when stderr is gone (a hang-up's terminal); an I/O error (a full disk:
    :func:`engine.errors.naming` names the file) is one line and exit 2; a usage error (an
    unknown option, a bad value, a missing file) is one line naming the option, and exit 2 (a
    group given no command: its whole help on stderr, as click prints it). An unexpected
    exception (a bug) prints its traceback, then one line, and exits 2, never Python's 1, which
    here means data problems (a panic in Polars' Rust code included). A line that cannot be
    written (stderr gone) leaves the exit code as it is.
    """
    argv = sys.argv[1:] if args is None else args
    if found := _object_storage(argv):
        _say(f"wfm-intervals: error: {found}: object storage is not supported here")
        raise SystemExit(2)
    if "polars" not in sys.modules:  # read once, when Polars is imported: later, too late
        mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None  # as Polars
        allocator_settings(os.environ, len(mine) if mine else os.cpu_count(), command_of(argv))
    try:
        given = None if environ is None else {"environ": environ}
        with terminate_as_interrupt():
            cli(args, prog_name="wfm-intervals", standalone_mode=False, obj=given)
    except SystemExit:  # a command's own exit code
        raise
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except BaseException as exc:
        raise SystemExit(_failed(exc)) from None


def _failed(exc: BaseException) -> int:
    """Say why the command failed with ``exc``, in one line; its exit code (see :func:`main`)."""
    interrupted = (KeyboardInterrupt, click.exceptions.Abort)  # click wraps one in the other
    if _RECEIVED or any(isinstance(e, interrupted) for e in _causes(exc)):
        return _interrupted()  # or what followed one: a Rust panic around it, EIO on stderr
    if isinstance(exc, click.exceptions.UsageError):
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        text = exc.format_message().replace("\n", " ")
        message = printable(ValueError(text), limit=500).rstrip(".")
        # a group without its command: its whole help, on stderr, exit 2 (click's own since 8.2)
        bare = isinstance(exc, click.exceptions.NoArgsIsHelpError)
        _say(exc.format_message() if bare else f"wfm-intervals: error: {message}{where}")
        return exc.exit_code
    if isinstance(exc, click.exceptions.ClickException):
        _say(f"wfm-intervals: error: {printable(ValueError(exc.format_message()))}")
        return exc.exit_code
    if isinstance(exc, WfmError):  # raised on purpose, and no command turned it into its line
        _say(f"wfm-intervals: {'problem' if exc.exit_code == 1 else 'error'}: {printable(exc)}")
        return exc.exit_code
    if isinstance(exc, OSError):  # an I/O error no command said: a full disk, a quota
        reason = printable(exc) if exc.strerror is None else exc.strerror
        where = "" if exc.filename is None else f": {exc.filename}"
        _say(f"wfm-intervals: error: {printable(OSError(reason + where), 500)}")
        return 2
    # a bug: never Python's exit 1 (data problems); a panic in Polars' Rust code reaches Python
    # as a BaseException, not an Exception
    _say("".join(traceback.format_exception(exc)).rstrip())
    name = type(exc).__name__
    _say(f"wfm-intervals: internal error ({name}: {printable(exc)}): a bug; please report it "
         "with the traceback above")  # fmt: skip
    return 2


if __name__ == "__main__":  # ``python -m engine.cli.main`` (the crash tests start it so)
    main()
