"""Where a store's tables live: a local folder, or a prefix of an S3-compatible object store.

A store on object storage (``s3://BUCKET/PREFIX``) is written through a local staging folder
that stands for it (:func:`staged`): the commands write their data files there as they do for a
local store, and each table's commit uploads the files it names, then commits the table's log
entry to the bucket (:mod:`engine.output.delta`). Its readers open the tables where they live:
the Delta log is read from the bucket, and the data files by their ``s3://`` URLs (Polars and
``deltalake``, the same readers as for a local store), so the Ray tasks on other machines need
no shared mount. The other outputs (exports, quarantine, summaries) are uploaded from the
staging folder once the command has written them (:func:`publish`), one object each.

Credentials, region and endpoint are the object store client's own: the standard AWS
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``) or an instance's role; nothing here
holds them, and every message about the store passes :func:`one_line`, which leaves out any
secret value the environment holds.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from engine.errors import StoreError

__all__ = [
    "bind",
    "bind_all",
    "bound",
    "has_table",
    "is_url",
    "one_line",
    "open_table",
    "publish",
    "put",
    "remote",
    "shown",
    "staged",
    "upload",
    "uri",
]

_LOG: Final = "_delta_log"
_SCHEMES: Final = ("s3:/",)  # a path made of ``s3://BUCKET`` keeps one slash
_SECRETS: Final = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
_CHUNK: Final = 8 << 20
#: Local staging folders, each standing for an object-store URL.
_BOUND: dict[Path, str] = {}
#: Tables loaded for reading, by path: the log's state they were loaded at, and the table.
_LOADED: dict[str, tuple[tuple[object, ...], DeltaTable]] = {}
_KEEP_LOADED: Final = 16


def _handler(url: str) -> Any:
    """``deltalake``'s own client of the object store at ``url`` (the one its writer uses; the
    public ``deltalake.fs`` wraps the same class for pyarrow, which the default install does not
    load). Imported here, for a store on object storage only: a local store never depends on it.
    """
    from deltalake._internal import DeltaFileSystemHandler  # noqa: PLC0415

    return DeltaFileSystemHandler(url)


def is_url(text: str | Path) -> bool:
    """``text`` names an object-store location (``s3://...``, or that text made a path)."""
    return str(text).startswith(_SCHEMES)


def one_line(exc: BaseException | str) -> str:
    """An error's message as one line, without colour codes or any secret the environment
    holds (an object-store error's chain of causes joined by ``->``)."""
    text = _ANSI.sub("", str(exc))
    lines = [ln.strip().lstrip("↳").strip() for ln in text.strip().splitlines()]
    code = re.search(r"<Code>(.*?)</Code>(?:<Message>(.*?)</Message>)?", text)
    lines = [ln for ln in lines if ln and not ln.startswith("<")]
    lines += [": ".join(filter(None, code.groups()))] if code else []
    chained = len(lines) > 1 and "↳" in text
    found = " -> ".join(lines) if chained else (lines or [type(exc).__name__])[0]
    for name in _SECRETS:
        if len(secret := os.environ.get(name, "")) >= 4:
            found = found.replace(secret, "***")
    return found


def bind(staging: Path, url: str) -> None:
    """Let the local folder ``staging`` stand for the object-store location ``url``."""
    _BOUND[Path(staging).resolve()] = url.rstrip("/")


def bound() -> dict[Path, str]:
    """The staging folders and the URLs they stand for (a helper process binds the same)."""
    return dict(_BOUND)


def remote(path: Path) -> str | None:
    """The object-store URL ``path`` stands for (under a staging folder), else ``None``."""
    if not _BOUND:
        return None
    where = Path(path).resolve()
    for root, url in _BOUND.items():
        if where == root:
            return url
        if where.is_relative_to(root):
            return f"{url}/{where.relative_to(root).as_posix()}"
    return None


def uri(path: Path) -> str:
    """Where the files of ``path`` are read from: its object-store URL, or its absolute path."""
    return remote(path) or str(Path(path).resolve())


def shown(path: Path | str) -> str:
    """``path`` as the user named it: its object-store URL when it stands for one."""
    return remote(Path(path)) or str(path)


def _check(url: str) -> str:
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise StoreError(f"{url}: expected s3://BUCKET/PREFIX ({bucket!r} is not a bucket name)")
    return url.rstrip("/")


@contextmanager
def staged(url: str) -> Iterator[Path]:
    """A local staging folder standing for ``url`` (``s3://BUCKET/PREFIX``) while the block
    runs; checked first: the bucket must answer (a listing of the prefix), else one line.

    Raises:
        StoreError: not a bucket URL, or the object store cannot be reached or has no such
            bucket, or its credentials are refused (the message names the URL, no secret).
    """
    url = _check(url)
    try:
        _handler(url).get_file_info_selector("", allow_not_found=True)
    except Exception as exc:  # the client's own error kinds: connection, status, credentials
        raise StoreError(f"{url}: the object store cannot be used ({one_line(exc)})") from None
    folder = Path(tempfile.mkdtemp(prefix="wfm-staging-"))
    bind(folder, url)
    try:
        yield folder
    finally:
        _BOUND.pop(folder.resolve(), None)
        shutil.rmtree(folder, ignore_errors=True)


def upload(path: Path, files: list[str]) -> None:
    """Move ``files`` (relative to the staging folder ``path``) to the object store ``path``
    stands for, one object each (an object appears whole or not at all); each local copy is
    deleted once uploaded (whatever reads them afterwards reads the object store's).

    Raises:
        StoreError: an upload failed (the message names the URL).
    """
    url = remote(path)
    if url is None or not files:
        return
    try:
        store = _handler(url)
        for rel in files:
            with (Path(path) / rel).open("rb") as source:
                sink = store.open_output_stream(rel)
                while block := source.read(_CHUNK):
                    sink.write(block)
                sink.close()  # the upload completes here
            (Path(path) / rel).unlink()
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{url}: upload failed ({one_line(exc)})") from None


def put(url: str, rel: str, data: bytes) -> None:
    """Write ``data`` as the object ``rel`` under ``url`` (one object: it appears whole or not
    at all): a Ray task's data file, written where the table lives.

    Raises:
        StoreError: the upload failed (the message names the URL).
    """
    try:
        sink = _handler(url).open_output_stream(rel)
        sink.write(data)
        sink.close()  # the upload completes here
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{url}/{rel}: upload failed ({one_line(exc)})") from None


def publish(staging: Path) -> list[str]:
    """Upload every file of the staging folder outside ``store/`` (the tables are uploaded by
    their commits); their URLs."""
    rels = sorted(
        f.relative_to(staging).as_posix()
        for f in Path(staging).rglob("*")
        if f.is_file() and f.relative_to(staging).parts[0] != "store"
    )
    upload(staging, rels)
    return [shown(Path(staging) / rel) for rel in rels]


def _log_state(path: Path) -> tuple[object, ...]:
    """The log's state: each entry's name, size, inode and mtime, and the newest commit's
    bytes (with its writer's unique tag): a commit, checkpoint, cleanup or restored copy
    changes it, even when a restored store's next commit reuses a version number."""
    log = Path(path) / _LOG
    names = sorted(os.listdir(log))
    stats = [(log / n).stat() for n in names]
    found = [(n, s.st_size, s.st_ino, s.st_mtime_ns) for n, s in zip(names, stats, strict=True)]
    commits = [n for n in names if n.endswith(".json")]
    if empty := [n for n, size, *_ in found if n in commits and not size]:  # deltalake reads
        msg = f"{shown(path)}: not a readable store table (its log's {empty[0]} is empty: a torn"
        raise StoreError(f"{msg} commit); the table's version would be another one, silently")
    return (*found, (log / commits[-1]).read_bytes() if commits else b"")


def open_table(path: Path) -> DeltaTable:
    """The table at ``path`` to read from, reused while its log's state holds; a log that only
    grew since (every entry seen is still there, unchanged: a commit, a checkpoint) is read
    forward from the loaded version (~10-20 ms a load at a year). Commits use it too. A table
    on object storage is read forward from its log each time (one listing).

    Raises:
        StoreError: no table at ``path``, or its log cannot be read.
    """
    url = remote(path)
    key = url or str(Path(path).resolve())
    try:
        if url is not None:
            state: tuple[object, ...] = ("remote",)
            found = _LOADED.pop(key, None)
            table = DeltaTable(url) if found is None else found[1]
            if found is not None:
                table.update_incremental()
        else:
            state, found = _log_state(path), _LOADED.pop(key, None)  # back in last: the newest
            if found is None or not set(found[0][:-1]) <= set(state[:-1]):
                table = DeltaTable(str(path))
            else:
                table = found[1]
                if found[0] != state:
                    table.update_incremental()
    except (TableNotFoundError, DeltaError, OSError) as exc:
        raise StoreError(f"{shown(path)}: not a readable store table ({one_line(exc)})") from None
    _LOADED[key] = (state, table)
    while len(_LOADED) > _KEEP_LOADED:  # the oldest loaded first (a dict keeps insertion order)
        del _LOADED[next(iter(_LOADED))]
    return table


def has_table(url: str) -> bool:
    """A Delta table's log is at ``url`` on the object store.

    Raises:
        StoreError: the object store cannot be read there.
    """
    try:
        listed = _handler(url).get_file_info_selector(_LOG, allow_not_found=True)
    except Exception as exc:  # the client's own error kinds
        raise StoreError(f"{url}: the object store cannot be read ({one_line(exc)})") from None
    return bool(listed)


def bind_all(bindings: Mapping[Path, str]) -> None:
    """Bind each staging folder of ``bindings`` (:func:`bound`, from another process)."""
    for staging, url in bindings.items():
        bind(staging, url)
