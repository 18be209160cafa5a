"""The canonical snapshot: a run's validated rows, kept between runs and refreshed from what landed.

Rebuilding a canonical table from the whole landing store every night costs time in proportion
to all history (4.3 s of a 17 s run with a year of it). The rows depend on nothing but the
landed files, so a run keeps them, with the list of files they came from, under
``<store.state>/snapshot/<table>/``, and the next run redoes only these records:

* **touched**: every record id of a file new since (a sync's pages, a compaction's merged file,
  a repair's refetch) or gone (compacted away, lost), from an index of each file's record ids;
* **closed over identities**: the canonical rules compare rows across records (two records
  giving one contact are a duplicate or a conflict), so a record sharing an identity
  (``source`` and ``contact_id`` or ``attempt_id``, old rows and new) with a touched one is
  redone with it, until nothing more is added.

Their latest landed versions are read again (only the files holding them), mapped and validated
as a full rebuild does (:func:`engine.pipeline.sources.validated`) and spliced in. Records set
aside at landing are read whole every time (a few small files). The result equals
:func:`engine.pipeline.sources.canonical` in a fixed order (``tests/engine/test_snapshot.py``).
A snapshot missing, torn, or made under other settings, code or streams is redone whole, as on
``--full-refresh`` (a group of landed files at a time, each closed over identities like a
night's landing): it is a cache of the landing store, committed by its ``meta.json`` (written
last, atomically), so a run killed while writing it leaves the previous one in force. Its rows
are kept in month shards (:mod:`engine.pipeline.snapshot.parts`; an attempt in its chain's
request month): a run reads and rewrites the months its records touch, and hands the run's plan
the digest of each partition day (and of attempts the chains and their gaps), kept when its
month was last written; the rest of the run reads the months it needs
(:mod:`engine.pipeline.snapshot.canonical`).

Example:
    ``rows, quarantine = refresh(settings, ["ujet"], "contacts").frames``.
"""

from engine.pipeline.snapshot.parts import FORMAT
from engine.pipeline.snapshot.redo import Refreshed, refresh, refresh_sources, snapshot_dir
from engine.pipeline.snapshot.sums import Digests, day_digests, digest_rows

__all__ = [
    "FORMAT",
    "Digests",
    "Refreshed",
    "day_digests",
    "digest_rows",
    "refresh",
    "refresh_sources",
    "snapshot_dir",
]
