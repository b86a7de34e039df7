"""One paced JSON request over aiohttp, with failures turned into our own error types.

The body of an error answer is read inside the response context (it is gone after),
and nothing of the request's headers ever goes into an exception.

Two of aiohttp's defaults would send a body somewhere we did not decide to, so both are
off: redirects are never followed (a 3xx is a final failure naming only the host it
pointed to), and the one-time silent re-send of a request on a dropped kept-alive
connection is switched off on every session (see `open_session`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bulk.engine.breaker import Breaker
from bulk.engine.errors import (
    AmbiguousAnswer,
    AuthError,
    ConfigError,
    HttpError,
    RedirectRefused,
    StaleRead,
    TransportError,
)
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy, parse_reset, parse_retry_after

#: An error body is a short message; a proxy's HTML page is cut rather than kept whole.
MAX_ERROR_BODY = 4096

#: Checks a 2xx answer's parsed body: None when it is what was asked for, else why not.
AnswerCheck = Callable[[Any], str | None]

#: aiohttp 3.10 re-sends a PUT once, silently, when a kept-alive connection drops, and
#: only from 3.11 on can a session switch that off, through this private attribute.
_RESEND_SWITCH = "_retry_connection"


def require_resend_switch(session_class: type = aiohttp.ClientSession) -> None:
    """Refuse to start (ConfigError, exit 2) with an aiohttp whose silent re-send stays on.

    Checked on the class (its list of known attributes), so it can run before anything
    is opened or sent.
    """
    if _RESEND_SWITCH not in getattr(session_class, "ATTRS", ()):
        raise ConfigError(
            f"aiohttp {aiohttp.__version__} cannot switch off its silent re-send of a "
            "request on a dropped connection; install the version pyproject.toml requires "
            "(pip install -e .)"
        )


def open_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    """A session that never re-sends a request by itself (create it inside the loop).

    A PUT re-sent by aiohttp bypasses our read-back, so a write that landed could land
    twice; our own retry reads the record first.
    """
    require_resend_switch()
    session = aiohttp.ClientSession(connector=connector)
    setattr(session, _RESEND_SWITCH, False)
    return session


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    data: Any
    request_id: str | None
    #: When the request left (the pacer's clock): how old what it shows may be.
    sent_at: float | None = field(default=None, compare=False)


class JsonHttp:
    """Sends single attempts; the caller's retry loop decides about the next one."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        pacer: Pacer,
        policy: RetryPolicy,
        *,
        headers: dict[str, str],
        timeout: float = 30.0,
        breaker: Breaker | None = None,
    ) -> None:
        self._session = session
        self._breaker = breaker
        self._pacer = pacer
        self._policy = policy
        self._headers = headers
        self._body_headers = {**headers, "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.requests = 0

    async def slot(self) -> None:
        """Wait for a pacer slot now, for a request sent later with ``paced=False``.

        Lets a caller look at the time after the wait, before it decides what to send.
        The slot is served ahead of plain requests: it is for a write built on a read
        already made, which must not age behind reads of other rows.
        """
        await self._pacer.acquire(first=True)

    async def cooled(self) -> None:
        """Wait out a shared cooldown (a 429) without taking a new slot."""
        while (left := self._pacer.cooling_for()) > 0:
            await self._pacer.clock.sleep(left)

    async def request(
        self,
        method: str,
        url: str,
        *,
        path: str,
        body: Any = None,
        attempt: int = 1,
        check: AnswerCheck | None = None,
        paced: bool = True,
    ) -> Answer:
        """One attempt: wait for the breaker and the pacer, send, return the 2xx answer.

        A failure during an outage is flagged `outage` (it spends no attempt); see
        breaker.py. Everything else is as `_attempt` says.
        """
        breaker = self._breaker
        if breaker is None:
            return await self._attempt(method, url, path=path, body=body, attempt=attempt,
                                       check=check, paced=paced)
        was_open = breaker.is_open
        probe = await breaker.admit()
        if was_open and not paced:
            # Built from a read taken before the outage (a held slot): by now someone may
            # have changed the record, so read again rather than send it.
            breaker.release(probe)
            raise StaleRead(f"the API was unreachable between the read and the {method}; "
                            "nothing sent, read again", outage=True)  # spends no attempt
        try:
            answer = await self._attempt(method, url, path=path, body=body, attempt=attempt,
                                         check=check, paced=paced)
        except TransportError as exc:
            exc.outage = breaker.failed(path, probe)
            raise
        except HttpError as exc:
            if exc.status >= 500:
                exc.outage = breaker.failed(path, probe)
            else:
                breaker.answered(probe)
            raise
        except BaseException:
            breaker.release(probe)
            raise
        breaker.answered(probe)
        return answer

    async def _attempt(
        self,
        method: str,
        url: str,
        *,
        path: str,
        body: Any = None,
        attempt: int = 1,
        check: AnswerCheck | None = None,
        paced: bool = True,
    ) -> Answer:
        """One attempt: wait for the pacer, send, and return the parsed 2xx answer.

        `path` is what error messages show (never the full URL with its host, and never
        a header). `attempt` is the caller's attempt number (kept for callers; a 429
        pauses for its Retry-After or the pacer's default, whatever the attempt).
        `check` looks at a 2xx body: a reason from it raises AmbiguousAnswer. With
        ``paced=False`` the caller already holds a slot from `slot()`.
        """
        # The time the request leaves: the age of what its answer shows counts from here.
        sent_at = await self._pacer.acquire() if paced else self._pacer.clock.now()
        self.requests += 1
        payload = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = self._headers if payload is None else self._body_headers
        try:
            async with self._session.request(
                method,
                url,
                data=payload,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                answered = response.headers
                if response.status != 429:
                    self._pacer.accepted(sent_at)
                told = _quota_told(answered)
                if told is not None:
                    self._pacer.observe(*told)
                request_id = answered.get("X-Request-Id")
                if 300 <= response.status < 400:
                    location = response.headers.get("Location")
                    raise RedirectRefused(
                        response.status,
                        _host_of(location, url),
                        request_id=request_id,
                        method=method,
                        path=path,
                    )
                if response.status < 300:
                    data = _parse(raw)
                    reason = check(data) if check is not None else None
                    if reason:
                        raise AmbiguousAnswer(
                            response.status,
                            reason,
                            request_id=request_id,
                            method=method,
                            path=path,
                        )
                    return Answer(response.status, data, request_id, sent_at)
                retry_after = parse_retry_after(answered.get("Retry-After"))
                if retry_after is None and response.status == 429:
                    retry_after = parse_reset(answered.get("X-RateLimit-Reset"))
                body_data = _parse(raw[:MAX_ERROR_BODY])
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure = _describe(exc)
            # No connection made: nothing of the request left (a write is not in doubt).
            sent = not isinstance(exc, aiohttp.ClientConnectorError)
        else:
            failure = None
        if failure is not None:
            # Raised outside the `except`: `from None` only hides aiohttp's exception, it
            # stays reachable as __context__, and a ClientResponseError holds the request's
            # headers, token included.
            raise TransportError(failure, method=method, path=path, sent=sent)
        error_type = AuthError if response.status == 401 else HttpError
        error = error_type(
            response.status,
            body_data,
            retry_after=retry_after,
            request_id=request_id,
            method=method,
            path=path,
        )
        if error.status == 429:
            # Everyone waits, not only this worker: the quota is the token's. And the
            # pace settles just under what the server accepted (see pacing.py).
            self._pacer.refused(retry_after, sent_at)
        raise error


def _quota_told(headers: Any) -> tuple[int, int] | None:
    """(X-RateLimit-Limit, X-RateLimit-Remaining) when the answer carries both, readable."""
    limit = headers.get("X-RateLimit-Limit")
    if limit is None:
        return None
    remaining = headers.get("X-RateLimit-Remaining")
    try:
        return int(limit), max(0, int(remaining))
    except (TypeError, ValueError):
        return None  # unreadable: the pacer finds the quota itself


def _parse(raw: bytes) -> Any:
    """An answer's body: its JSON, or its text when it is none (None when empty). Nesting
    too deep for json to read is no JSON we can use either (not a RecursionError)."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _host_of(location: str | None, url: str) -> str | None:
    """Only the host (and port) a redirect points to: never its path, query or userinfo."""
    if location is None:
        return None
    try:
        parts = urlsplit(location.strip())
        host = parts.hostname or urlsplit(url).hostname or "?"
        port = parts.port if parts.hostname else None
    except ValueError:
        return "an unreadable Location"
    host = host[:100]
    return f"{host}:{port}" if port else host


def _describe(exc: BaseException) -> str:
    """A short cause without URLs or headers (aiohttp's messages can carry both)."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out waiting for the server"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without an answer"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer broke off part way"
    return f"connection failed ({type(exc).__name__})"
