"""What a writer killed inside an atomic write leaves, and the next run's sweep of it.

A real child process holds the store's lock, as ``sync`` and ``run`` do, and is killed
(``SIGKILL``: no ``finally``) inside :func:`engine.durable.atomic_write_bytes`, its temporary
file written and fsynced, right before the rename: a landing page, a stream's state, a part of
the canonical snapshot. The next holder of the lock sweeps (:func:`housekeeping`, as ``run``
does first): the temporary file goes and is listed in ``cleaned``; a user's file of a similar
name stays, and so does what a symlink of a leftover's name points to.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from engine import durable
from engine.durable import atomic_write_bytes
from engine.pipeline.lock import clean_leftovers, housekeeping, store_lock
from tests.calendar import run_process

#: The child: kill itself at the rename of its first atomic write (``sys.argv[1]`` says which
#: write, ``sys.argv[2]`` is the folder of its stores), holding the store's lock.
CHILD = """
import os, signal, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from connectors.landing import PiiScrubber, RecordKey, land_page
from connectors.state import StateStore
from engine.pipeline.lock import store_lock
from engine.pipeline.snapshot.parts import Snapshot, save
from engine.schema import QUARANTINE

real = os.replace

def replace(*args, **kwargs):
    caller = sys._getframe(1)
    if caller.f_code.co_name == "durable_replace" and caller.f_back.f_code.co_name == (
        "atomic_write_bytes"
    ):
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is complete and fsynced
    return real(*args, **kwargs)

os.replace = replace
what, root = sys.argv[1], Path(sys.argv[2])
at = datetime(2026, 10, 1, tzinfo=UTC)
with store_lock(root / "state"):
    if what == "page":
        records = [{"id": i, "updated_at": "2026-10-01T00:00:00Z"} for i in range(50)]
        land_page(root / "landing", "ujet", "calls", records, key=RecordKey("id", "updated_at"),
                  scrubber=PiiScrubber(), fetched_at=at, batch_id="b")
    elif what == "state":
        StateStore(root / "state").commit("ujet", "calls", at, lookback=timedelta(0))
    else:
        parts = pl.DataFrame(schema={"__part": pl.String()})
        snap = Snapshot({}, parts, parts, {}, pl.DataFrame(schema=QUARANTINE))
        save(root / "state" / "snapshot" / "contacts", "key", snap, "contacts")
"""

#: An atomic write's temporary file: ``.<target's name>.tmp-<32 hex>``.
TEMPORARY = re.compile(r"\.(?P<target>.+)\.tmp-[0-9a-f]{32}")


def _users_files(folder: Path, like: str) -> list[Path]:
    """Files a user may keep beside ``like`` (a file's name), each close to but not of the
    name an atomic write gives its temporary file."""
    hexes = uuid.uuid4().hex
    names = [
        f".{like}.tmp-{hexes[:31]}",  # one digit short
        f".{like}.tmp-{hexes.upper()}",  # not lowercase
        f"{like}.tmp-{hexes}",  # no leading dot
        f".{like}.tmp-{hexes}.bak",  # more after the digits
        f".{like}.ugwk42k.tmp",  # an earlier version's name (tempfile.mkstemp's), one short
        f".tmp-{hexes}",  # no target's name
        f".{like}.notes",
    ]
    found = [folder / name for name in names]
    for path in found:
        path.write_text("the user's")
    return found


@pytest.mark.parametrize("what", ["page", "state", "snapshot"])
def test_the_next_sweep_removes_what_a_write_killed_before_its_rename_left(
    tmp_path: Path, what: str
) -> None:
    killed = run_process([sys.executable, "-c", CHILD, what, str(tmp_path)], timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()
    left = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert len(left) == 1, left  # the temporary file, and nothing else of the write
    tmp = left[0]
    assert tmp.stat().st_size > 0  # written whole, as a kill after the write leaves it
    users = _users_files(tmp.parent, "calls.json") + _users_files(tmp.parent, "part.parquet")
    with store_lock(tmp_path / "state"):  # the next run: the killed holder did not end cleanly
        cleaned = housekeeping(tmp_path / "out", tmp_path / "landing", tmp_path / "state")
    assert cleaned == [str(tmp)]
    assert not tmp.exists()
    assert [p.read_text() for p in users] == ["the user's"] * len(users)
    found = TEMPORARY.fullmatch(tmp.name)
    assert found, tmp.name  # one recognizable name: never anyone else's
    assert not (tmp.parent / found["target"]).exists()  # killed before the rename


def test_a_leftover_symlink_goes_never_what_it_points_to(tmp_path: Path) -> None:
    """A symlink of a leftover's name is removed as a link: the folder it points to stays."""
    theirs = tmp_path / "elsewhere"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("the user's")
    state = tmp_path / "state" / "ujet"
    state.mkdir(parents=True)
    link = state / f".calls.json.tmp-{uuid.uuid4().hex}"
    link.symlink_to(theirs, target_is_directory=True)
    with store_lock(tmp_path / "state"):
        cleaned = clean_leftovers(tmp_path / "state")
    assert cleaned == [str(link)]
    assert not os.path.lexists(link)
    assert (theirs / "keep.txt").read_text() == "the user's"


def test_an_atomic_write_never_writes_through_a_file_of_its_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary file is created exclusively: a file already of that name (or a symlink)
    is neither written nor removed, and the target is not touched."""
    target, taken = tmp_path / "calls.json", tmp_path / f".calls.json.tmp-{uuid.uuid4().hex}"
    taken.write_text("the user's")
    monkeypatch.setattr(durable, "temporary_sibling", lambda _path: taken)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"{}")
    assert taken.read_text() == "the user's"
    assert not target.exists()


def test_an_atomic_write_leaves_only_its_file_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "ujet" / "calls.json"
    atomic_write_bytes(target, b"{}")
    atomic_write_bytes(target, b"[]")
    assert target.read_bytes() == b"[]"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["calls.json"]


def test_the_sweep_removes_the_temporary_files_of_earlier_versions(tmp_path: Path) -> None:
    """Earlier versions named an atomic write's temporary file by ``tempfile.mkstemp``
    (``.<name>.<8 random>.tmp``): left by a kill then, no sweep knew the name and it stayed in
    the landing store, the state and the snapshot for ever. It goes now, listed in ``cleaned``;
    names that only look like it stay."""
    folders = [
        tmp_path / "landing" / "raw" / "source=ujet" / "stream=calls" / "date=2026-10-01",
        tmp_path / "state" / "ujet",
        tmp_path / "state" / "snapshot" / "contacts",
    ]
    old = []
    for folder, name in zip(folders, ["part-b.parquet", "calls.json", "meta.json"], strict=True):
        folder.mkdir(parents=True)
        fd, made = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")  # as then
        os.close(fd)
        old.append(made)
    users = [folder / n for folder in folders for n in (
        ".calls.json.ugwk42kj.tmp.bak", ".calls.json.ugwk42kjx.tmp", ".calls.json.UGWK42KJ.tmp",
        ".calls.json.ugwk-2kj.tmp", "calls.json.ugwk42kj.tmp", ".ugwk42kj.tmp",
    )]  # fmt: skip
    for path in users:
        path.write_text("the user's")
    with store_lock(tmp_path / "state"):  # a first holder: its previous did not end cleanly
        cleaned = housekeeping(tmp_path / "out", tmp_path / "landing", tmp_path / "state")
    assert sorted(cleaned) == sorted(old)
    assert not any(os.path.lexists(p) for p in old)
    assert [p.read_text() for p in users] == ["the user's"] * len(users)
