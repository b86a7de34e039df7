"""Where to send requests and with what token, from the environment.

The token never comes from a flag (it would land in shell history and `ps`), and its
`repr` is masked so no log line, traceback or ledger can show it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bulk.engine.errors import ConfigError

DEFAULT_BASE_URL = "https://go.tallyfy.com/api"
HEX32 = re.compile(r"[0-9a-f]{32}")


class Secret:
    """A string that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Connection:
    base_url: str
    org_id: str
    token: Secret

    def url(self, *segments: str) -> str:
        return "/".join([self.base_url, "organizations", self.org_id, *segments])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """A usable base URL without trailing slash; plain http only to this machine."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http:// to {parts.hostname}: the token would cross the network "
            "unencrypted; use https:// (plain http is allowed only for loopback)"
        )
    return base_url.rstrip("/")


def connection_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    org_id: str | None = None,
) -> Connection:
    """Settings from TALLYFY_ACCESS_TOKEN, TALLYFY_ORG_ID and TALLYFY_BASE_URL.

    Explicit `base_url`/`org_id` (from flags or a job file) win over the environment.
    """
    env = os.environ if environ is None else environ
    token = env.get("TALLYFY_ACCESS_TOKEN", "").strip()
    if not token:
        raise ConfigError("TALLYFY_ACCESS_TOKEN is not set (the token is read only from there)")
    org = (org_id or env.get("TALLYFY_ORG_ID", "")).strip()
    if not org:
        raise ConfigError("no organization: set TALLYFY_ORG_ID or pass --org")
    if not HEX32.fullmatch(org):
        raise ConfigError(f"organization id {org!r} is not a 32-character lowercase hex id")
    url = base_url or env.get("TALLYFY_BASE_URL") or DEFAULT_BASE_URL
    return Connection(base_url=check_base_url(url), org_id=org, token=Secret(token))
