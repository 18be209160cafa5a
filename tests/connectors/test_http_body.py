"""A response body read from a real loopback server: its codings decoded under the cap."""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.emulator.server import Request, Response
from connectors.errors import ResponseShapeError, ResponseTooLargeError, TransportError
from connectors.http import make_client
from connectors.wire import deadline
from connectors.wire.body import Deadline, Decoder, read_capped
from tests.connectors import ujet_support as ujet

MIB = 2**20


def gzipped(chunks: Any) -> bytes:
    """The gzip stream of ``chunks`` (an iterable of bytes), built a piece at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return b"".join([*(packer.compress(c) for c in chunks), packer.flush()])


class Counted:
    """A zlib decompressor that adds what it decodes to ``counts`` (httpx's and ours alike)."""

    def __init__(self, inner: Any, counts: list[int]) -> None:
        self._inner, self._counts = inner, counts

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self._inner.decompress(data, max_length)
        self._counts.append(len(out))
        return out

    def flush(self, *args: int) -> bytes:
        out: bytes = self._inner.flush(*args)
        self._counts.append(len(out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every piece any zlib decompressor produces from here on."""
    counts: list[int] = []
    make = zlib.decompressobj
    monkeypatch.setattr(zlib, "decompressobj", lambda *a: Counted(make(*a), counts))
    return counts


def test_nested_gzip_stops_at_the_cap_not_after_inflating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Content-Encoding: gzip, gzip``: a few KB that decode to 64 MiB. httpx undid both
    codings of a network chunk in one go (1,827 bytes -> 1 GiB held, 4 GiB a MemoryError) before
    the cap was checked. Decoded here a step at a time, it stops at the cap: one line, and no
    more than the cap and a step of each stage was ever decoded."""
    bomb = gzipped([gzipped(bytes(MIB) for _ in range(64))])
    assert len(bomb) < 16_000

    def nested(n: int, request: Request, response: Response) -> Response:
        if not request.path.endswith("/calls"):
            return response
        return Response(200, None, {"Content-Encoding": "gzip, gzip"}, body=bomb)

    counts = decoded(monkeypatch)
    with ujet.emulator(ujet.small_contacts(scale=0.01)) as emu:
        emu.add_rewrite(nested)
        settings = ujet.settings_for(emu, streams=["calls"], max_page_bytes=MIB)
        (report,) = ujet.sync(tmp_path, settings)
    assert (report.error or "").startswith("response body over the cap of max_page_bytes=1048576")
    assert "\n" not in (report.error or "")
    assert report.retries == 0  # too large is not retried
    # both stages together: the cap and a step of the inner one, the outer one's input to it
    assert sum(counts) <= 4 * MIB


def test_a_body_in_two_codings_under_the_cap_is_read(tmp_path: Path) -> None:
    """``gzip, gzip`` is legal HTTP: a body under the cap is decoded and lands."""

    def nested(n: int, request: Request, response: Response) -> Response:
        if not request.path.endswith("/calls") or response.status != 200:
            return response
        plain = response.body or json.dumps(response.payload, separators=(",", ":")).encode()
        headers = dict(response.headers) | {"Content-Encoding": "gzip, gzip"}
        return Response(200, response.payload, headers, body=gzipped([gzipped([plain])]))

    with ujet.emulator(ujet.small_contacts(scale=0.01)) as emu:
        emu.add_rewrite(nested)
        (report,) = ujet.sync(tmp_path, ujet.settings_for(emu, streams=["calls"]))
    assert report.ok, report.error
    assert report.landed > 0


def test_a_sync_asks_only_for_the_codings_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx asks for ``br`` and ``zstd`` too where their packages happen to be installed, and a
    server answering in one would stop every sync (the reader refuses them): each request of a
    sync asks for ``gzip, deflate`` only, whatever httpx's default."""
    monkeypatch.setattr(httpx._client, "ACCEPT_ENCODING", "gzip, deflate, br, zstd")
    asked: list[str] = []

    def record(n: int, request: Request, response: Response) -> Response:
        asked.append(request.headers.get("accept-encoding", request.headers.get("Accept-Encoding")))
        return response

    with ujet.emulator(ujet.small_contacts(scale=0.01)) as emu:
        emu.add_rewrite(record)
        (report,) = ujet.sync(tmp_path, ujet.settings_for(emu, streams=["calls"]))
    assert report.ok, report.error
    assert len(asked) > 1
    assert set(asked) == {"gzip, deflate"}


@pytest.mark.parametrize(
    ("coding", "why"),
    [("gzip, gzip, gzip", "has 3 codings (at most 2 are read)"), ("br", "'br' is not one")],
)
def test_codings_not_read_here_are_refused_unread(coding: str, why: str) -> None:
    with pytest.raises(ResponseShapeError, match=f"^Content-Encoding {re.escape(why)}"):
        Decoder(coding, MIB, url="https://x.test/a")


class Trickle:
    """A loopback server that sends a 200's headers (``Content-Length: 10002``), then its body
    a byte every ``gap`` seconds, each well within any read timeout: it never ends by itself.
    With ``head``, it is a header that never ends (its status line, then ``X-Slow: aaa…``)."""

    def __init__(self, gap: float = 0.02, *, head: bool = False) -> None:
        self.gap, self.connections, self.head = gap, 0, head
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/manager/api/v1"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        socket.create_connection(self._sock.getsockname()).close()  # wakes the accept
        self._thread.join()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._stop.is_set():
                conn.close()
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10002\r\n\r\n"
        head += b"[]"
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: " if self.head else head)
                for _ in range(10_000):
                    if self._stop.wait(self.gap):
                        return
                    conn.sendall(b"a" if self.head else b" ")
            except OSError:  # the client gave up and closed the connection
                return


@pytest.mark.parametrize("head", [False, True], ids=["body", "headers"])
def test_a_trickled_response_times_out_at_the_total_and_is_retried(
    tmp_path: Path, head: bool
) -> None:
    """Headers, then a byte a second: every read within the read timeout, so the request never
    timed out (45 s in, still reading; at a byte every 59 s, years) while the store was locked.
    ``timeouts.total`` bounds the whole request: a timeout, retried, then one line. Headers
    that never end (a byte at a time, httpcore waits for 100 KiB of them) as well: the total was
    only checked between the body's chunks, and such a request ran for as long as the server
    sent."""
    with Trickle(head=head) as server, ujet.emulator(ujet.small_contacts(scale=0.01)) as emu:
        timeouts = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0, "total": 0.3}
        settings = ujet.settings_for(emu, streams=["calls"], max_retries=2, timeouts=timeouts)
        settings = settings.model_copy(update={"base_url": server.url})
        (report,) = ujet.sync(tmp_path, settings)
        connections = server.connections
    assert (report.error or "").startswith(
        "gave up after 3 attempts: timed out (the request took over timeouts.total=0.3 s)"
    )
    assert report.retries == 2
    assert connections == 3


def test_a_content_length_of_too_many_digits_is_one_line() -> None:
    """``int()`` of the header's 5,000 digits raised ``ValueError`` (a traceback)."""
    stream = httpx.ByteStream(b"[]")
    response = httpx.Response(200, headers={"Content-Length": "9" * 5000}, stream=stream)
    response.request = httpx.Request("GET", "https://x.test/a")
    with pytest.raises(
        ResponseShapeError, match=r"^Content-Length of 5000 digits where a count belongs \(https://"
    ):
        read_capped(response, MIB)


@contextmanager
def serving(raw: bytes, coding: str) -> Iterator[str]:
    """A loopback server answering every GET with ``raw`` as ``Content-Encoding: coding``,
    written a few bytes at a time; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Encoding", coding)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            for at in range(0, len(raw), 7):
                self.wfile.write(raw[at : at + 7])
                self.wfile.flush()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/a"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def read_served(raw: bytes, coding: str, max_bytes: int = MIB) -> bytes:
    """``raw`` served as ``coding`` over loopback, streamed and read by :func:`read_capped`."""
    with (
        serving(raw, coding) as url,
        httpx.Client() as client,
        client.stream("GET", url) as response,
    ):
        read_capped(response, max_bytes)
        return response.content


PLAIN = json.dumps([{"id": n, "queue": "sales"} for n in range(200)]).encode()


@pytest.mark.parametrize(
    ("raw", "coding"),
    [
        (gzip.compress(PLAIN) + bytes(4), "gzip"),  # padded with NULs: gzip's reader skips them
        (gzip.compress(PLAIN) + bytes(40), "x-gzip"),
        (gzip.compress(PLAIN[:100]) + bytes(3) + gzip.compress(PLAIN[100:]) + bytes(2), "gzip"),
        (gzip.compress(PLAIN[:100]) + gzip.compress(PLAIN[100:]), "gzip"),  # two members
        (zlib.compress(PLAIN), "deflate"),  # zlib's framing, as the RFC says
        (zlib.compress(PLAIN)[2:-4], "deflate"),  # raw deflate, as some servers send
        (gzipped([zlib.compress(PLAIN)]), "deflate, gzip"),
    ],
    ids=["nuls", "x-gzip-nuls", "members-nuls", "members", "zlib", "raw-deflate", "two"],
)
def test_a_streamed_body_in_any_coding_read_here_decodes(raw: bytes, coding: str) -> None:
    """A gzip body padded with NULs (``gzip.decompress`` reads it, and httpx did) failed every
    sync ("incorrect header check": the padding taken for a next member)."""
    assert read_served(raw, coding) == PLAIN


@pytest.mark.parametrize(
    ("raw", "coding"),
    [
        (b"", "gzip"),
        (gzip.compress(b""), "gzip"),
        (b"", "deflate"),
        (zlib.compress(b""), "deflate"),
    ],
    ids=["no-bytes-gzip", "gzip", "no-bytes-deflate", "deflate"],
)
def test_an_empty_streamed_body_decodes_to_nothing(raw: bytes, coding: str) -> None:
    assert read_served(raw, coding) == b""


def test_nuls_after_a_gzip_member_one_byte_at_a_time_are_padding() -> None:
    decoder = Decoder("gzip", MIB, url="https://x.test/a")
    for byte in gzip.compress(PLAIN) + bytes(5):
        decoder.feed(bytes([byte]))
    decoder.close()
    assert b"".join(decoder.chunks) == PLAIN


def test_bytes_after_the_padding_that_are_no_member_do_not_decode() -> None:
    with pytest.raises(TransportError, match="DecodingError"):
        read_served(gzip.compress(PLAIN) + bytes(3) + b"junk", "gzip")


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_decoded_body_at_the_cap_is_read_one_byte_over_is_not(coding: str) -> None:
    pack = gzip.compress if coding == "gzip" else zlib.compress
    assert read_served(pack(PLAIN), coding, max_bytes=len(PLAIN)) == PLAIN
    with pytest.raises(ResponseTooLargeError, match=f"max_page_bytes={len(PLAIN) - 1}"):
        read_served(pack(PLAIN), coding, max_bytes=len(PLAIN) - 1)


def mocked(content: bytes, coding: str) -> httpx.Response:
    """A response made in memory by a mock transport (httpx read and decoded it when made),
    as :func:`~connectors.http.send_request` gets it: streamed."""
    headers = {"Content-Encoding": coding}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, headers=headers, content=content))
    with httpx.Client(transport=transport) as client, client.stream("GET", "https://x.test/a") as r:
        return r


def test_a_response_made_in_memory_is_decoded_from_its_bytes_as_sent() -> None:
    response = mocked(gzip.compress(PLAIN), "gzip")
    read_capped(response, MIB)
    assert response.content == PLAIN
    with pytest.raises(ResponseTooLargeError):
        read_capped(mocked(gzip.compress(PLAIN), "gzip"), len(PLAIN) - 1)


def test_a_response_made_in_memory_is_held_to_the_codings_and_the_deadline() -> None:
    """A mock transport's response skipped the reader (a branch on httpx's private
    ``_content``): no coding refused, no deadline checked. It takes the one path now."""
    triple = gzip.compress(gzip.compress(gzip.compress(PLAIN)))
    with pytest.raises(ResponseShapeError, match="has 3 codings"):
        read_capped(mocked(triple, "gzip, gzip, gzip"), MIB)
    passed = Deadline(at=time.monotonic() - 1.0, total=1.0)
    with pytest.raises(TransportError, match=r"timeouts.total=1 s"):
        read_capped(mocked(PLAIN, "identity"), MIB, deadline=passed)


def test_every_connection_a_client_opens_is_held_to_its_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline sits in the network backend of the connection pools httpx builds (an
    argument httpx does not pass on): the direct pool's and, with an HTTPS proxy, the proxy's.
    An httpx that builds its pools otherwise fails here, not silently in the field."""
    monkeypatch.setenv("HTTPS_PROXY", "http://corp.proxy.invalid:3128")
    with make_client("https://vendor.invalid/api") as client:
        transports = (client._transport, *client._mounts.values())
    pools: list[Any] = [t._pool for t in transports]
    assert len(pools) == 2
    assert all(isinstance(p._network_backend, deadline._Backend) for p in pools)
