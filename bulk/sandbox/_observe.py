"""``/_sandbox/...``: looking inside the sandbox over HTTP, and turning its knobs.

The real API has no such prefix, so nothing a client sends to Tallyfy can land here. No token
is asked for: the sandbox listens on loopback and its data is made up. These requests are not
counted in the stats, not journaled, and never faulted or rate limited.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from bulk.sandbox._config import Faults, check_latency, check_quota
from bulk.sandbox._stats import Stats
from bulk.sandbox._store import Store


class Service(Protocol):
    """What these routes use of the sandbox's service (`_app.Service`, which imports
    this module: named here as a protocol, so the imports go one way)."""

    stats: Stats
    store: Store
    forbidden: set[str]
    faults: Faults
    latency_ms: float
    jitter_ms: float

    def settings(self) -> dict[str, Any]: ...
    def reset_data(self) -> None: ...
    def reset_stats(self) -> None: ...
    def set_latency(self, latency_ms: float, jitter_ms: float) -> None: ...
    def set_rate_limit(self, rate_limit: float | None, burst: float | None = None) -> None: ...

PREFIX = "/_sandbox"

_ENDPOINTS = {
    f"GET {PREFIX}/stats": "counters: requests, writes per record, 429s, peak concurrency",
    f"GET {PREFIX}/journal?limit=N": "the last requests (method, path, status, time, fault, "
                                     "a write's body)",
    f"GET {PREFIX}/records/{{id}}": "one run or template as stored, with its write count",
    f"PATCH {PREFIX}/records/{{id}}": "edit a record as a person in the web app would "
                                      '(only the given fields, e.g. {"name": "x"})',
    f"GET {PREFIX}/org": "the whole current organization, in the --data file shape "
                         "(without the token)",
    f"GET {PREFIX}/settings": "faults, quota and latency in force",
    f"PUT {PREFIX}/settings": 'change them, e.g. {"faults": {"error_rate": 0.1}, '
                              '"rate_limit": 5}',
    f"POST {PREFIX}/reset": "zero the stats (and restart the fault sequence); "
                            "?data=1 also restores the data as it was at start",
}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload, indent=1),
                        content_type="application/json")


def add_observation_routes(router: web.UrlDispatcher, service: Service) -> None:
    async def index(request: web.Request) -> web.Response:
        return _json({"endpoints": _ENDPOINTS})

    async def stats(request: web.Request) -> web.Response:
        return _json(service.stats.to_dict())

    async def journal(request: web.Request) -> web.Response:
        entries = list(service.stats.journal)
        try:
            limit = int(request.query.get("limit", len(entries)))
        except ValueError:
            return _json({"error": True, "message": "limit must be an integer"}, 400)
        return _json({"data": [e.to_dict() for e in entries[max(0, len(entries) - limit):]]})

    async def record(request: web.Request) -> web.Response:
        record_id = request.match_info["record_id"]
        found = service.store.record(record_id)
        if found is None:
            return _json({"error": True, "message": "Resource not found",
                          "code": "RESOURCE_NOT_FOUND"}, 404)
        kind, data = found
        return _json({"type": kind, "data": data,
                      "writes": service.stats.writes_per_record.get(record_id, 0),
                      "forbidden": record_id in service.forbidden})

    async def edit(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            data = service.store.edit_as_person(request.match_info["record_id"], body)
        except KeyError:
            return _json({"error": True, "message": "Resource not found",
                          "code": "RESOURCE_NOT_FOUND"}, 404)
        except ValueError as exc:
            return _json({"error": True, "message": str(exc)}, 422)
        return _json({"data": data})

    async def org(request: web.Request) -> web.Response:
        # Without the token: anything on this machine can read /_sandbox (no token asked),
        # and a token handed out here would open the API routes to it too.
        org = service.store.to_org()
        org.pop("token", None)
        return _json(org)

    async def get_settings(request: web.Request) -> web.Response:
        return _json(service.settings())

    async def put_settings(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            _apply_settings(service, body)
        except ValueError as exc:
            return _json({"error": True, "message": str(exc)}, 422)
        return _json(service.settings())

    async def reset(request: web.Request) -> web.Response:
        if request.query.get("data", "").lower() in ("1", "true", "yes"):
            service.reset_data()
        service.reset_stats()
        return _json(service.stats.to_dict())

    router.add_get(PREFIX, index)
    router.add_get(PREFIX + "/", index)
    router.add_get(PREFIX + "/stats", stats)
    router.add_get(PREFIX + "/journal", journal)
    router.add_get(PREFIX + "/records/{record_id}", record)
    router.add_patch(PREFIX + "/records/{record_id}", edit)
    router.add_get(PREFIX + "/org", org)
    router.add_get(PREFIX + "/settings", get_settings)
    router.add_put(PREFIX + "/settings", put_settings)
    router.add_post(PREFIX + "/reset", reset)


def _apply_settings(service: Service, body: dict[str, Any]) -> None:
    """All or nothing: every value is checked before any is applied."""
    known = {"faults", "rate_limit", "burst", "latency_ms", "jitter_ms", "rate_headers"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    faults = service.faults
    if "faults" in body:
        if not isinstance(body["faults"], dict):
            raise ValueError("faults must be an object")
        faults = Faults.from_dict(body["faults"], base=service.faults)
    current = service.settings()
    rate = body.get("rate_limit", current["rate_limit"])
    burst = body.get("burst", current["burst"] if "rate_limit" not in body else None)
    latency = body.get("latency_ms", service.latency_ms)
    jitter = body.get("jitter_ms", service.jitter_ms)
    for name, value in (("rate_limit", rate), ("burst", burst), ("latency_ms", latency),
                        ("jitter_ms", jitter)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{name} must be a number")
    if latency is None or jitter is None:
        raise ValueError("latency_ms and jitter_ms must be numbers")
    rate_headers = body.get("rate_headers", service.rate_headers)
    if not isinstance(rate_headers, bool):
        raise ValueError("rate_headers must be true or false")
    check_quota(rate, burst)
    check_latency(latency, jitter)
    service.set_latency(latency, jitter)
    service.set_rate_limit(rate, burst)
    service.rate_headers = rate_headers
    service.faults = faults
