"""``[serve]``: who may call ``wfm-intervals serve``, its limits and its certificate.

Credentials are ``SecretStr`` and come through the usual secrets mechanism (``WFM_SERVE__…``
variables, ``.env``, files in ``WFM_SECRETS_DIR``), never from a committed TOML file.

Example:
    >>> s = ServeSettings(kore_apps={"cs-1": "s3cret"})
    >>> s.kore_apps["cs-1"].get_secret_value(), s.rate_limit_per_minute
    ('s3cret', 600)
    >>> s.kore_apps
    {'cs-1': SecretStr('**********')}
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)

__all__ = ["ServeSettings"]


def _network(item: object) -> bool:
    """``item`` is an address or a network as text (``ipaddress``'s strict reading)."""
    try:
        return isinstance(item, str) and bool(ipaddress.ip_network(item))
    except ValueError:
        return False


class ServeSettings(BaseModel):
    """``[serve]`` settings.

    Attributes:
        store: the built output directory served (``None``: ``[output] dir``).
        kore_account_id: the ``{accountId}`` of the Contact Volume path (``None``: any).
        kore_apps: ``appId`` -> the HS256 secret that signs that app's ``auth`` JWT.
        tokens: static Bearer tokens accepted by the callback metrics endpoint.
        oauth_clients: ``client_id`` -> secret for ``POST /oauth2/token`` (client credentials).
        token_lifetime_s: lifetime of the tokens the token endpoint issues.
        rate_limit_per_minute: requests per client (credential, else address) per minute.
        max_body_bytes: larger request bodies are refused with 413.
        certfile, keyfile: PEM certificate and key: HTTPS when both are set.
        trusted_proxies: addresses or networks (``10.0.0.5``, ``10.0.0.0/8``, ``fd00::/8``) of
            reverse proxies whose ``X-Forwarded-For`` (and ``X-Forwarded-Proto``) is honoured:
            a request from one of them counts against the address the header names (the
            nearest one that is not itself a trusted proxy). Empty (the default): no header is
            trusted, a client is its connecting address. A network with host bits set
            (``10.0.0.1/8``) or a host name is refused at load.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Path | None = None
    kore_account_id: str | None = None
    kore_apps: dict[str, SecretStr] = {}
    tokens: tuple[SecretStr, ...] = ()
    oauth_clients: dict[str, SecretStr] = {}
    token_lifetime_s: int = Field(default=3600, ge=60)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    max_body_bytes: int = Field(default=16_384, ge=256)
    certfile: Path | None = None
    keyfile: Path | None = None
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        """Each item an address or network as text (``ipaddress``'s strict reading), said
        with an example of each; not a list: said as such."""
        if not isinstance(value, list | tuple):
            raise ValueError('a list of addresses or networks, e.g. ["10.0.0.5", "10.1.0.0/16"]')
        for item in value:
            if not _network(item):
                msg = (
                    f"{item!r} is not an IP address or network: give e.g. 10.0.0.5 or "
                    "10.0.0.0/8 (a network's host bits zero; no host names)"
                )
                raise ValueError(msg)
        return value

    @field_validator("kore_apps", "tokens", "oauth_clients")
    @classmethod
    def _text(cls, value: Any) -> Any:
        """Every secret valid text: one read from a variable holding a byte that is not UTF-8
        (a lone surrogate) cannot be compared or sign a token (every request a 500)."""
        for secret in value.values() if isinstance(value, dict) else value:
            try:
                secret.get_secret_value().encode()
            except UnicodeEncodeError:
                raise ValueError("not a usable secret: it is not valid text") from None
        return value

    @model_validator(mode="after")
    def _pair(self) -> ServeSettings:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("give both certfile and keyfile, or neither")
        return self

    @property
    def tls(self) -> bool:
        """A certificate is configured."""
        return self.certfile is not None
