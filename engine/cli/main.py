"""The ``wfm-intervals`` command line.

Exit codes: 0 ok; 1 data problems found; 2 usage, configuration or I/O error (with a one-line
message naming the setting, file or URL, never a secret).

Example:
    $ wfm-intervals build --contacts contacts.parquet --out out/ --tz Europe/London
"""

from __future__ import annotations

import click

from engine.cli import build, callbacks, demo, export, reconcile, report, run, sync

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wfm-intervals")
def cli() -> None:
    """wfm-intervals: contact-centre records to exact 15-minute interval tables."""


for command in (
    build.build,
    callbacks.callbacks,
    callbacks.callback_metrics_command,
    demo.demo,
    export.export,
    reconcile.reconcile_command,
    report.report,
    run.run_command,
    sync.sync,
    sync.config_group,
    sync.state_group,
):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli(prog_name="wfm-intervals")
