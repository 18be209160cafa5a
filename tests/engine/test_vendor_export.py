"""Vendor export profiles against golden files, and the rules each format imposes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ExportError
from engine.output.vendor import Profile, builtin_profiles, closed_by, render
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.tables import callvolume

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)
RUN_AT = datetime(2026, 10, 2, 0, 30, tzinfo=UTC)  #: the next night's run: the day is closed


def contact(i: int, queue: str, channel: str, minutes: int, outcome: str, **kw: Any) -> dict:
    offered = T0 + timedelta(minutes=minutes)
    answered = outcome == "answered"
    return {
        "source": "s", "contact_id": f"c{i}", "segment_no": 1, "channel": channel,
        "direction": "inbound", "queue_id": queue, "queue_name": f"{queue.title()} Team",
        "offered_at": offered, "answered_at": offered + timedelta(seconds=12) if answered else None,
        "ended_at": offered + timedelta(minutes=4), "outcome": outcome,
        "wait_ms": 12_000 if answered else 31_500, "talk_ms": 200_400 if answered else 0,
        "hold_ms": 0, "acw_ms": 30_600 if answered else 0, "sl_threshold_ms": None,
        "messages": 0, "csat_responses": 0, "csat_score": 0, "updated_at": offered, **kw,
    }  # fmt: skip


def table(tz: str = "UTC", minutes: int = 15, *, whole_day: bool = False) -> pl.DataFrame:
    """The volume table of the contacts above, built for 09:00-10:00 UTC (``whole_day``: for
    their whole UTC day, as Eleveo's whole days need)."""
    rows = [
        contact(1, "sales", "voice", 1, "answered"),
        contact(2, "sales", "voice", 2, "abandoned"),
        contact(3, "sales", "voice", 20, "answered"),
        contact(4, "help, desk", "chat", 35, "answered"),
    ]
    s = BuildSettings(tz=tz, interval_minutes=minutes)  # type: ignore[arg-type]
    window = (T0, T0 + timedelta(hours=1))
    if whole_day:
        window = (T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1))
    frame = pl.DataFrame(rows, schema=CONTACTS).lazy()
    return callvolume.derive(
        callvolume.build(frame, window=window, settings=s), settings=s
    ).collect()


@pytest.mark.parametrize("name", ["genesys", "calabrio", "eleveo"])
def test_profile_matches_golden_files(name: str) -> None:
    closed = closed_by(RUN_AT, 15)
    built = table(whole_day=name == "eleveo")
    files = render(built, builtin_profiles()[name], closed=closed, run_at=RUN_AT)
    folder = GOLDEN / name
    if os.environ.get("WFM_UPDATE_GOLDEN"):  # regenerate deliberately, then review the diff
        folder.mkdir(parents=True, exist_ok=True)
        for fname, text in files:
            (folder / fname).write_text(text)
    assert sorted(f for f, _ in files) == sorted(p.name for p in folder.iterdir())
    for fname, text in files:
        assert text == (folder / fname).read_text(), fname


def test_genesys_one_file_per_queue_and_media_type() -> None:
    files = dict(render(table(), builtin_profiles()["genesys"]))
    assert set(files) == {"genesys_Sales_Team_voice.csv", "genesys_Help__Desk_Team_chat.csv"}
    lines = files["genesys_Sales_Team_voice.csv"].splitlines()
    assert lines[0].split(",")[-3:] == ["Offered", "Interactions Handled",
                                        "Total Handle Time (Seconds)"]  # fmt: skip
    assert lines[1] == "2026-10-01T09:00:00.000Z,Sales Team,Voice,,,2,1,231"  # 231.0 s of handle


def test_calabrio_has_21_fields_no_header_and_zeros() -> None:
    ((_, text),) = render(table(), builtin_profiles()["calabrio"])
    rows = [line.split(";") for line in text.splitlines()]
    assert {len(r) for r in rows} == {21}
    assert rows[0][0] == "15"  # the interval length first
    assert not rows[0][5].isalpha()  # no header row
    empty = next(r for r in rows if r[3] == "help, desk:chat")
    assert empty[5:] == ["0"] * 16


