"""DuckDB's whole job in the cardinality benchmark: what ``build`` and ``callbacks`` do, as SQL.

From the same input file, to Parquet (lz4, partitioned by UTC date as the store is):

- ``build``: keep the latest version of each identity (``source``, ``contact_id``,
  ``segment_no``; exact duplicates collapse, a null ``updated_at`` is the oldest, two different
  latest versions are both dropped, as the engine quarantines them), write those canonical
  contacts (``contacts/``, by the date of ``offered_at``), aggregate the volume table in the
  reporting zone, zero-filled over the window for every (queue, channel) seen
  (:func:`benchmarks.volume_duckdb.volume_relation_sql`) with the derived ratios of
  ``engine.tables.callvolume.derive``, and write its busy rows (``callvolume/``, by interval
  date), as the engine's store keeps them (``engine.tables.dense``);
- ``callbacks``: collapse exact duplicate attempts, drop an identity (``source``,
  ``attempt_id``) with two different contents, write the canonical attempts
  (``callback_attempts/``, by the date of ``created_at``), reduce the requests and write the busy
  rows of both zero-filled tables (:mod:`benchmarks.callbacks_duckdb`; ``callback_intervals/``,
  ``retry_outcomes/``).

The SQL is made by :func:`build_script` / :func:`callbacks_script` (which import the engine's
settings) and run by ``python -m benchmarks.cardinality_duckdb SCRIPT``, a process that imports
DuckDB and nothing else, so that its time and memory are DuckDB's own.

Example:
    >>> from datetime import datetime, UTC
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> "PARTITION_BY" in build_script("in.parquet", "out", window=w, tz="UTC")
    True
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

__all__ = ["OUTPUTS", "build_script", "callbacks_script", "main"]

#: The tables each job writes (directories under its output directory).
OUTPUTS = {
    "build": ("contacts", "callvolume"),
    "callbacks": ("callback_attempts", "callback_intervals", "retry_outcomes"),
}
_SETUP = "SET threads = 2;\nSET TimeZone = 'UTC';\n"
_STAMP = "coalesce(updated_at, '-infinity'::TIMESTAMPTZ)"


def _q(text: str) -> str:
    return text.replace("'", "''")


def _copy(select: str, out: Path, name: str, day_of: str) -> str:
    """``COPY`` of ``select`` to ``out/name/date=YYYY-MM-DD/*.parquet`` (lz4)."""
    return (
        f"COPY (SELECT *, CAST({day_of} AS DATE) AS date FROM ({select}))\n"
        f"TO '{_q(str(out / name))}' (FORMAT parquet, COMPRESSION lz4, PARTITION_BY (date));\n"
    )


def _ratios() -> str:
    """``callvolume.derive`` with the default formula (``exclude_short_abandons``)."""
    return """*,
    CASE WHEN answered > 0 THEN handle_ms / answered END AS aht_ms,
    CASE WHEN answered > 0 THEN wait_answered_ms / answered END AS asa_ms,
    CASE WHEN offered > 0 THEN abandoned / offered END AS abandon_rate,
    CASE WHEN answered + abandoned - short_abandoned > 0
        THEN answered_within_sl / (answered + abandoned - short_abandoned) END AS service_level"""


def build_script(path: str, out: str, *, window: tuple[datetime, datetime], tz: str) -> str:
    """The SQL of the ``build`` job (statements separated by ``;`` and a newline)."""
    from benchmarks.volume_duckdb import volume_relation_sql
    from engine.settings import BuildSettings

    settings = BuildSettings(tz=tz)
    if settings.sl_formula != "exclude_short_abandons":  # what _ratios computes
        raise NotImplementedError(settings.sl_formula)
    key = "PARTITION BY source, contact_id, segment_no"
    target = Path(out)
    volume = volume_relation_sql("contacts", window=window, settings=settings)
    return (
        _SETUP
        + f"""CREATE TEMP TABLE contacts AS
SELECT * FROM (
    SELECT DISTINCT * FROM read_parquet('{_q(path)}')
    QUALIFY {_STAMP} = max({_STAMP}) OVER ({key})
)
QUALIFY count(*) OVER ({key}) = 1;
"""
        + _copy("SELECT * FROM contacts", target, "contacts", "offered_at")
        + _copy(
            f"SELECT {_ratios()} FROM ({volume}) WHERE offered > 0",  # busy rows, as we store
            target,
            "callvolume",
            "interval_start_utc",
        )
    )


def callbacks_script(path: str, out: str, *, window: tuple[datetime, datetime], tz: str) -> str:
    """The SQL of the ``callbacks`` job."""
    from benchmarks.callbacks_duckdb import intervals_sql, requests_relation_sql, retries_sql

    target = Path(out)
    reqs = requests_relation_sql("att", window=window)
    return (
        _SETUP
        + f"""CREATE TEMP TABLE att AS
SELECT *, row_number() OVER () AS rid FROM (
    SELECT * FROM (SELECT DISTINCT * FROM read_parquet('{_q(path)}'))
    QUALIFY count(*) OVER (PARTITION BY source, attempt_id) = 1
);
"""
        + _copy("SELECT * EXCLUDE (rid) FROM att", target, "callback_attempts", "created_at")
        + f"CREATE TEMP TABLE reqs AS {reqs};\n"
        + _copy(
            f"SELECT * FROM ({intervals_sql('reqs', window=window, tz=tz)}) WHERE requests > 0",
            target,
            "callback_intervals",
            "interval_start_utc",
        )
        + _copy(
            f"SELECT * FROM ({retries_sql('reqs', window=window, tz=tz)}) WHERE requests > 0",
            target,
            "retry_outcomes",
            "interval_start_utc",
        )
    )


def main(argv: list[str] | None = None) -> None:
    """Run the SQL script ``argv[0]`` (a file) in a fresh in-memory DuckDB."""
    import duckdb

    [script] = sys.argv[1:] if argv is None else argv
    con = duckdb.connect()
    for statement in Path(script).read_text().split(";\n"):
        if statement.strip():
            con.execute(statement)
    con.close()


if __name__ == "__main__":
    main()
