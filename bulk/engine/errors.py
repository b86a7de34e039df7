"""Errors are data: each type carries what a caller needs to decide and to report.

None of them ever holds request headers, so the access token cannot leak through an
exception message or a traceback.
"""

from __future__ import annotations

from typing import Any


class InputError(Exception):
    """The input as a whole cannot be used (exit 2, nothing sent).

    The message is one line and names the file (and row/column where there is one).
    """


class RowInvalid(Exception):
    """One row cannot be used; the message names the file, the row and the column.

    The row is recorded as ``invalid`` and the job goes on with the others.
    """


class BadValue(ValueError):
    """A value does not fit its column or field; the caller adds file, row and column."""


class PlanError(Exception):
    """The row cannot be applied safely to this record; nothing is sent (the row fails)."""


class SelectFailed(Exception):
    """A select's list could not be read to its end (a final HTTP error, or no usable
    answer); nothing is written."""


class ConfigError(Exception):
    """A usage or configuration problem (exit 2)."""


class LedgerMismatch(ConfigError):
    """The ledger belongs to another job (other input, target or org)."""


class NotALedger(ConfigError):
    """The ledger path holds something that is not a bulk ledger; it is left untouched."""


class LedgerInUse(ConfigError):
    """Another process holds the ledger's run lock (a second run on one ledger)."""


class LedgerWriteError(ConfigError):
    """The ledger could not be written (disk full, I/O error): the job stops cleanly."""


def request_suffix(method: str, path: str) -> str:
    """How every message names its request: " (PUT runs/abc)", or nothing without one."""
    return f" ({method} {path})" if method else ""


class RequestError(Exception):
    """A request that brought no usable answer; the base of every HTTP-level failure.

    It carries what a caller needs to decide and to report: the request (`method`,
    `path`, never its headers), the server's `request_id` when there was an answer, and
    `outage`: set when the failure came during an outage the breaker declared (such a
    failure spends no attempt; see retry.spends_attempt). The message is `what()`
    followed by the request, always formatted by `request_suffix`.
    """

    def __init__(
        self,
        *,
        method: str = "",
        path: str = "",
        request_id: str | None = None,
        outage: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.request_id = request_id
        self.outage = outage
        super().__init__(self.describe())

    def what(self) -> str:
        """What went wrong, without the request."""
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line message: what went wrong, then the request."""
        return self.what() + request_suffix(self.method, self.path)


class HttpError(RequestError):
    """The server answered with a status that is not a success."""

    def __init__(
        self,
        status: int,
        body: Any = None,
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(method=method, path=path, request_id=request_id)

    def what(self) -> str:
        """Status and the server's own message if any."""
        detail = body_message(self.body)
        return f"HTTP {self.status}{': ' + detail if detail else ''}"


class AuthError(HttpError):
    """401: the token is invalid or expired; every later row would fail the same way."""


class RedirectRefused(HttpError):
    """A 3xx: never followed, so a body is never re-sent to wherever it points.

    Only the Location's host is kept (never its path or query, which can carry secrets).
    """

    def __init__(
        self,
        status: int,
        location_host: str | None,
        *,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.location_host = location_host
        super().__init__(status, None, request_id=request_id, method=method, path=path)

    def what(self) -> str:
        """Status and where it pointed; a redirect is never followed."""
        if self.location_host is None:
            target = "without a Location"
        else:
            target = f"to {self.location_host}"
        return f"HTTP {self.status}: redirect {target}, not followed"


class AmbiguousAnswer(RequestError):
    """A success status whose body does not show what was asked for.

    An empty or HTML body, an object without the record, another record, or one without
    the fields the caller needs: it proves nothing, so a write that got it may or may not
    have been applied, and the caller reads back before anything else.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.reason = reason
        super().__init__(method=method, path=path, request_id=request_id)

    def what(self) -> str:
        return f"HTTP {self.status} without the record: {self.reason}"


class StaleRead(RequestError):
    """The data a write was built from kept aging past its limit before it could leave.

    Nothing was sent on its account; another attempt reads again.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "",
                 outage: bool = False) -> None:
        self.message = message
        super().__init__(method=method, path=path, outage=outage)

    def what(self) -> str:
        return self.message


class StopJob(Exception):
    """Every later row would fail the same way (the API is down, every row is refused
    alike): the job stops, rows not done stay pending, exit 3. The message is one line."""

    #: How the job's stop is named in its history (`bulk status`, `bulk report`).
    how = "stopped"


class NotBegun(Exception):
    """The job began to stop while the row waited to begin (at the row gate): it never
    began, nothing was read or sent for it, and it is left for the next run."""


class TransportError(RequestError):
    """No usable answer: connection refused or dropped, timeout, unreadable body.

    Whether a write was applied is unknown, so a write that ends here is in doubt.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "",
                 sent: bool = True) -> None:
        self.message = message
        #: False when no byte of the request left (no connection was made): a write
        #: that ends so is not in doubt. True whenever it cannot be told.
        self.sent = sent
        super().__init__(method=method, path=path)

    def what(self) -> str:
        return self.message


def body_message(body: Any) -> str:
    """The server's own message in an error body (Laravel's `errors`, `message`...), or ""."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            parts = []
            for field, messages in errors.items():
                if not isinstance(messages, list):
                    messages = [messages]
                text = "; ".join(map(str, messages))
                parts.append(f"{field}: {text}")
            return ", ".join(parts)
        for key in ("message", "error", "code"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        return ""
    if isinstance(body, str):
        text = " ".join(body.split())
        if text.lstrip().startswith("<"):
            return "non-JSON (HTML) body"
        return text[:200]
    return ""
