"""The proxy a connector's client may use: an environment proxy for HTTPS to a real host only;
and the TLS context it verifies certificates with (:func:`tls_context`, built once).

httpx's default (``trust_env``) sends every request through the environment's proxy, plain-http
ones included: with ``HTTP_PROXY`` set, a loopback vendor's ``Authorization`` header and a token
exchange's form secret went to the proxy in clear text. Every client of the connectors is built
with :func:`proxy_options`: ``trust_env=False`` and the proxy :func:`env_proxy` chooses for its
one origin (a client never leaves it, :func:`~connectors.http.send_request`):

- plain ``http`` (loopback only, by the URL policy) and any loopback host: no proxy, ever;
- ``https`` to another host: ``https_proxy`` / ``HTTPS_PROXY``, else ``all_proxy`` /
  ``ALL_PROXY`` (as the standard library reads them), unless ``no_proxy`` / ``NO_PROXY``
  names the host or a domain it is in (:func:`_bypassed`). The request goes through a
  ``CONNECT`` tunnel, so the proxy sees the host and port but never the credentials, which
  travel inside TLS. ``HTTP_PROXY`` is never used.

Only an ``http://`` or ``https://`` proxy is supported; another scheme (``socks5://``) is refused
by one line that does not quote the proxy's URL (it may hold the proxy's own password).

Example:
    >>> env_proxy(httpx.URL("http://127.0.0.1:8080/v1")) is None
    True
"""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
import urllib.request
from typing import Any

import httpx

from connectors.errors import ConfigError, is_loopback

__all__ = ["env_proxy", "proxy_options", "tls_context"]


def env_proxy(url: httpx.URL) -> str | None:
    """The environment's proxy for requests to ``url``'s origin, or ``None`` (go direct).

    Raises:
        ConfigError: The proxy named for HTTPS is not an ``http(s)://`` URL.
    """
    if url.scheme != "https" or is_loopback(url.host):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy or _bypassed(url, proxies.get("no", "")):
        return None
    proxy = proxy if "://" in proxy else f"http://{proxy}"  # "host:port", as curl reads it
    if proxy.split("://", 1)[0].lower() not in ("http", "https"):
        raise ConfigError("HTTPS_PROXY / ALL_PROXY: only an http:// or https:// proxy is supported")
    return proxy


def _bypassed(url: httpx.URL, no_proxy: str) -> bool:
    """Whether ``no_proxy`` names ``url``'s host: ``*``, the host, or a domain it is in
    (``vendor.test`` and ``.vendor.test`` both cover ``api.vendor.test``), an IP address
    (IPv6 bare or in brackets: ``2001:db8::10``, ``[2001:db8::10]``) or a network of them
    (``10.0.0.0/8``, ``2001:db8::/32``, as curl and httpx read it), with or without the port
    (``host:443``, ``[2001:db8::10]:443``)."""
    host, port = url.host.lower(), str(url.port or 443)
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        name, entry_port = _entry(entry)
        if entry == "*" or (name and entry_port in ("", port) and _covers(name, host)):
            return True
    return False


def _entry(entry: str) -> tuple[str, str]:
    """A ``NO_PROXY`` entry's host (or network) and port (``""``: any)."""
    if entry.startswith("["):  # [v6] or [v6]:port
        name, _, rest = entry[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else ""
    if entry.count(":") > 1:  # a bare IPv6 address or network: its colons are not a port's
        return entry, ""
    name, _, port = entry.partition(":")
    return name, port


def _covers(name: str, host: str) -> bool:
    """Whether the entry ``name`` (a host, a domain, an address or a network) covers ``host``."""
    try:
        network = ipaddress.ip_network(name, strict=False)
    except ValueError:
        name = name.lstrip(".")
        return bool(name) and (host == name or host.endswith(f".{name}"))
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:  # a host name is not in an address's network
        return False


def proxy_options(url: httpx.URL, transport: httpx.BaseTransport | None) -> dict[str, Any]:
    """The ``httpx.Client`` arguments for a client of ``url``'s origin: the environment ignored
    but for :func:`env_proxy`; none with a custom ``transport`` (a proxy would bypass it)."""
    return {"trust_env": False, "proxy": None if transport else env_proxy(url)}


def tls_context() -> ssl.SSLContext:
    """The process's certificate-verifying TLS context (httpx's default: certifi's CAs, or
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set), built once per pair of those variables.

    Loading the CA bundle costs ~30 ms; a run builds a client per source and per token exchange,
    and each would load it again. An ``ssl.SSLContext`` is safe to share between clients.
    """
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _tls_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    del cafile, capath  # the cache key; httpx reads the same variables
    return httpx.create_ssl_context()
