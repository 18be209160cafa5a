"""Commands run in this process with an environment of their own, the process's left alone.

``CliRunner().invoke(env=...)`` sets ``env`` in the process environment for the call. glibc's
``setenv`` moves the environment's array when it adds a name and frees the old one, under any
thread reading it: emulator threads do (a date run's preloaded clock reads it on every timed
wait), and a date run crashed so. :func:`invoke` hands the command its environment through the
click context instead (``obj={"environ": ...}``, read by :mod:`engine.app.environment`): use it
wherever a command runs while an emulator's threads do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import click
from click.testing import CliRunner, Result

from engine import killpoint
from engine.clock import CLOCK_AT_VARIABLE
from engine.distributed.helper import STALL_VARIABLE

__all__ = ["invoke", "run_main"]

#: Read from the process environment only: by click (its options' ``envvar``), the clock, the
#: crash tests' hook, the Ray helper. Given here they would be ignored, so they are refused.
PROCESS_ONLY = frozenset(
    {"WFM_LOG_FORMAT", "WFM_LOG_LEVEL", CLOCK_AT_VARIABLE, killpoint.VARIABLE, STALL_VARIABLE}
)


def invoke(
    command: click.Command, args: Sequence[str], env: Mapping[str, str], **kwargs: Any
) -> Result:
    """``CliRunner().invoke(command, args, env=env, **kwargs)`` as the command sees it: its
    settings read from the process environment with ``env`` over it; the process's unchanged."""
    assert not set(env) & PROCESS_ONLY, f"read from the process only: {set(env) & PROCESS_ONLY}"
    environ = {**os.environ, **env}
    return CliRunner().invoke(command, list(args), obj={"environ": environ}, **kwargs)


def run_main(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[int, str, str]:
    """``wfm-intervals ARGS`` in-process as the installed command runs it (``main``: its exit
    codes and one-line errors), in ``cwd`` if given (the test's own working directory is put
    back): ``(exit code, stdout, stderr)``. ``env`` is set in the process for the call: not
    while an emulator's threads run (:func:`invoke` is for that)."""
    from engine.cli.main import main

    back = os.getcwd()
    with CliRunner().isolation(input=stdin, env=dict(env or {})) as (out, err, _):
        try:
            if cwd is not None:
                os.chdir(cwd)
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os.chdir(back)
        return code, out.getvalue().decode(), err.getvalue().decode()
