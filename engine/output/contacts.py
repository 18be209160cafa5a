"""The store's contacts table written as the input streams: validated, de-duplicated and sunk to
its date partitions without the canonical rows ever being held in memory.

:func:`sink_contacts` gives :func:`engine.validate.contacts.validate_contacts`' rows in two
streaming passes over the input, neither of which holds it:

1. the hashes of the identities that occur more than once (8 bytes a row, sorted; the key
   columns alone are read and parsed);
2. every row validated and written as it comes by one partitioned sink
   (:func:`engine.output.datafiles.sink_partitions`, rows marked by
   :func:`engine.validate.contacts.mark_contacts`): a valid row of an identity seen once to
   the table's files of its date; a repeated identity's version, and an invalid row, to
   folders set apart (``date=repeated``, ``date=invalid``, files of another writer tag).

The repeated identities' versions (~4 % of the rows here) are then read back and resolved in
memory (:func:`~engine.validate.contacts.validate_contacts` on them alone: the same rules), the
latest versions written as one more file per partition. Only when an invalid row was set
apart is the input read a third time, for the quarantine rows (their raw values as given):
a clean input is read twice. One plan with two outputs (a sink and a collect) would read it
once, but Polars then buffers rows for the slower output, the sink (+0.8-1.3 GB at 10M rows).

Nothing is committed: the files are visible to :func:`scan_files` (the volume table is built
from them) and become the table's next version with
:func:`engine.output.delta.commit_files`; :func:`engine.output.datafiles.discard` removes them
when the build fails first.

Example:
    >>> import tempfile
    >>> from engine.demo.contacts import generate_contacts
    >>> from engine.output import delta
    >>> path = Path(tempfile.mkdtemp()) / "contacts"
    >>> sunk = sink_contacts(generate_contacts(days=1).lazy(), path, tag="t1")
    >>> version = delta.commit_files(path, sunk.files, schema=pl.Schema(CONTACTS), tag="t1")
    >>> delta.row_count(path) == sunk.contacts == scan_files(path, sunk.files).collect().height
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
from deltalake.transaction import AddAction

from engine.errors import REFUSED_WRITE, naming
from engine.output import datafiles
from engine.schema import CONTACTS, QUARANTINE
from engine.validate.contacts import (
    INVALID,
    MAX_DURATION_MS,
    PART,
    REPEATED,
    mark_contacts,
    repeated_identities,
    resolve_contacts,
    split_contacts,
    validate_contacts,
)

__all__ = ["MORSEL_ROWS", "Sunk", "scan_files", "sink_contacts"]

#: Rows per morsel of the streaming passes (Polars' default is about 100,000 here): a partitioned
#: sink holds some morsels of every open partition, and this size halved the write's peak
#: (1,245 -> 707 MiB at 10M rows, 31 partitions) for no more CPU.
MORSEL_ROWS: Final = 20_000


@dataclass(frozen=True)
class Sunk:
    """What :func:`sink_contacts` read and wrote: ``rows_in`` input rows, the ``quarantine``
    rows, and the data ``files`` written (not committed) holding ``contacts`` rows."""

    rows_in: int
    quarantine: pl.DataFrame
    files: list[AddAction]

    @property
    def contacts(self) -> int:
        """The canonical rows written."""
        return sum(json.loads(a.stats)["numRecords"] for a in self.files)


def sink_contacts(
    contacts: pl.LazyFrame, path: Path, *, tag: str, max_duration_ms: int = MAX_DURATION_MS
) -> Sunk:
    """Validate ``contacts`` into new data files of the table at ``path``, by ``offered_at``'s
    UTC date (the writer ``tag``), as they stream; see the module docstring.

    Raises:
        InputSchemaError: a required column is missing or a timestamp column is naive.
    """
    with pl.Config(streaming_chunk_size=MORSEL_ROWS):
        repeated = repeated_identities(contacts).collect(engine="streaming").to_series()
        marked = mark_contacts(contacts, repeated, max_duration_ms=max_duration_ms)
        sink = datafiles.sink_partitions(marked, path, by="offered_at", tag=tag, apart=PART)
        apart = pl.QueryOptFlags(comm_subplan_elim=False)  # the count reads on its own
        with naming(path, REFUSED_WRITE):  # the plan reads the input too: its errors stay
            _, rows_in = pl.collect_all(
                [sink, contacts.select(pl.len())], engine="streaming", optimizations=apart
            )
        bad = pl.DataFrame(schema=QUARANTINE)
        if datafiles.set_apart(path, tag, INVALID):  # a pass of its own, only for them
            _, invalid = split_contacts(contacts, repeated.clear(), max_duration_ms=max_duration_ms)
            bad = resolve_contacts(invalid.collect(engine="streaming").lazy())[1].collect()
    rows = scan_files(path, datafiles.set_apart(path, tag, REPEATED))
    kept, conflicts = pl.collect_all(validate_contacts(rows, max_duration_ms=max_duration_ms))
    if kept.height:
        dated = kept.with_columns(datafiles.days_of("offered_at"))
        datafiles.write_partitions(path, dated, tag)
    datafiles.drop_apart(path, tag)
    quarantine = pl.concat([bad, conflicts])
    return Sunk(int(rows_in.item()), quarantine, datafiles.added(path, tag))


def scan_files(path: Path, files: list[AddAction] | list[Path]) -> pl.LazyFrame:
    """The canonical contacts in ``files`` (under ``path``), lazily, in the canonical types."""
    if not files:
        return pl.LazyFrame(schema=CONTACTS)
    names = [str(path / (f if isinstance(f, Path) else f.path)) for f in files]
    frame = pl.scan_parquet(names, hive_partitioning=False)
    return frame.select(list(CONTACTS)).cast(CONTACTS)  # type: ignore[arg-type]
