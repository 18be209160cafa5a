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

__all__ = ["invoke"]

#: Read by click itself (its options' ``envvar``), from the process environment only.
_CLICK_VARIABLES = ("WFM_LOG_FORMAT", "WFM_LOG_LEVEL")


def invoke(
    command: click.Command, args: Sequence[str], env: Mapping[str, str], **kwargs: Any
) -> Result:
    """``CliRunner().invoke(command, args, env=env, **kwargs)`` as the command sees it: its
    settings read from the process environment with ``env`` over it; the process's unchanged."""
    assert not set(env) & set(_CLICK_VARIABLES), f"give {_CLICK_VARIABLES} as options"
    environ = {**os.environ, **env}
    return CliRunner().invoke(command, list(args), obj={"environ": environ}, **kwargs)
