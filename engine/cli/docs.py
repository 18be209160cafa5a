"""``docs/cli.md``, generated from the command line itself: every command's ``--help``.

Regenerate with ``make docs`` (``python -m engine.cli.docs > docs/cli.md``); a test fails when
the page is not what this module writes, so the page cannot drift from the options. The help is
formatted at a fixed width (100 columns), whatever the terminal.

Example:
    >>> page = render()
    >>> page.startswith("# Command line") and "## `wfm-intervals run`" in page
    True
"""

from __future__ import annotations

import click

from engine.cli.main import COMMANDS, cli, load

__all__ = ["WIDTH", "render"]

WIDTH = 100
_EXIT_CODES = """\
Exit codes, the same for every command: `0` ok; `1` data problems (rows quarantined over the
limit, a reconciliation beyond tolerance, a run with problems: the outputs were written); `2`
usage, configuration, source, store or I/O error, and an internal error (a bug); `130`
interrupted (Ctrl-C; SIGTERM: a service manager's stop; SIGHUP: the terminal gone; `serve`
stops on Ctrl-C, SIGTERM or SIGHUP with `0`: a server asked to stop that stopped cleanly).
Errors are one line on stderr naming the option, setting, file or URL."""


def _help(chain: list[tuple[str, click.Command]]) -> str:
    """The help of the last command of ``chain`` (name, command) as ``--help`` prints it."""
    ctx = None
    for name, command in chain:
        ctx = click.Context(command, info_name=name, parent=ctx, terminal_width=WIDTH,
                            max_content_width=WIDTH, **command.context_settings)  # fmt: skip
    assert ctx is not None
    return ctx.command.get_help(ctx)


def _sections(chain: list[tuple[str, click.Command]]) -> list[str]:
    title = " ".join(name for name, _ in chain)
    out = [f"## `{title}`\n\n```text\n{_help(chain)}\n```\n"]
    command = chain[-1][1]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            out += _sections([*chain, (name, command.commands[name])])
    return out


def render() -> str:
    """The whole page: the program's help, the exit codes, then every command in order."""
    head = [
        "# Command line\n",
        "Generated from the commands' own `--help` by `make docs` (`engine/cli/docs.py`); a "
        "test keeps it current.\n",
        _EXIT_CODES + "\n",
        f"```text\n{_help([('wfm-intervals', cli)])}\n```\n",
    ]
    root = ("wfm-intervals", cli)
    body = [s for name in sorted(COMMANDS) for s in _sections([root, (name, load(name))])]
    return "\n".join(head + body)


if __name__ == "__main__":
    click.echo(render(), nl=False)
