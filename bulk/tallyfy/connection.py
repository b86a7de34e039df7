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
from urllib.parse import SplitResult, urlsplit

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

    def __post_init__(self) -> None:
        # However it was made (environment, flags, or a library caller), a connection
        # never holds a base URL with credentials or a token no header can carry.
        check_base_url(self.base_url)
        check_token(self.token.reveal())

    def url(self, *segments: str) -> str:
        return "/".join([self.base_url, "organizations", self.org_id, *segments])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _unprintable(text: str) -> tuple[int, str] | None:
    """(1-based position, what it is) of the first character an HTTP header or URL cannot
    carry as is: whitespace, a control character, or anything outside ASCII."""
    for position, char in enumerate(text, 1):
        if char == " " or char == "\t":
            return position, "a space"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return position, "a control character"
        if ord(char) > 0x7E:
            return position, "a non-ASCII character"
    return None


def check_token(token: str) -> Secret:
    """The token as a Secret, or a ConfigError that never shows it.

    aiohttp refuses such a header on every request (a traceback per row), and a
    server would answer 401 to a mangled one: refused once, before any request.
    """
    found = _unprintable(token)
    if found is not None:
        position, what = found
        raise ConfigError(
            f"TALLYFY_ACCESS_TOKEN contains {what} (character {position} of {len(token)}): "
            "not a usable bearer token; check how it was copied (the token is not shown here)"
        )
    return Secret(token)


def _redacted(parts: SplitResult) -> str:
    """The URL with any user:password@, query and fragment masked, for messages (any of
    them may hold a secret)."""
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "***" if parts.query else ""
    fragment = "***" if parts.fragment else ""
    return parts._replace(netloc=netloc, query=query, fragment=fragment).geturl()


def check_base_url(base_url: str) -> str:
    """A usable base URL without trailing slash; plain http only to this machine.

    Refused: anything a URL cannot carry as is, credentials (`user:pass@`: the token is
    the only credential, and the base URL is stored in the ledger), a query or fragment
    (paths are appended to the base URL, so they would end up in the middle of it).
    Messages never repeat a password.
    """
    found = _unprintable(base_url)
    if found is not None:
        position, what = found
        raise ConfigError(f"base URL contains {what} (character {position}); "
                          "give it as a plain https:// URL")
    parts = urlsplit(base_url)
    shown = _redacted(parts)
    if "@" in parts.netloc:
        raise ConfigError(
            f"base URL {shown!r} has credentials in it (user:password@): refused, since the "
            "base URL is stored in the ledger; the token comes only from TALLYFY_ACCESS_TOKEN"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {shown!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 (a port out of range raises here, not per request)
    except ValueError:
        raise ConfigError(f"base URL {shown!r} has an invalid port") from None
    if "?" in base_url or "#" in base_url:
        raise ConfigError(f"base URL {shown!r} has a query or fragment (?...#...); "
                          "give only scheme, host and path, e.g. https://go.tallyfy.com/api")
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
    return Connection(base_url=check_base_url(url), org_id=org, token=check_token(token))
