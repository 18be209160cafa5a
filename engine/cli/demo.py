"""``wfm-intervals demo``: the whole job end to end on built-in emulators, with no configuration.

It starts the four vendor emulators on free 127.0.0.1 ports (:mod:`engine.demo.stack`) serving
a month of seeded synthetic traffic that ends at the last UTC midnight, writes a throwaway
configuration pointing at them (the built-in ``demo.toml`` for the zone and the outputs; random
credentials, given as ``WFM_`` variables as a real deployment would, over the process's
environment without changing it), and runs :func:`engine.pipeline.run.run`: sync the four
sources through the real connectors, build every table, export (all vendor profiles and the
forecasting format), reconcile with Mindful's and Kore.ai's own aggregates, and write the HTML
report. The landing store and state live in a temporary directory; the tables go to ``--out``.

So every demo starts from new tables: a second demo into the same ``--out`` replaces the first
one's store (its landing store went with its temporary directory, and a run refuses to rebuild
a store from a landing store that holds none of its records). The demo marks the folders it
writes (:data:`MARK`) and refuses one holding a store it did not write.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import tomllib
import uuid
from datetime import timedelta
from pathlib import Path

import click

from engine import clock
from engine.app.config import DEMO_FILE, load_settings
from engine.cli.common import FiniteFloat, GivenPath, fail
from engine.cli.run import show_summary
from engine.demo.stack import emulators, random_secrets, write_config
from engine.durable import durable_mkdir, fsync_dir
from engine.pipeline.run import run

__all__ = ["MARK", "demo"]

#: The file that says a folder is a demo's output (its tables are replaced by the next demo).
MARK = ".wfm-demo"


def _fresh(out: Path) -> None:
    """Make ``out`` a demo's folder with no store: an earlier demo's store moved aside, then
    deleted (a kill in between leaves a hidden folder, no half store); a store the demo did not
    write is refused (exit 2)."""
    store = out / "store"
    if store.exists() and not (out / MARK).exists():
        fail(f"--out {out}: holds a store the demo did not write; give the demo its own folder")
    durable_mkdir(out)
    (out / MARK).touch()
    if store.exists():
        aside = out / f".store.old-{uuid.uuid4().hex}"
        store.rename(aside)
        fsync_dir(out)
        shutil.rmtree(aside)


@click.command()
@click.option(
    "--out",
    default=Path("demo-out"),
    show_default=True,
    type=GivenPath(path_type=Path, file_okay=False),
    help="Output directory.",
)
@click.option(
    "--days",
    default=28,
    show_default=True,
    type=click.IntRange(1, 92),
    help="Days of synthetic traffic, ending at the last UTC midnight.",
)
@click.option("--seed", default=7, show_default=True, type=click.IntRange(0), help="Random seed.")
@click.option(
    "--scale",
    default=0.05,
    show_default=True,
    type=FiniteFloat(0.001, 5.0),
    help="Traffic volume (0.05: about 450 voice and chat contacts a weekday).",
)
def demo(out: Path, days: int, seed: int, scale: float) -> None:  # fmt: skip
    """Run the whole job on built-in vendor emulators (loopback only, no configuration)."""
    now = clock.now()
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    secrets = random_secrets()
    demo = tomllib.loads(DEMO_FILE.read_text(encoding="utf-8"))
    tz = str(demo["build"]["tz"])
    click.echo(
        f"demo: {days} days of synthetic traffic ({start:%Y-%m-%d} .. {end:%Y-%m-%d}), seed "
        f"{seed}, served by UJET, Dixa, Mindful and Kore.ai emulators on 127.0.0.1"
    )
    _fresh(out)
    with (
        tempfile.TemporaryDirectory(prefix="wfm-demo-") as tmp,
        emulators(
            secrets, start=start, days=days, seed=seed, scale=scale, time_zone=tz, until=now
        ) as stack,
    ):
        config = write_config(
            Path(tmp), stack, start=start, build=demo["build"],
            output={**demo["output"], "dir": str(out.resolve())},
        )  # fmt: skip
        # the secrets as variables over the process's, read from a mapping: setting them in
        # the process is not safe beside the emulators' threads (engine.app.environment)
        settings = load_settings(config, env_file=None, environ={**os.environ, **secrets})
        try:
            summary = run(settings, start=start, end=end)
        except Exception as exc:
            fail(f"demo failed: {type(exc).__name__}: {exc}")
    show_summary(summary)
    for problem in summary.problems:
        click.echo(f"wfm-intervals: problem: {problem}", err=True)
    click.echo(f"open {out / 'report.html'} in a browser for the report")
    if summary.exit_code:
        sys.exit(summary.exit_code)