def test_eleveo_fills_whole_utc_days_and_splits_at_the_size_limit() -> None:
    profile = builtin_profiles()["eleveo"]
    ((_, text),) = render(table(whole_day=True), profile)
    assert len(text.splitlines()) == 1 + 96 * 2  # header + a full day for both queues
    small = profile.model_copy(update={"max_file_bytes": 2000})
    parts = render(table(whole_day=True), small)
    assert len(parts) > 1
    assert all(len(t.encode()) <= 2000 for _, t in parts)
    assert all(t.startswith("IntervalStartUTC,") for _, t in parts)
    body = "".join(t.split("\n", 1)[1] for _, t in parts)
    assert body == text.split("\n", 1)[1]
    assert [n for n, _ in parts][:2] == ["eleveo_intervals_001.csv", "eleveo_intervals_002.csv"]


def test_intervals_that_do_not_fit_the_profile_are_refused() -> None:
    with pytest.raises(ExportError, match="15-minute intervals aligned to UTC"):
        render(table(minutes=60, tz="Asia/Kathmandu"), builtin_profiles()["genesys"])


def test_a_user_profile_is_just_data(tmp_path: Path) -> None:
    profile = Profile.model_validate({
        "name": "mine", "file_name": "x.txt", "delimiter": "|", "header": False,
        "columns": [AT, {"header": "q", "column": "queue_id"},
                    {"header": "n", "column": "offered"}],
    })  # fmt: skip
    ((_, text),) = render(table(), profile)
    assert text.splitlines()[0] == "2026-10-01 09:00|help, desk|0"


def late_table() -> pl.DataFrame:
    """A day with contacts in its last intervals (23:05, 23:20, 23:31 and 23:47 UTC)."""
    rows = [contact(i, "sales", "voice", 14 * 60 + m, "answered") for i, m in
            enumerate((5, 20, 31, 47))]  # fmt: skip
    s = BuildSettings()
    day = datetime(2026, 10, 1, tzinfo=UTC)
    frame = pl.DataFrame(rows, schema=CONTACTS).lazy()
    built = callvolume.build(frame, window=(day, day + timedelta(days=1)), settings=s)
    return callvolume.derive(built, settings=s).collect()


def test_a_run_at_23_35_exports_neither_the_running_nor_a_future_interval() -> None:
    """At 23:35 the 23:30 interval is still running and 23:45 has not begun: no profile writes
    them, Eleveo's full days included; with the default 15-minute settle time, 23:15 (ended
    23:30) waits too."""
    at = datetime(2026, 10, 1, 23, 35, tzinfo=UTC)
    table = late_table()
    assert table.filter(pl.col("interval_start_utc") >= at.replace(minute=30))["offered"].sum() == 2
    for settle, last in ((0, "23:15"), (15, "23:00")):
        closed = closed_by(at, settle)
        for name in ("genesys", "calabrio", "eleveo"):
            profile = builtin_profiles()[name]
            text = "".join(t for _, t in render(table, profile, closed=closed, run_at=at))
            times = [t for t in ("23:00", "23:15", "23:30", "23:45") if f"T{t}" in text or
                     f";{t};" in text]  # fmt: skip
            assert times[-1] == last, (name, settle, times)
    eleveo = builtin_profiles()["eleveo"]
    ((_, text),) = render(table, eleveo, closed=closed_by(at, 0), run_at=at)
    assert len(text.splitlines()) == 1 + 94  # header, 00:00 to 23:15: no 23:30, no 23:45


def test_eleveo_writes_its_documented_timestamp_and_calabrio_unique_names() -> None:
    eleveo = builtin_profiles()["eleveo"]
    ((_, text),) = render(table(whole_day=True), eleveo, closed=closed_by(RUN_AT, 15))
    assert text.splitlines()[1].startswith("2026-10-01T00:00:00Z,")  # 2019-01-18T22:15:00Z form
    calabrio = builtin_profiles()["calabrio"]
    names = [
        render(table(), calabrio, run_at=at)[0][0] for at in (RUN_AT, RUN_AT + timedelta(minutes=1))
    ]
    assert names == [
        "calabrio_queue_statistics_20261002T003000Z.csv",
        "calabrio_queue_statistics_20261002T003100Z.csv",
    ]


