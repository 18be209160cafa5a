"""HS256 JSON Web Tokens for the Kore.ai emulator, with the standard library only (RFC 7515/7519).

The emulator checks the ``auth`` header with :func:`verify_hs256`; :func:`sign_hs256` makes valid
tokens for tests and the demo. The connector signs its own tokens with separate code
(:mod:`connectors.vendors.kore.auth`), so a bug in one is caught by the other.

Example:
    >>> token = sign_hs256({"appId": "cs-1"}, "s3cret")
    >>> verify_hs256(token, "s3cret"), verify_hs256(token, "guess")
    ({'appId': 'cs-1'}, None)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

__all__ = ["sign_hs256", "verify_hs256"]

_HEADER = {"alg": "HS256", "typ": "JWT"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not text or any(c not in _ALPHABET for c in text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url(data) != text:  # non-canonical trailing bits: a second spelling of the same bytes
        raise ValueError("not canonical base64url")
    return data


_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign_hs256(claims: dict[str, Any], secret: str | bytes) -> str:
    """A compact JWS: ``base64url(header).base64url(claims).base64url(HMAC-SHA256)``."""
    head = _b64url(json.dumps(_HEADER, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(_key(secret), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(signature)}"


def verify_hs256(token: str, secret: str | bytes) -> dict[str, Any] | None:
    """The claims of a token signed HS256 with ``secret``, else ``None`` (never raises).

    The header must say ``"alg": "HS256"`` (``none`` and other algorithms are refused) and the
    claims must be a JSON object; the signature is compared in constant time.
    """
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64url(parts[0]))
        signature = _unb64url(parts[2])
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            return None
        signed = f"{parts[0]}.{parts[1]}".encode()
        expected = hmac.new(_key(secret), signed, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return None
        claims = json.loads(_unb64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None
