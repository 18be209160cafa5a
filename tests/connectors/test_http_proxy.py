"""An environment proxy never sees a credential: loopback and plain-http requests go direct.

httpx reads ``HTTP_PROXY`` / ``ALL_PROXY`` by default and sends a plain-http request to the proxy
whole, headers included: with ``HTTP_PROXY`` set, every loopback vendor's ``Authorization``
header and the Mindful token exchange's client secret went to the proxy in clear text (and the
sync then failed on the proxy's 502). An https request to another host may still use
``HTTPS_PROXY`` / ``ALL_PROXY`` (a ``CONNECT`` tunnel: the proxy sees the host, not the headers),
unless ``NO_PROXY`` names the host.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from connectors.emulator import MindfulEmulator
from connectors.errors import ConfigError, TransportError
from connectors.http import HeaderAuth, make_client, send_request
from connectors.sync import sync_source
from connectors.vendors.mindful.client import MINDFUL
from connectors.vendors.ujet.client import UJET
from connectors.wire.proxy import env_proxy
from tests.connectors import mindful_support, ujet_support

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@contextmanager
def recording_proxy() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback "proxy" that records the first bytes of each connection and answers 502."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                received.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", received
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every proxy variable pointed at a recording proxy, ``NO_PROXY`` unset; what it received."""
    with recording_proxy() as (url, received):
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield received


def test_a_mindful_sync_on_loopback_goes_direct_though_a_proxy_is_set(
    tmp_path: Path, proxy: list[bytes]
) -> None:
    with MindfulEmulator(mindful_support.small_attempts()) as emu:
        settings = mindful_support.settings_for(emu)
        (report,) = sync_source(
            MINDFUL, settings, landing_root=tmp_path / "l", state_root=tmp_path / "s"
        )
        assert emu.stats.requests > 1  # the token exchange and the pages
    assert report.ok, report.error
    assert proxy == []


def test_a_ujet_sync_on_loopback_keeps_its_basic_credentials_from_the_proxy(
    tmp_path: Path, proxy: list[bytes]
) -> None:
    with ujet_support.emulator(ujet_support.small_contacts()) as emu:
        settings = ujet_support.settings_for(emu)
        reports = sync_source(
            UJET, settings, landing_root=tmp_path / "l", state_root=tmp_path / "s"
        )
    assert [r.error for r in reports if not r.ok] == []
    assert proxy == []


def test_https_to_a_real_host_tunnels_through_the_proxy_without_its_credentials(
    proxy: list[bytes],
) -> None:
    secret = "proxy-Kq27-never-seen"  # noqa: S105 - a fake credential
    auth = HeaderAuth("Authorization", SecretStr(secret), scheme="Bearer")
    with (
        make_client("https://vendor.invalid/api", auth=auth) as client,
        pytest.raises(TransportError),
    ):
        send_request(client, client.build_request("GET", "calls"))
    assert len(proxy) == 1
    assert proxy[0].startswith(b"CONNECT vendor.invalid:443 ")
    assert secret.encode() not in proxy[0]
    assert b"Authorization" not in proxy[0]


def test_the_environment_chooses_a_proxy_for_https_to_real_hosts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (*PROXY_VARIABLES, "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://plain.proxy:3128")
    assert env_proxy(httpx.URL("https://api.vendor.test/v1")) is None  # HTTP_PROXY never
    monkeypatch.setenv("ALL_PROXY", "corp.proxy:8080")
    assert env_proxy(httpx.URL("https://api.vendor.test/v1")) == "http://corp.proxy:8080"
    monkeypatch.setenv("HTTPS_PROXY", "https://tls.proxy:443")
    assert env_proxy(httpx.URL("https://api.vendor.test/v1")) == "https://tls.proxy:443"
    for loopback in ("https://127.0.0.1:8443", "https://localhost/x", "https://[::1]:1/"):
        assert env_proxy(httpx.URL(loopback)) is None
    assert env_proxy(httpx.URL("http://127.0.0.1:8080")) is None
    monkeypatch.setenv("NO_PROXY", "x.test, .vendor.test")
    assert env_proxy(httpx.URL("https://api.vendor.test/v1")) is None
    assert env_proxy(httpx.URL("https://other.test/v1")) == "https://tls.proxy:443"
    monkeypatch.setenv("NO_PROXY", "vendor.test:8443")
    assert env_proxy(httpx.URL("https://vendor.test:8443/v1")) is None
    assert env_proxy(httpx.URL("https://vendor.test/v1")) == "https://tls.proxy:443"
    assert env_proxy(httpx.URL("https://notvendor.test/v1")) == "https://tls.proxy:443"
    monkeypatch.setenv("no_proxy", "*")
    assert env_proxy(httpx.URL("https://vendor.test/v1")) is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("2001:db8::10", "https://[2001:db8::10]/v1", True),
        ("[2001:db8::10]", "https://[2001:db8::10]/v1", True),
        ("[2001:db8::10]:443", "https://[2001:db8::10]/v1", True),
        ("[2001:DB8:0::10]:8443", "https://[2001:db8::10]:8443/v1", True),
        ("[2001:db8::10]:8443", "https://[2001:db8::10]/v1", False),
        ("2001:db8::10", "https://[2001:db8::11]/v1", False),
        ("2001:db8::/32", "https://[2001:db8::10]/v1", True),
        ("10.0.0.0/8", "https://10.2.3.4/v1", True),
        ("10.0.0.0/8", "https://11.2.3.4/v1", False),
        ("10.0.0.0/8", "https://[2001:db8::10]/v1", False),
        ("10.0.0.0/8", "https://ten.vendor.test/v1", False),
        ("192.0.2.7:443", "https://192.0.2.7/v1", True),
        ("192.0.2.7", "https://192.0.2.70/v1", False),
        ("vendor.test, 2001:db8::10", "https://[2001:db8::10]/v1", True),
    ],
)
def test_no_proxy_names_addresses_and_networks(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, url: str, direct: bool
) -> None:
    """An IPv6 entry was split at its first colon and never matched (httpx's own reading of
    ``NO_PROXY``, which this replaced, went direct); networks are read as curl and httpx do."""
    for name in (*PROXY_VARIABLES, "ALL_PROXY", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://corp.proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert env_proxy(httpx.URL(url)) == (None if direct else "http://corp.proxy:3128")


def test_a_socks_proxy_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw-Zz@socks.test:1080")
    with pytest.raises(ConfigError, match="only an http:// or https:// proxy") as caught:
        make_client("https://api.vendor.test")
    assert "pw-Zz" not in str(caught.value)
