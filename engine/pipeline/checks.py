"""Our numbers against the vendors' own for a window: what ``reconcile`` and ``run`` compare.

Two checks, each run when its source is enabled and reported as ``skipped`` otherwise:

* ``mindful``: our callback metrics document (:func:`engine.tables.callback_metrics.document` over
  our
  canonical attempts) against Mindful's (:func:`connectors.vendors.mindful.client.fetch_metrics`),
  field by
  field (:func:`engine.tables.compare.compare_documents`);
* ``kore``: our volume table of the window, built from our canonical contacts the way Kore.ai
  aggregates (its interval length, UTC, attribution at arrival; the other build settings as
  configured), against the Kore.ai rows (:func:`engine.pipeline.kore.reconcile_kore`).

Ours come from a built store (``store/contacts``, ``store/callback_attempts``) or are rebuilt
from the landing store (:func:`load_inputs`); the Kore.ai rows are always the landed ones.
Tolerances are absolute, per field or pattern (:mod:`engine.tables.compare`); unlisted fields are
compared exactly. With Kore.ai durations in seconds, ``*_ms`` fields get 500 ms (the vendor's
rounding) unless a tolerance is given for them. The result, :class:`Reconciliation`, is written
as ``reconcile.json`` (:func:`write_reconciliation`), which the HTML report renders.

Example:
    ``write_reconciliation(reconcile(settings, load_inputs(settings), window=w), Path("out"))``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from connectors.normalise import rebuild
from connectors.state import StateStore, parse_utc
from connectors.vendors.kore.client import KORE, KoreSettings
from connectors.vendors.mindful.client import MindfulSettings, fetch_metrics
from engine import clock
from engine.app.config import AppSettings
from engine.app.sources import connector
from engine.errors import InputFileError
from engine.interval import Window, snap_window
from engine.output import delta
from engine.output import files as export
from engine.output.inputs import read_table
from engine.output.store import scan_requests
from engine.pipeline.kore import reconcile_kore
from engine.pipeline.sources import canonical_frames
from engine.pipeline.window import Canonical, requested
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS
from engine.tables import callvolume
from engine.tables.callback_metrics import document
from engine.tables.callback_requests import requests
from engine.tables.callvolume import ADDITIVE
from engine.tables.compare import DIFFERENCE_COLUMNS, compare_documents

__all__ = [
    "Check",
    "Inputs",
    "Reconciliation",
    "load_inputs",
    "reconcile",
    "run_inputs",
    "synced_window",
    "tolerances",
    "write_reconciliation",
]

#: ``ok``: no difference; ``within_tolerance``: differences, none beyond its tolerance;
#: ``out_of_tolerance``: at least one beyond; ``skipped``: not run (see the check's note).
Status = Literal["ok", "within_tolerance", "out_of_tolerance", "skipped"]
_COMPARES: Final = {
    "mindful": "Mindful's callback metrics document, field by field",
    "kore": "interval volume, interval x queue x channel",
}
_NO_CONTACTS: Final = pl.DataFrame(schema=CONTACTS)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NO_ATTEMPTS: Final = pl.DataFrame(schema=CALLBACK_ATTEMPTS)
#: The keys of every difference in ``reconcile.json`` (after ``source``).
_DIFF_KEYS: Final = (*callvolume.KEYS, *DIFFERENCE_COLUMNS)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Check:
    """One comparison: what, over which window, and how it went."""

    source: str
    compares: str
    status: Status = "skipped"
    window_start: str | None = None
    window_end: str | None = None
    compared: int = 0  #: document fields, or interval x queue x channel rows
    differences: int = 0
    out_of_tolerance: int = 0
    note: str = ""


@dataclass
class Reconciliation:
    """Every check, and every difference found (one dict each, ``source`` first)."""

    window: Window
    checks: list[Check]
    differences: list[dict[str, Any]] = field(default_factory=list)
    generated_at: datetime = field(default_factory=clock.now)
    files: list[Path] = field(default_factory=list)  #: written besides ``reconcile.json``

    @property
    def ok(self) -> bool:
        """Every difference is within its tolerance."""
        return all(c.out_of_tolerance == 0 for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """The ``reconcile.json`` document (scalars, then ``checks`` and ``differences``)."""
        return {
            "generated_at": _iso(self.generated_at),
            "window_start": _iso(self.window[0]),
            "window_end": _iso(self.window[1]),
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "differences": self.differences,
        }


@dataclass(frozen=True)
class Inputs:
    """Our canonical contacts and callback requests, and the Kore.ai rows (lazy)."""

    contacts: pl.LazyFrame
    requests: pl.LazyFrame
    kore_rows: pl.LazyFrame | None


def _table_dir(store: Path, name: str) -> Path:
    directory = store / "store" / name
    if not delta.is_table(directory):
        msg = f"--store {store}: no store/{name} (run `wfm-intervals run` or `build` first)"
        raise InputFileError(msg)
    return directory


def load_inputs(settings: AppSettings, *, store: Path | None = None) -> Inputs:
    """Our side from ``store`` (a built output directory) or the landing store, and Kore.ai's.

    Raises:
        InputFileError: the store, or the landing store an enabled source needs, is missing.
    """
    enabled = settings.enabled_sources()
    landing = settings.store.landing
    needs_landing = store is None or "kore" in enabled
    if needs_landing and not landing.is_dir():
        msg = f"store.landing {landing}: no such directory (run `wfm-intervals sync` first)"
        raise InputFileError(msg)
    if store is not None:
        if not store.is_dir():
            raise InputFileError(f"--store {store}: no such directory")
        contacts = _NO_CONTACTS.lazy()
        if "kore" in enabled:
            contacts = read_table(_table_dir(store, "contacts"))
        reqs = requests(_NO_ATTEMPTS.lazy())
        if "mindful" in enabled:
            reqs = scan_requests(_table_dir(store, "callback_attempts"))
    else:
        found = canonical_frames(settings, enabled, "contacts")
        contacts = found[0] if found else _NO_CONTACTS.lazy()
        reqs = requests(_NO_ATTEMPTS.lazy())
        if "mindful" in enabled:
            attempts = canonical_frames(settings, ["mindful"], "callback_attempts")
            reqs = requests(attempts[0] if attempts else _NO_ATTEMPTS.lazy())
    kore = rebuild(KORE, landing, settings.source("kore")).rows if "kore" in enabled else None
    return Inputs(contacts, reqs, kore)


def run_inputs(names: Sequence[str], canon: Canonical, window: Window) -> Inputs | None:
    """What a run's reconciliation over ``window`` reads of its canonical rows ``canon`` (the
    sources ``names`` enabled; ``None``: nothing to reconcile), held apart so that the run can
    let go of the canonical rows before its exports: the contacts when Kore.ai is enabled (it
    counts a contact by its offer), the requests of the chains the window reaches (Mindful)."""
    if not {"mindful", "kore"} & set(names):
        return None
    kore = canon.kore.rows.lazy() if canon.kore else None
    contacts = canon.contacts_near([window]) if "kore" in names else None
    attempts = canon.attempts_near([window]) if "mindful" in names else None
    reached = requested(attempts, [window]) if attempts is not None else _NO_ATTEMPTS
    return Inputs(
        (contacts if contacts is not None else _NO_CONTACTS).lazy(),
        requests(reached.lazy()).collect().lazy(),  # a row a chain, once
        kore,
    )


def synced_window(
    settings: AppSettings,
    name: str,
    window: Window,
    names: Sequence[str] = (),
    pulled: Sequence[Mapping[str, Any]] = (),
) -> Window:
    """``window`` cut to what source ``name`` and the sources of ``names`` that feed the table
    its check sets against it (Kore.ai's: ``contacts``; Mindful's: ``callback_attempts``) all
    cover: from the latest of their first starts (``start``, else ``initial_days`` before now:
    a source set to start later has nothing before it), so that a first night of sources set to
    start apart compares only what every one of them synced; ended where ``name``'s sync has
    completed (its committed cursor). A record source's cursor is its last record's change, not
    how far it has read: a quiet stream's would end the check hours early. Kore.ai's start is
    rounded up to its interval (one begun before a source's start is not all synced): a start
    in the window's last interval leaves nothing to compare, and the check says so. With the
    run's ``pulled`` streams (``SyncReport.to_dict()``), Kore.ai's from where its sync began
    reading (``started_from``) at the earliest: an older row is as Kore.ai sent it on an earlier
    night, and compared with our intervals rebuilt since from a late change to a contact it was
    a false difference (exit 1 where Kore.ai, read again, agrees)."""
    table = "contacts" if name == "kore" else "callback_attempts"
    feeds = [name, *(n for n in names if n != name and connector(n).table == table)]
    begin = max(window[0], *(settings.source(n).initial_cursor() for n in feeds))
    if name == "kore":  # its landed rows: from where its sync began reading them this run
        read = [p.get("started_from") for p in pulled if p.get("source") == name]
        begin = max([begin, *(t for at in read if isinstance(at, str) and (t := parse_utc(at)))])
    if name == "kore" and begin > window[0]:
        source = settings.source(name)
        assert isinstance(source, KoreSettings)
        step = timedelta(minutes=source.interval_minutes)
        begin += -(begin - _EPOCH) % step
    stream = connector(name).configured(settings.source(name)).streams[0].name
    state = StateStore(settings.store.state).get(name, stream)
    return begin, window[1] if state is None else min(window[1], state.cursor)


def tolerances(settings: AppSettings, given: Mapping[str, float] | None = None) -> dict[str, float]:
    """The tolerances: ``given`` (the command line's) first, then ``[reconcile] tolerance``.

    Example:
        >>> from engine.app.config import load_settings
        >>> tolerances(load_settings(env_file=None), {"offered": 1})
        {'offered': 1.0, 'data.performance.average*': 0.001}
    """
    merged = {k: float(v) for k, v in (given or {}).items()}
    merged |= {k: v for k, v in settings.reconcile.tolerance.items() if k not in merged}
    return merged


def _leaves(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_leaves(v) for v in value.values())
    return 1


def _presence(difference: Mapping[str, Any]) -> str:
    if difference["ours"] is None:
        return "theirs_only"
    return "ours_only" if difference["theirs"] is None else "both"


def _mindful(
    settings: MindfulSettings, inputs: Inputs, window: Window, tol: dict[str, float]
) -> tuple[Check, list[dict[str, Any]]]:
    check = Check("mindful", _COMPARES["mindful"])
    ours = document(inputs.requests, begin=window[0], end=window[1])
    theirs = fetch_metrics(settings, *window)
    found = compare_documents(ours, theirs, tolerance=tol)
    rows = [dict.fromkeys(_DIFF_KEYS[:3]) | d | {"presence": _presence(d)} for d in found]
    check.compared = _leaves(ours)
    return check, rows


def _kore(
    settings: AppSettings,
    inputs: Inputs,
    window: Window,
    tol: dict[str, float],
    out_dir: Path | None,
) -> tuple[Check, list[dict[str, Any]]]:
    kore = settings.source("kore")
    assert isinstance(kore, KoreSettings)
    minutes = kore.interval_minutes
    window = snap_window(*window, minutes=minutes, tz="UTC")
    check = Check("kore", f"{_COMPARES['kore']} ({minutes} min, UTC)")
    check.window_start, check.window_end = _iso(window[0]), _iso(window[1])
    if kore.duration_unit == "s" and "*_ms" not in tol:
        tol = {**tol, "*_ms": 500.0}  # the vendor rounds to whole seconds
    like_kore = settings.build.model_copy(
        update={"interval_minutes": minutes, "tz": "UTC", "attribution": "arrival"}
    )
    grid = like_kore.grid(window, checked=False)  # a run's whole history: no typed window
    ours = callvolume.build(inputs.contacts, window=grid, settings=like_kore).collect()
    assert inputs.kore_rows is not None
    start = pl.col("interval_start_utc")
    theirs = inputs.kore_rows.filter((start >= window[0]) & (start < window[1])).collect()
    keys = list(callvolume.KEYS)
    if ours.height == 0 and theirs.height:  # nothing of ours: compare Kore.ai's rows with zeros
        zeros = theirs.select(keys).with_columns(pl.lit(0, pl.Int64).alias(c) for c in ADDITIVE)
        found = reconcile_kore(zeros, theirs, tolerance=tol)
        found = found.with_columns(pl.lit("theirs_only").alias("presence"))
    else:
        found = reconcile_kore(ours, theirs, tolerance=tol)
    if out_dir is not None:
        export.write_csv(found, out_dir / "reconcile" / f"{KORE.table}.csv")
    both = pl.concat(
        [f.select(keys).with_columns(pl.col("channel").cast(pl.String)) for f in (ours, theirs)]
    )
    check.compared = both.unique().height
    text = found.with_columns(start.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return check, [{"source": "kore", **row} for row in text.select(_DIFF_KEYS).to_dicts()]


def reconcile(
    settings: AppSettings,
    inputs: Inputs,
    *,
    window: Window,
    tolerance: Mapping[str, float] | None = None,
    windows: Mapping[str, Window] | None = None,
    out_dir: Path | None = None,
) -> Reconciliation:
    """Run every check over ``window`` (or the per-source ``windows``, e.g. cut to what was
    synced); ``out_dir`` also receives ``reconcile/callvolume_kore.csv``.

    Raises:
        ConnectorError: Mindful's metrics could not be fetched (names the URL).
    """
    tol = tolerances(settings, tolerance)
    enabled = set(settings.enabled_sources())
    result = Reconciliation(window, [])
    for name in ("mindful", "kore"):
        begin, end = (windows or {}).get(name, window)
        found: list[dict[str, Any]] = []
        if name not in enabled:
            check = Check(name, _COMPARES[name], note=f"sources.{name}.enabled is false")
        elif end <= begin:
            check = Check(name, _COMPARES[name], note=f"no complete {name} data in the window")
        elif name == "mindful":
            mindful = settings.source("mindful")
            assert isinstance(mindful, MindfulSettings)
            check, found = _mindful(mindful, inputs, (begin, end), tol)
            check.window_start, check.window_end = _iso(begin), _iso(end)
            found = [{"source": "mindful", **d} for d in found]
        else:
            check, found = _kore(settings, inputs, (begin, end), tol, out_dir)
            if out_dir is not None:
                result.files.append(out_dir / "reconcile" / f"{KORE.table}.csv")
        if check.note == "":
            check.differences = len(found)
            check.out_of_tolerance = sum(not d["within_tolerance"] for d in found)
            check.status = (
                "out_of_tolerance"
                if check.out_of_tolerance
                else "within_tolerance"
                if found
                else "ok"
            )
        result.checks.append(check)
        result.differences += found
    return result


def write_reconciliation(rec: Reconciliation, out_dir: Path) -> Path:
    """Write ``reconcile.json`` into ``out_dir`` (atomically); the report shows it.

    Example:
        >>> import tempfile
        >>> at = datetime(2026, 10, 1, tzinfo=UTC)
        >>> rec = Reconciliation((at, at.replace(day=2)), [Check("kore", "volume")])
        >>> write_reconciliation(rec, Path(tempfile.mkdtemp())).name, rec.ok
        ('reconcile.json', True)
    """
    return export.write_json(rec.to_json(), out_dir / "reconcile.json")
