"""A successful response's body read under a cap and a deadline, its codings decoded here.

httpx decodes a body one network chunk at a time, and a chunk's output is not bounded: a
1,827-byte body sent ``Content-Encoding: gzip, gzip`` decodes to 1 GiB in one step, held in
memory before any cap could be checked. :func:`read_capped` reads the raw bytes and decodes
them itself, each coding (``gzip``, ``x-gzip``, ``deflate``; ``identity`` is none) producing at
most :data:`STEP` bytes at a time, so the decoded body stops at the cap (plus one step) and no
stage holds more than a step. More than :data:`MAX_CODINGS` codings, or one this client does
not decode (it never asks for any other), is a :class:`~connectors.errors.ResponseShapeError`
before the body is read; bytes that do not decode are a ``TransportError`` (retried, as a
garbled transfer). With a :class:`~connectors.wire.deadline.Deadline`, it is checked between the
body's chunks (each bounded by the read timeout, and by the deadline where the client is
watched), so a body trickled a byte at a time ends as a timeout.

Example:
    >>> import gzip
    >>> decoder = Decoder("gzip, gzip", 100, url="https://x.test/a")
    >>> decoder.feed(gzip.compress(gzip.compress(b"[1, 2]")))
    >>> decoder.close()
    >>> b"".join(decoder.chunks)
    b'[1, 2]'
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import httpx

from connectors.errors import ResponseShapeError, ResponseTooLargeError, TransportError
from connectors.wire.deadline import Deadline
from connectors.wire.digits import as_int

__all__ = ["ACCEPT_ENCODING", "MAX_CODINGS", "STEP", "Deadline", "Decoder", "read_capped"]

#: The most bytes one decoding step produces (and so the most a stage holds at once).
STEP = 64 * 1024
#: The most codings one body may carry (``gzip, gzip`` is legal HTTP, if never seen).
MAX_CODINGS = 2
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
#: What every client asks for: the codings decoded here, and no other (httpx's default adds
#: ``br`` and ``zstd`` where their packages happen to be installed, which :class:`Decoder`
#: refuses).
ACCEPT_ENCODING = "gzip, deflate"


class _Stage:
    """One coding undone: a zlib stream (a gzip body may hold several members)."""

    def __init__(self, coding: str) -> None:
        self.coding, self.produced, self._started, self._ended = coding, 0, False, False
        self._z = zlib.decompressobj(_WBITS[coding])

    def steps(self, data: bytes) -> Iterator[bytes]:
        """Decode ``data``: the output in pieces of at most :data:`STEP` bytes, lazily."""
        while data:
            if self._ended:  # NULs after a gzip member are padding (gzip's own reader skips them)
                if not (data := data.lstrip(b"\0")):
                    return
                self._ended = False
            try:
                out = self._z.decompress(data, STEP)
            except zlib.error:
                if self.coding != "deflate" or self._started:
                    raise
                self._z, self._started = zlib.decompressobj(-zlib.MAX_WBITS), True  # raw deflate
                continue
            self._started = True
            data = self._z.unconsumed_tail
            if self._z.eof:
                data = self._z.unused_data + data
                if data and self.coding == "deflate":
                    raise zlib.error("data after the end of the deflate stream")
                if self.coding != "deflate":  # padding, or the next gzip member
                    self._z, self._ended = zlib.decompressobj(_WBITS[self.coding]), True
            self.produced += len(out)
            if out:
                yield out

    def flush(self) -> bytes:
        """What the stream still holds at the end (its input is drained: a match's last bytes)."""
        return self._z.flush()


class Decoder:
    """The codings of a ``Content-Encoding`` undone in turn, the output capped at ``limit``.

    Raises:
        ResponseShapeError: more than :data:`MAX_CODINGS` codings, or one not decoded here.
        ResponseTooLargeError: the decoded body (or a stage's output) passes ``limit``.
        zlib.error: bytes that do not decode.
    """

    def __init__(self, content_encoding: str, limit: int, *, url: httpx.URL | str) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) > MAX_CODINGS:
            msg = f"Content-Encoding has {len(codings)} codings (at most {MAX_CODINGS} are read)"
            raise ResponseShapeError(msg, url=url)
        if unknown := [c for c in codings if c not in _WBITS]:
            msg = f"Content-Encoding {unknown[0][:40]!r} is not one this client asks for or reads"
            raise ResponseShapeError(msg, url=url)
        self._stages = [_Stage(c) for c in reversed(codings)]  # the last applied is undone first
        self._limit, self._url = limit, url
        self.chunks: list[bytes] = []
        self.size = 0

    def feed(self, data: bytes) -> None:
        """Decode ``data`` (raw bytes of the body) into :attr:`chunks`."""
        self._push(0, data)

    def close(self) -> None:
        """Drain what the stages still hold at the end of the body."""
        for i, stage in enumerate(self._stages):
            if tail := stage.flush():
                self._push(i + 1, tail)

    def _push(self, i: int, data: bytes) -> None:
        if i == len(self._stages):
            self.size += len(data)
            if self.size > self._limit:
                raise ResponseTooLargeError(self._limit, url=self._url)
            self.chunks.append(data)
            return
        stage = self._stages[i]
        for out in stage.steps(data):
            # an inner coding's input is no bigger than what it decodes to, give or take
            # its framing: an intermediate stream twice the cap (plus a step) is not a body's
            if stage.produced > 2 * self._limit + STEP:
                raise ResponseTooLargeError(self._limit, url=self._url)
            self._push(i + 1, out)


def read_capped(
    response: httpx.Response, max_bytes: int, *, deadline: Deadline | None = None
) -> None:
    """Read a streamed response's body into it, decoded, stopping as soon as it passes
    ``max_bytes`` (a declared ``Content-Length`` over it fails before reading).

    Raises:
        ResponseTooLargeError: the body (decoded) passes ``max_bytes``.
        ResponseShapeError: a ``Content-Encoding`` this client does not read (:class:`Decoder`).
        TransportError: a timeout (``deadline`` passed between two chunks too), a dropped
            connection, bytes that do not decode.
    """
    url = response.request.url
    declared = as_int(response.headers.get("Content-Length"), what="Content-Length", url=url)
    if declared is not None and declared > max_bytes:
        raise ResponseTooLargeError(max_bytes, url=url)
    decoder = Decoder(response.headers.get("Content-Encoding", ""), max_bytes, url=url)
    try:
        for chunk in _raw(response):
            if deadline is not None:
                deadline.check(url)
            decoder.feed(chunk)
        decoder.close()
    except zlib.error as exc:
        raise TransportError(f"DecodingError: {exc}", url=url) from None
    except httpx.TimeoutException as exc:
        if deadline is not None:
            raise deadline.timed_out(exc, url) from exc
        raise TransportError(f"timed out ({type(exc).__name__})", url=url) from exc
    except httpx.RequestError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}", url=url) from exc
    response._content = b"".join(decoder.chunks)  # as Response.read() does, capped on the way


def _raw(response: httpx.Response) -> Iterable[bytes]:
    """The body's bytes as sent. A response made in memory (``content=``, a mock transport's)
    was read when made, its body decoded by httpx; its stream still holds the bytes as sent,
    which are read again here (the same decoding, cap and deadline as any other)."""
    if not response.is_stream_consumed:
        return response.iter_raw()
    if not isinstance(response.stream, httpx.SyncByteStream):  # pragma: no cover - async
        raise TypeError("read_capped reads a synchronous response")
    return response.stream
