"""Errors are data: every way a request can end badly is a RequestError carrying the
request (method and path, never a header), the server's request id and whether an outage
refused it, and names the request the same way."""

from __future__ import annotations

import pytest

from bulk.engine.errors import (
    AmbiguousAnswer,
    AuthError,
    HttpError,
    RedirectRefused,
    RequestError,
    StaleRead,
    TransportError,
    request_suffix,
)
from bulk.engine.retry import spends_attempt

WHERE = {"method": "PUT", "path": "runs/abc"}
ERRORS = [
    (HttpError(503, {"message": "down"}, request_id="r1", **WHERE), "HTTP 503: down"),
    (AuthError(401, None, request_id="r1", **WHERE), "HTTP 401"),
    (RedirectRefused(302, "elsewhere.example", request_id="r1", **WHERE),
     "HTTP 302: redirect to elsewhere.example, not followed"),
    (AmbiguousAnswer(200, "an empty body", request_id="r1", **WHERE),
     "HTTP 200 without the record: an empty body"),
    (TransportError("timed out waiting for the server", **WHERE),
     "timed out waiting for the server"),
    (StaleRead("read again", **WHERE), "read again"),
]


@pytest.mark.parametrize(("error", "what"), ERRORS, ids=[type(e).__name__ for e, _ in ERRORS])
def test_every_request_error_names_its_request_one_way(error, what):
    assert isinstance(error, RequestError)
    assert (error.method, error.path) == ("PUT", "runs/abc")
    assert str(error) == error.describe() == f"{what} (PUT runs/abc)"
    assert error.outage is False


def test_without_a_request_there_is_no_suffix():
    assert request_suffix("", "") == ""
    assert str(HttpError(500)) == "HTTP 500"


def test_an_error_refused_by_an_outage_spends_no_attempt():
    assert spends_attempt(StaleRead("x")) is True
    assert spends_attempt(StaleRead("x", outage=True)) is False
    error = TransportError("dropped")
    error.outage = True  # the breaker's verdict, set where the failure is seen
    assert spends_attempt(error) is False
