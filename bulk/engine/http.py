"""One paced JSON request over aiohttp, with failures turned into our own error types.

The body of an error answer is read inside the response context (it is gone after),
and nothing of the request's headers ever goes into an exception.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from bulk.engine.breaker import Breaker
from bulk.engine.errors import AuthError, HttpError, TransportError
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy, parse_retry_after

#: An error body is a short message; a proxy's HTML page is cut rather than kept whole.
MAX_ERROR_BODY = 4096


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    data: Any
    request_id: str | None


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
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.requests = 0

    async def request(
        self, method: str, url: str, *, path: str, body: Any = None, attempt: int = 1
    ) -> Answer:
        """One attempt: wait for the breaker and the pacer, send, return the 2xx answer.

        A failure during an outage is flagged `outage` (it spends no attempt); see
        breaker.py. Everything else is as `_attempt` says.
        """
        breaker = self._breaker
        if breaker is None:
            return await self._attempt(method, url, path=path, body=body, attempt=attempt)
        probe = await breaker.admit()
        try:
            answer = await self._attempt(method, url, path=path, body=body, attempt=attempt)
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
        self, method: str, url: str, *, path: str, body: Any = None, attempt: int = 1
    ) -> Answer:
        """One attempt: wait for the pacer, send, and return the parsed 2xx answer.

        `path` is what error messages show (never the full URL with its host, and never
        a header). `attempt` is the caller's attempt number (kept for callers; a 429
        pauses for its Retry-After or the pacer's default, whatever the attempt).
        """
        sent_at = await self._pacer.acquire()
        self.requests += 1
        payload = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = self._headers
        if payload is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            async with self._session.request(
                method, url, data=payload, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                if response.status != 429:
                    self._pacer.accepted()
                request_id = response.headers.get("X-Request-Id")
                if response.status < 400:
                    return Answer(response.status, _parse(raw), request_id)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                body_data = _parse(raw[:MAX_ERROR_BODY])
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransportError(_describe(exc), method=method, path=path) from None
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


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


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