def test_a_run_s_vendor_folder_holds_its_files_whole_and_nothing_of_an_earlier_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file takes its name by a rename, whole (a vendor's import polling the folder never
    reads one half written); what an earlier run's split made and this run does not is
    removed afterwards."""
    from engine.app.config import OutputSettings
    from engine.pipeline.export import export_tables

    renamed: list[Path] = []
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renamed.append(Path(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)

    folder = tmp_path / "exports" / "vendor" / "genesys"
    (folder / "an earlier split").mkdir(parents=True)
    (folder / "sales_voice_2026-09-30.csv").write_text("stale")
    output = OutputSettings(formats=(), vendor_profiles=("genesys",))
    written = export_tables(tmp_path, output, {"callvolume": table()}, now=RUN_AT)
    genesys, closed = builtin_profiles()["genesys"], closed_by(RUN_AT, 15)
    want = render(table(), genesys, closed=closed, run_at=RUN_AT)
    assert sorted(written) == sorted(folder / name for name, _ in want)
    assert set(written) <= set(renamed)
    assert {p.name: p.read_text() for p in folder.iterdir()} == dict(want)


#: A column of the interval's start, as a profile of one's own writes it.
AT = {"header": "at", "column": "interval_start_utc", "format": "%Y-%m-%d %H:%M"}


def profile_of(**kw: Any) -> Profile:
    """A profile of one's own: ``kw`` over a profile named ``p`` of the interval, the queue and
    channel (``queue_key``) and ``offered``."""
    columns = [AT, {"header": "k", "column": "queue_key"}, {"header": "o", "column": "offered"}]
    return Profile.model_validate({"name": "p", "file_name": "p.csv", "columns": columns} | kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_file_bytes": 2000}, r"file_name 'p.csv' must hold \{part\}"),
        ({"split_by": ["queue_id"]}, r"must hold \{queue_id\}"),
        ({"split_by": ["queue_id", "channel"], "file_name": "p_{queue_id}.csv"}, r"\{channel\}"),
        ({"file_name": ""}, "file_name '' is not the name of a file"),
        ({"file_name": ".."}, "is not the name of a file"),
        ({"file_name": "../../escaped_{run}.csv"}, "not a plain file name"),
        ({"file_name": "sub/p_{run}.csv"}, "not a plain file name"),
        ({"file_name": "p\\{run}.csv"}, "not a plain file name"),
        ({"file_name": "p\n.csv"}, "not a plain file name"),
        ({"file_name": "p_{nope}.csv"}, r"\{nope\} is neither"),
        ({"file_name": "p_{0}.csv"}, "a placeholder is a plain name"),
        ({"file_name": "p_{}.csv"}, "a placeholder is a plain name"),
        ({"file_name": "p_{run.__class__}.csv"}, "a placeholder is a plain name"),
        ({"file_name": "p_{run!r}.csv"}, "a placeholder is a plain name"),
        ({"file_name": "p_{part:>9}.csv", "max_file_bytes": 99}, "a placeholder is a plain"),
        ({"file_name": "p_{.csv"}, "file_name 'p_{.csv': expected '}'"),
        ({"file_name": "p_}.csv"}, "file_name 'p_}.csv': Single '}'"),
        ({"split_by": ["channel", "channel"], "file_name": "{channel}"}, "names a column twice"),
        ({"columns": []}, "at least 1 item"),
        ({"delimiter": '"'}, "cannot be a delimiter"),
        ({"delimiter": "\n"}, "cannot be a delimiter"),
    ],
)
def test_a_profile_whose_files_could_overwrite_each_other_or_escape_is_refused(
    kw: dict[str, Any], message: str
) -> None:
    """Every file a render writes has a name of its own, a plain one: parts of a size split
    without ``{part}`` (or files split by a column missing from the name) all got one name,
    each overwriting the last; an empty name wrote a file at the folder's path, ``..`` outside
    it."""
    with pytest.raises(ValueError, match=message):
        profile_of(**kw)


def test_the_placeholders_that_tell_files_apart_are_enough() -> None:
    split = profile_of(split_by=["queue_id"], file_name="p_{queue_id}_{part}_{run}.csv",
                       max_file_bytes=120)  # fmt: skip
    files = render(table(), split, run_at=RUN_AT)
    assert len({n for n, _ in files}) == len(files) > 2
    assert "p_sales_002_20261002T003000Z.csv" in dict(files)
    assert profile_of(file_name="{{run}}.csv").file_name == "{{run}}.csv"  # braces, written
    with pytest.raises(ValueError, match="must hold"):
        profile_of(file_name="{{part}}.csv", max_file_bytes=2000)  # a brace is no placeholder


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"columns": [{"header": "x", "column": "nope"}]},
         r"columns\[0\] \('x'\): column 'nope' is not a column of the volume table \(.*offered"),
        ({"split_by": ["nope"], "file_name": "p_{nope}.csv"}, "split_by 'nope' is not a column"),
        ({"columns": [{"header": "x", "column": "offered", "format": "%Y"}]},
         r"columns\[0\] \('x'\): format needs a date or time column; 'offered' is Int64"),
        ({"columns": [{"header": "o", "column": "offered"},
                      {"header": "q", "column": "queue_name", "unit": "s"}]},
         r"""columns\[1\] \('q'\): unit = "s" needs a number of ms; 'queue_name' is String"""),
        ({"columns": [{"header": "t", "column": "interval_start_utc", "format": "%Q"}]},
         r"columns\[0\] \('t'\): cannot format"),
    ],
)  # fmt: skip
def test_a_profile_column_the_table_cannot_give_is_one_export_error(
    kw: dict[str, Any], message: str
) -> None:
    """An unknown column, a date format on a number, seconds of a text: Polars' errors
    (ColumnNotFoundError, InvalidOperationError, ComputeError) escaped as tracebacks."""
    with pytest.raises(ExportError, match=f"^profile 'p': {message}") as caught:
        render(table(), profile_of(**kw))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("names", [("Sales EU", "Sales/EU"), ("Sales", "SALES")])
def test_two_queues_whose_names_make_one_file_name_get_a_file_each(names: tuple[str, str]) -> None:
    """Genesys names a file after the queue, with the characters a file name cannot hold
    replaced: two queues whose names differ only there (or only in letter case, which some file
    systems ignore) once wrote one file, the second over the first; then every run exited 2
    (a vendor's queue names made every night fail). The later one in sorted order now has a
    digest of its own name in its file name: a file each, every night the same."""
    rows = [contact(1, "eu1", "voice", 1, "answered", queue_name=names[0]),
            contact(2, "eu2", "voice", 2, "answered", queue_name=names[1])]  # fmt: skip
    s = BuildSettings()
    frame = pl.DataFrame(rows, schema=CONTACTS).lazy()
    built = callvolume.build(frame, window=(T0, T0 + timedelta(hours=1)), settings=s)
    volume = callvolume.derive(built, settings=s).collect()
    files = render(volume, builtin_profiles()["genesys"])
    assert render(volume, builtin_profiles()["genesys"]) == files  # the same names each time
    plain = "genesys_" + min(names).replace(" ", "_").replace("/", "_") + "_voice.csv"
    names_given = [name for name, _ in files]
    assert plain in names_given
    (other,) = [n for n in names_given if n != plain]
    assert other.casefold().startswith(plain.casefold().removesuffix(".csv") + "-")
    assert all(text.count("\n") >= 2 for _, text in files)  # a header and its queue's rows


def test_headers_constants_and_any_delimiter_are_quoted_as_csv() -> None:
    """A header or constant holding the delimiter or a quote was written bare (a row of too many
    fields); a delimiter the old pattern read as regex syntax (``^``) quoted every value."""
    profile = profile_of(header=True, delimiter="^", columns=[
        {"header": "queue^id", "column": "queue_id"}, {"header": "n", "column": "offered"},
        {"header": 'say "hi"', "const": 'a^"b"'}, AT])  # fmt: skip
    ((_, text),) = render(table(), profile)
    lines = text.splitlines()
    assert lines[0] == '"queue^id"^n^"say ""hi"""^at'
    assert lines[1] == 'help, desk^0^"a^""b"""^2026-10-01 09:00'


def built_volume(window: tuple[datetime, datetime], tz: str) -> pl.DataFrame:
    """The zero-filled volume table of one contact every 20 minutes from 2026-10-31 to 11-03 UTC
    (queue ``q``), built for ``window`` in ``tz``: what a store built for that window exports."""
    at = datetime(2026, 10, 31, tzinfo=UTC)
    rows = [contact(i, "q", "voice", 0, "abandoned", offered_at=at + timedelta(minutes=20 * i))
            for i in range(3 * 72)]  # fmt: skip
    s = BuildSettings(tz=tz)
    built = callvolume.build(pl.DataFrame(rows, schema=CONTACTS).lazy(), window=window, settings=s)
    return callvolume.derive(built, settings=s).collect()


def test_eleveo_writes_no_zeros_outside_the_built_window() -> None:
    """A New York local day (04:00Z to 05:00Z the next day) holds no whole UTC day: Eleveo's file
    would have zero-filled 00:00-03:45Z and 05:00-23:45Z, intervals nobody built where the
    contacts had traffic, and the importer would have replaced real history with them."""
    ny = ZoneInfo("America/New_York")
    local_day = (datetime(2026, 11, 1, tzinfo=ny), datetime(2026, 11, 2, tzinfo=ny))
    eleveo = builtin_profiles()["eleveo"]
    with pytest.raises(ExportError, match=r"2026-11-01T04:00:00Z \.\. 2026-11-02T05:00:00Z"):
        render(built_volume(local_day, "America/New_York"), eleveo, run_at=RUN_AT)


@given(
    lo=st.integers(0, 3 * 96 - 1),
    length=st.integers(1, 3 * 96),
    closed=st.none() | st.integers(0, 3 * 96),
)
@settings(max_examples=25, deadline=None)
def test_eleveo_writes_the_whole_utc_days_the_builds_covered_with_their_counts(
    lo: int, length: int, closed: int | None
) -> None:
    """Oracle: a day is written when the built window holds it from 00:00 to 24:00 or to the
    last closed interval, whichever is first; each row's counts are the table's."""
    at, q = datetime(2026, 10, 31, tzinfo=UTC), timedelta(minutes=15)
    window = (at + lo * q, at + min(lo + length, 3 * 96) * q)
    until = None if closed is None else at + closed * q
    volume = built_volume(window, "UTC")
    day = timedelta(days=1)
    ends = {at + d * day: min(at + (d + 1) * day, until or at + (d + 1) * day) for d in range(3)}
    whole = [d for d, end in ends.items() if window[0] <= d and end <= window[1] and d < end]
    eleveo = builtin_profiles()["eleveo"].model_copy(update={"max_file_bytes": 0})
    if volume.height == 0 or (until is not None and until < window[0] + q):  # nothing to write
        assert render(volume, eleveo, closed=until, run_at=RUN_AT) == []
        return
    if not whole:
        with pytest.raises(ExportError, match="writes whole UTC days"):
            render(volume, eleveo, closed=until, run_at=RUN_AT)
        return
    ((_, text),) = render(volume, eleveo, closed=until, run_at=RUN_AT)
    got = {line.split(",")[0]: int(line.split(",")[2]) for line in text.splitlines()[1:]}
    counts = {r["interval_start_utc"]: r["offered"] for r in volume.iter_rows(named=True)}
    want = {}
    for day in whole:
        for i in range(96):
            start = day + i * q
            if until is None or start + q <= until:
                want[start.strftime("%Y-%m-%dT%H:%M:%SZ")] = counts[start]
    assert got == want


def test_two_queues_of_one_name_get_a_file_each_never_one_with_every_interval_twice() -> None:
    """Genesys files are by queue and media type: queues ``qa`` and ``qb``, both named
    ``Support``, once made one file holding each interval twice. Each now has its own file,
    ``qb`` (the later) with a digest of its own values, each interval once, its own counts."""
    rows = [
        contact(i, q, "voice", m, "answered", queue_name="Support")
        for i, (q, m) in enumerate([("qa", 1), ("qa", 2), ("qb", 3), ("qb", 20), ("qb", 40)])
    ]
    s = BuildSettings()
    frame = pl.DataFrame(rows, schema=CONTACTS).lazy()
    built = callvolume.build(frame, window=(T0, T0 + timedelta(hours=1)), settings=s)
    files = render(callvolume.derive(built, settings=s).collect(), builtin_profiles()["genesys"])
    names = [n for n, _ in files]
    assert names[0] == "genesys_Support_voice.csv"
    assert len(names) == 2
    assert names[1].startswith("genesys_Support_voice-")
    offered = []
    for _, text in files:
        lines = [line.split(",") for line in text.splitlines()[1:]]
        starts = [line[0] for line in lines]
        assert len(starts) == len(set(starts)) == 4  # every interval once
        offered.append([int(line[5]) for line in lines])
    assert offered == [[2, 0, 0, 0], [1, 1, 1, 0]]  # qa's, then qb's


def two_of_one_name() -> pl.DataFrame:
    """Queues ``qa`` and ``qb``, both named ``Support``, over 09:00-10:00 UTC."""
    rows = [contact(i, q, "voice", m, "answered", queue_name="Support")
            for i, (q, m) in enumerate([("qa", 1), ("qb", 3)])]  # fmt: skip
    s = BuildSettings()
    frame = pl.DataFrame(rows, schema=CONTACTS).lazy()
    built = callvolume.build(frame, window=(T0, T0 + timedelta(hours=1)), settings=s)
    return callvolume.derive(built, settings=s).collect()


NAME = {"header": "q", "column": "queue_name"}
OFFERED = {"header": "o", "column": "offered"}


@pytest.mark.parametrize(
    ("volume", "columns", "example"),
    [  # the queue by name only, two queues of one name: each interval's line twice
        (two_of_one_name, [AT, NAME, OFFERED], "2026-10-01 09:00,Support"),
        # the time of day only, three days: each 09:00 line thrice
        (lambda: built_volume((datetime(2026, 10, 31, tzinfo=UTC),
                               datetime(2026, 11, 3, tzinfo=UTC)), "UTC"),
         [{"header": "t", "column": "interval_start_utc", "format": "%H:%M"}, NAME, OFFERED],
         "00:00,Q Team"),
        # no interval at all
        (table, [{"header": "k", "column": "queue_key"}, OFFERED], '"help, desk:chat"'),
        # channels mapped to one word
        (lambda: table().with_columns(pl.lit("sales").alias("queue_id")),
         [AT, {"header": "i", "column": "queue_id"},
          {"header": "m", "column": "channel", "map": {"voice": "x", "chat": "x"}}, OFFERED],
         "2026-10-01 09:00,sales,x"),
    ],
)  # fmt: skip
def test_a_profile_whose_lines_cannot_be_told_apart_is_refused(
    volume: Any, columns: list[dict[str, Any]], example: str
) -> None:
    """A profile of one's own wrote lines an importer cannot tell apart (two queues of one name
    written by name; the time of day without the date; no interval; two channels mapped to one
    word): it keeps either line, or sums them, with no error. Refused, naming an example; the
    same profile with what tells them apart renders."""
    profile = profile_of(columns=columns)
    with pytest.raises(ExportError, match="lines of one file share their interval") as raised:
        render(volume(), profile)
    assert f"e.g. {example!r}" in str(raised.value)
    keyed = profile_of(columns=[AT, {"header": "k", "column": "queue_key"}, *columns])
    lines = [line for _, text in render(volume(), keyed) for line in text.splitlines()[1:]]
    keys = [line.split(",")[:2] for line in lines]
    assert len(keys) == len({tuple(k) for k in keys}) > 1


def test_a_first_run_from_a_mid_day_start_exports_no_zeros_before_it(tmp_path: Path) -> None:
    """A first run's grid starting at 09:00 (its sources' start) was zero-filled from that
    day's UTC midnight in the run's exports: Genesys rows of 0 from 00:00, and an Eleveo
    file holding the whole day (00:00-09:00 zeros a vendor's import takes for counts). They
    start at the grid's start now; Eleveo leaves the day built in part out."""
    from engine.app.config import OutputSettings
    from engine.pipeline.export import export_tables

    settings = BuildSettings()
    grid = settings.grid((T0, T0.replace(hour=0) + timedelta(days=2)))  # 09:00 to 2 days on
    busy = table().filter(pl.col("offered") > 0)
    output = OutputSettings(formats=("csv",), vendor_profiles=("genesys", "eleveo"))
    at = T0.replace(hour=0) + timedelta(days=2, minutes=30)
    export_tables(tmp_path, output, {"callvolume": busy}, grids=[grid], build=settings, now=at)
    dump = pl.read_csv(tmp_path / "exports" / "callvolume.csv", try_parse_dates=True)
    assert dump["interval_start_utc"].min() == T0
    folder = tmp_path / "exports" / "vendor"
    genesys = pl.concat(pl.read_csv(p, infer_schema=False) for p in folder.glob("genesys/*.csv"))
    assert genesys["Interval Start UTC Date"].min() == f"{T0:%Y-%m-%dT%H:%M:%S}.000Z"
    eleveo = pl.concat(pl.read_csv(p, infer_schema=False) for p in folder.glob("eleveo/*.csv"))
    assert eleveo["IntervalStartUTC"].min() == f"{T0 + timedelta(days=1):%Y-%m-%d}T00:00:00Z"
    assert eleveo.height == 96 * busy.select("queue_id", "channel").n_unique()


def test_export_vendor_counts_the_days_the_last_run_rebuilt_as_built(tmp_path: Path) -> None:
    """A store whose last build's `summary.json` window is one hour of a day the last run
    rebuilt whole (a backfill): `export vendor eleveo` took only the build's window and the
    busy rows as built, so the day looked built in part and was left out, exit 0. The grids
    the run recorded count too (as `read_table(dense=True)` counts them)."""
    import json

    from click.testing import CliRunner

    from engine.cli.main import cli
    from engine.output.files import write_store

    busy = table().filter(pl.col("offered") > 0)  # built 09:00-10:00
    write_store(busy, tmp_path / "store" / "callvolume", by="interval_start_utc")
    day = [f"{T0:%Y-%m-%d}T00:00:00Z", f"{T0 + timedelta(days=1):%Y-%m-%d}T00:00:00Z"]
    (tmp_path / "summary.json").write_text(json.dumps({
        "window": [f"{T0:%Y-%m-%dT%H:%M:%S}Z", f"{T0 + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}Z"],
        "tz": "UTC", "interval_minutes": 15,
    }))  # fmt: skip
    (tmp_path / "run_summary.json").write_text(json.dumps({"plan": {"callvolume": [day]}}))
    out = tmp_path / "out"
    args = ["export", "vendor", "eleveo", "--store", str(tmp_path), "--out", str(out)]
    result = CliRunner().invoke(cli, args, env={"WFM_CLOCK_AT": RUN_AT.isoformat()})
    assert result.exit_code == 0, result.stderr
    rows = pl.concat(pl.read_csv(p, infer_schema=False) for p in out.glob("eleveo_*.csv"))
    assert rows.height == 96 * busy.select("queue_id", "channel").n_unique()
