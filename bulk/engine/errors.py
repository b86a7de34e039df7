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


class HttpError(Exception):
    """The server answered with a status that is not a success."""

    #: Set when it came during an outage the breaker declared (spends no attempt).
    outage: bool = False

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
        self.request_id = request_id
        self.method = method
        self.path = path
        super().__init__(self.describe())

    def describe(self) -> str:
        """A one-line message: status, the server's own message if any, the request."""
        detail = _body_message(self.body)
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"HTTP {self.status}{': ' + detail if detail else ''}{where}"


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

    def describe(self) -> str:
        """Status and where it pointed; a redirect is never followed."""
        where = f" ({self.method} {self.path})" if self.method else ""
        if self.location_host is None:
            target = "without a Location"
        else:
            target = f"to {self.location_host}"
        return f"HTTP {self.status}: redirect {target}, not followed{where}"


class AmbiguousAnswer(Exception):
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
        self.request_id = request_id
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"HTTP {status} without the record: {reason}{where}")


class StaleRead(Exception):
    """The data a write was built from kept aging past its limit before it could leave.

    Nothing was sent on its account; another attempt reads again.
    """


class StopJob(Exception):
    """Every later row would fail the same way (the API is down, every row is refused
    alike): the job stops, rows not done stay pending, exit 3. The message is one line."""


class TransportError(Exception):
    """No usable answer: connection refused or dropped, timeout, unreadable body.

    Whether a write was applied is unknown, so a write that ends here is in doubt.
    """

    #: Set when it came during an outage the breaker declared (spends no attempt).
    outage: bool = False

    def __init__(self, message: str, *, method: str = "", path: str = "",
                 sent: bool = True) -> None:
        self.method = method
        self.path = path
        #: False when no byte of the request left (no connection was made): a write
        #: that ends so is not in doubt. True whenever it cannot be told.
        self.sent = sent
        super().__init__(f"{message}{f' ({method} {path})' if method else ''}")


def _body_message(body: Any) -> str:
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
