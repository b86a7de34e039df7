"""One cheap request before the first row: is the base URL a Tallyfy API, the token good,
the organization ours? A wrong setting then costs one line and a few seconds, not a
ledger full of `failed` rows.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bulk.engine.clock import Clock
from bulk.engine.errors import AuthError, ConfigError, HttpError, StopJob, body_message
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.targets import Target

#: Seconds for the whole preflight request: an unreachable host is told within seconds.
PREFLIGHT_TIMEOUT = 10.0
#: Tries when there is no answer or a 5xx (a blip should not stop a job before it starts).
PREFLIGHT_TRIES = 3
PREFLIGHT_PAUSE = 1.0


class ApiUnavailable(StopJob):
    """The API answered only 5xx: it is down now; nothing was done (exit 3)."""

    how = "API unavailable"


async def preflight(
    session: aiohttp.ClientSession,
    connection: Connection,
    target: Target,
    headers: dict[str, str],
    clock: Clock,
    *,
    seconds: float = PREFLIGHT_TIMEOUT,
    tries: int = PREFLIGHT_TRIES,
) -> int:
    """Raise ConfigError (exit 2) naming what is wrong, AuthError on a 401 (exit 3),
    ApiUnavailable when it answers only 5xx; return the status when a one-item list (or
    a 429) comes back."""
    host = urlsplit(connection.base_url).hostname or connection.base_url
    url = connection.url(target.preflight_path) + "?per_page=1"
    for attempt in range(1, tries + 1):
        last = attempt == tries
        try:
            status, body = await _get(session, url, headers, seconds)
        except (aiohttp.ClientError, TimeoutError) as exc:
            unreachable, final = _unreachable(exc, host, seconds)
        else:
            unreachable, final = None, False
        if unreachable is not None:
            if final or last:
                # Raised outside the `except`: aiohttp's exception would stay reachable as
                # __context__ (even `from None`), and it can hold the request's headers.
                raise ConfigError(f"{unreachable}; check TALLYFY_BASE_URL (or --base-url)")
            await clock.sleep(PREFLIGHT_PAUSE)
            continue
        if 300 <= status < 400:  # never followed: a token sent on is a token handed over
            raise ConfigError(f"{host} answers the preflight with a redirect (HTTP {status}"
                              f"{_to(body)}), and redirects are never followed; "
                              "check TALLYFY_BASE_URL (or --base-url)")
        if status < 400 or status == 429:  # 429: reachable, and the pacer will cope
            return status
        if status == 401:
            raise AuthError(401, body, method="GET", path=target.preflight_path)
        if status == 403:
            raise ConfigError(f"the token has no access to organization {connection.org_id} "
                              f"(HTTP 403{_detail(body)}); check TALLYFY_ORG_ID (or --org)")
        if status == 404:
            code = body.get("code") if isinstance(body, dict) else None
            what = f"HTTP 404 {code}" if isinstance(code, str) else "HTTP 404"
            raise ConfigError(f"{connection.base_url} is not the Tallyfy API ({what} for "
                              f"GET {target.preflight_path}); "
                              "check TALLYFY_BASE_URL (or --base-url)")
        if status >= 500:
            if last:
                raise ApiUnavailable(f"the API at {host} answers HTTP {status}: it is "
                                     "unavailable now; nothing was sent, run again later")
            await clock.sleep(PREFLIGHT_PAUSE)
            continue
        raise ConfigError("unexpected answer to the preflight request "
                          f"GET {target.preflight_path}: {HttpError(status, body).describe()}")


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], seconds: float
) -> tuple[int, object]:
    limit = aiohttp.ClientTimeout(total=seconds)
    async with session.get(url, headers=headers, timeout=limit,
                           allow_redirects=False) as response:
        raw = await response.read()
        if 300 <= response.status < 400:
            return response.status, {"location": _location_host(response.headers)}
        try:
            body = json.loads(raw[:4096].decode("utf-8", errors="replace")) if raw else None
        except ValueError:
            body = None
        return response.status, body


def _location_host(headers: Any) -> str | None:
    location = headers.get("Location")
    if not location:
        return None
    try:
        return urlsplit(location).hostname
    except ValueError:
        return None


def _to(body: object) -> str:
    host = body.get("location") if isinstance(body, dict) else None
    return f" to {host}" if host else ""


def _detail(body: object) -> str:
    message = body_message(body)
    return f": {message}" if message else ""


def _unreachable(exc: BaseException, host: str, seconds: float) -> tuple[str, bool]:
    """Why no answer came, and whether that is final (asking again cannot help)."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS failure talking to {host}: {_ssl_reason(exc)}", True
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot reach {host}: the name does not resolve", True
    return f"cannot reach {host}: {_transport_reason(exc, seconds)}", False


def _ssl_reason(exc: aiohttp.ClientSSLError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "the server's certificate is not valid for it"
    return "the TLS handshake failed"


def _transport_reason(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {seconds:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        number = exc.os_error.errno
        # asyncio's strerror can be "Connect call failed ('127.0.0.1', 9)": the errno's
        # own words are shorter and say the same.
        cause = os.strerror(number) if number else type(exc.os_error).__name__
        return f"connection failed ({cause})"
    return f"connection failed ({type(exc).__name__})"
