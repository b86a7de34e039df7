"""The HTTP side: routes, the request pipeline (client header, token, org, quota, faults)
and the Tallyfy endpoints. The state lives in :class:`Service`; ``Sandbox`` runs it."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bulk.sandbox._config import Faults, SandboxConfig, check_latency, check_quota
from bulk.sandbox._faults import FaultDice, Quota, proxy_page
from bulk.sandbox._hosts import loopback_hosts_only
from bulk.sandbox._lists import DEFAULT_PER_PAGE, ListShape
from bulk.sandbox._observe import add_observation_routes
from bulk.sandbox._stats import JournalEntry, Stats
from bulk.sandbox._store import Store
from bulk.sandbox._tasks import TaskEndpoints
from bulk.sandbox._writes import Rejected, update_checklist, update_run

log = logging.getLogger("bulk.sandbox")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]



_WRITE_METHODS = ("PUT", "POST", "PATCH", "DELETE")


def _journaled(raw: bytes) -> Any:
    """A request body as the journal keeps it: parsed JSON, else the text as received."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


def endpoint_not_found() -> web.Response:
    return _json(404, {"error": True, "message": "API endpoint not found",
                       "code": "ENDPOINT_NOT_FOUND"})


def _resource_not_found() -> web.Response:
    return _json(404, {"error": True, "message": "Resource not found",
                       "code": "RESOURCE_NOT_FOUND"})


def _forbidden(message: str = "You do not have permission to access this resource.",
               ) -> web.Response:
    return _json(403, {"error": True, "message": message})


def _unprocessable(errors: dict[str, list[str]]) -> web.Response:
    return _json(422, {"error": True, "errors": errors})


class _BadRequest(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest(_json(400, {"error": True,
                                      "message": "The request body is not valid JSON."})) from None
    if not isinstance(body, dict):
        raise _BadRequest(_unprocessable({"body": ["The request body must be a JSON object."]}))
    return body


def _int_param(query: Any, name: str, default: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(_unprocessable(
            {name: [f"The {name.replace('_', ' ')} must be an integer."]})) from None


def _id_set(query: Any, name: str) -> set[int] | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return {int(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise _BadRequest(_unprocessable(
            {name: [f"The {name} must be comma-separated user ids."]})) from None


def _flag(query: Any, name: str) -> bool | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    return value.lower() in ("1", "true", "yes")


class Service:
    """The state of one sandbox and everything it answers."""

    def __init__(self, org: dict[str, Any], token: str, config: SandboxConfig) -> None:
        self.org = org  # as loaded, kept for reset_data()
        self.store = Store(org)
        self.token = token
        self.allow_remote = config.allow_remote
        self.stats = Stats(config.journal_size)
        self.faults: Faults = config.faults
        self.latency_ms = config.latency_ms
        self.jitter_ms = config.jitter_ms
        self.forbidden: set[str] = set()
        self.clock = config.clock
        self.quota: Quota | None = None
        self.retry_after = config.retry_after
        self.rate_headers = config.rate_headers
        #: The quota's (limit, remaining) as counted on a request's arrival, by id(request),
        #: until its answer carries them.
        self._quota_told: dict[int, tuple[int, int]] = {}
        self.set_rate_limit(config.rate_limit, config.burst)
        self.dice = FaultDice(config.seed)
        self.closing = asyncio.Event()
        self.sleep = config.sleep or self._sleep_unless_closing
        self._seq = 0
        self.form_fields_shape = config.form_fields_shape
        self.tasks = TaskEndpoints(self)
        #: Hold each answer to a GET of one record this long after reading the record
        #: (a slow network or server: what it shows is older than its arrival says).
        self.hold_read_ms = config.hold_read_ms
        #: List shapes (see ListShape) and moves between pages while a list is paged.
        self.lists = ListShape(max_per_page=config.max_per_page,
                               total_pages_per=config.total_pages_per)

    # What the task endpoints (_tasks.py) use of this module.
    json = staticmethod(_json)
    not_found = staticmethod(_resource_not_found)
    forbidden_answer = staticmethod(_forbidden)
    bad_request = _BadRequest
    body = staticmethod(_json_body)
    id_set = staticmethod(_id_set)

    def page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        return self._page(request, items)

    # ------------------------------------------------------------------ settings

    def set_rate_limit(self, rate_limit: float | None, burst: float | None = None) -> None:
        check_quota(rate_limit, burst)
        self.quota = Quota(rate_limit, burst, self.clock) if rate_limit else None

    def set_latency(self, latency_ms: float, jitter_ms: float) -> None:
        check_latency(latency_ms, jitter_ms)
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms

    def settings(self) -> dict[str, Any]:
        return {
            "faults": self.faults.to_dict(),
            "rate_limit": self.quota.rate if self.quota else None,
            "burst": self.quota.burst if self.quota else None,
            "rate_headers": self.rate_headers,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
        }

    def reset_stats(self) -> None:
        self.stats.reset()
        self.dice.restart()

    def reset_data(self) -> None:
        self.store.load(self.org)
        self.forbidden.clear()

    async def _sleep_unless_closing(self, seconds: float) -> None:
        # A stopping sandbox cuts its waits short, so a 35 s "slow" answer never holds up
        # the end of a test.
        try:
            await asyncio.wait_for(self.closing.wait(), seconds)
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ routes

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[loopback_hosts_only(any_ip=self.allow_remote)])
        router = app.router
        for prefix in ("/api", ""):
            base = prefix + "/organizations/{org}"
            router.add_get(base + "/runs", self._api(self.list_runs))
            router.add_get(base + "/runs/{record_id}", self._api(self.get_run))
            router.add_put(base + "/runs/{record_id}", self._api(self.put_run))
            router.add_get(base + "/checklists", self._api(self.list_checklists))
            router.add_get(base + "/checklists/{record_id}", self._api(self.get_checklist))
            router.add_put(base + "/checklists/{record_id}", self._api(self.put_checklist))
            router.add_get(base + "/checklists/{record_id}/form-fields",
                           self._api(self.get_form_fields))
            self.tasks.add_routes(router, base, self._api)
            router.add_get(base + "/users", self._api(self.list_users))
        add_observation_routes(router, self)
        # Last, so it only sees what nothing else matched (wrong methods included).
        router.add_route("*", "/{tail:.*}", self._api(None))
        return app

    def _api(self, handler: Handler | None) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, handler)

        return serve

    # ------------------------------------------------------------------ the pipeline

    async def _serve(self, request: web.Request, handler: Handler | None) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_concurrency:
            stats.peak_concurrency = stats.in_flight
        self._seq += 1
        request_id = f"sbx-{self._seq:08x}"
        arrived = self.clock()
        body = None
        try:
            if request.method in _WRITE_METHODS and request.can_read_body:
                body = _journaled(await request.read())
            response, fault = await self._answer(request, handler)
        except _BadRequest as exc:
            response, fault = exc.response, None
        except Exception:
            log.exception("sandbox bug answering %s %s", request.method, request.path)
            response, fault = _json(500, {"error": True, "message": "sandbox internal error"}), None
        finally:
            stats.in_flight -= 1
        status = None if fault == "drop" else response.status
        stats.statuses[status] += 1
        if fault is not None:
            stats.faults[fault] += 1
        stats.journal.append(
            JournalEntry(arrived, request.method, request.path, status, request_id, fault, body))
        response.headers["X-Request-Id"] = request_id
        told = self._quota_told.pop(id(request), None)
        if told is not None:
            response.headers["X-RateLimit-Limit"] = str(told[0])
            response.headers["X-RateLimit-Remaining"] = str(told[1])
        return response

    async def _answer(self, request: web.Request,
                      handler: Handler | None) -> tuple[web.StreamResponse, str | None]:
        if handler is None:
            return endpoint_not_found(), None
        headers = request.headers
        # Production answers a request without this header as if the endpoint did not exist.
        if "X-Tallyfy-Client" not in headers:
            return endpoint_not_found(), None
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.token:
            return _json(401, {"error": True, "message": "Unauthenticated."}), None
        if request.match_info.get("org") != self.store.org_id:
            return _forbidden("You do not have access to this organization."), None
        quota = self.quota
        if quota is not None:
            wait = quota.take(self.token)
            if self.rate_headers:  # counted on arrival, told with the answer (see _serve)
                self._quota_told[id(request)] = (quota.limit, quota.remaining(self.token))
            if wait:
                self.stats.rate_limited += 1
                response = _json(429, {"message": "Too many requests. Please slow down.",
                                       "code": "RATE_LIMIT_EXCEEDED"})
                mode = self.retry_after
                if mode == "always" or (mode == "sometimes" and self.stats.rate_limited % 2):
                    response.headers["Retry-After"] = str(wait)
                if self.rate_headers:
                    reset = time.time() + quota.seconds_to_next(self.token)
                    response.headers["X-RateLimit-Reset"] = str(math.ceil(reset))
                return response, "rate_limited"
        path = request.path
        if path.startswith("/api/"):
            path = path[4:]  # both prefixes share one fault sequence per record
        if self.hold_read_ms and request.method == "GET" and request.match_info.get("record_id"):
            handler = self._held(handler)
        fate = self.dice.fate(request.method, path, self.faults, self.latency_ms, self.jitter_ms)
        if fate is None:
            return await handler(request), None
        if fate.delay:
            await self.sleep(fate.delay)
        if fate.drop:
            # No answer at all: the client sees the connection close. aiohttp then fails to
            # write the response below, which it treats as a client that went away (quietly).
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500), "drop"
        if fate.error_status is not None:
            return web.Response(status=fate.error_status, text=proxy_page(fate.error_status),
                                content_type="text/html"), "error"
        if fate.unapplied_200:
            found = self._unapplied_answer(request)
            if found is not None:
                return found, "unapplied_200"
        response = await handler(request)
        if fate.applied_503 and response.status == 200:
            return web.Response(status=503, text=proxy_page(503),
                                content_type="text/html"), "applied_503"
        if fate.slow:
            await self.sleep(fate.slow)  # a PUT is already applied: the client gives up late
            return response, "slow"
        return response, None

    def _unapplied_answer(self, request: web.Request) -> web.Response | None:
        """200 with the record as it is, the write not applied (None: let the handler answer,
        e.g. a 404 or 403, as it would without the fault)."""
        info = request.match_info
        record_id = info.get("task_id") or info.get("record_id") or ""
        found = self.store.record(record_id)
        if found is None or record_id in self.forbidden:
            return None
        return _json(200, {"data": found[1]})

    def _held(self, handler: Handler) -> Handler:
        async def held(request: web.Request) -> web.StreamResponse:
            response = await handler(request)  # the record as it is now, serialized
            await self.sleep(self.hold_read_ms / 1000.0)
            return response

        return held

    # ------------------------------------------------------------------ one record

    def _lookup(self, request: web.Request,
                records: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        record_id = request.match_info["record_id"]
        record = records.get(record_id)
        if record is None:
            raise _BadRequest(_resource_not_found())
        if record_id in self.forbidden:
            raise _BadRequest(_forbidden())
        return record_id, record

    async def get_run(self, request: web.Request) -> web.Response:
        return _json(200, {"data": self._lookup(request, self.store.runs)[1]})

    async def get_checklist(self, request: web.Request) -> web.Response:
        return _json(200, {"data": self._lookup(request, self.store.checklists)[1]})

    async def get_form_fields(self, request: web.Request) -> web.Response:
        record_id, checklist = self._lookup(request, self.store.checklists)
        return _json(200, {"data": {
            "id": record_id, "title": checklist.get("title"), "form_fields": [],
            "ko_form_fields": self.store.kickoff_fields.get(record_id, []),
        }})

    async def put_run(self, request: web.Request) -> web.Response:
        return await self._put(request, self.store.runs, update_run)

    async def put_checklist(self, request: web.Request) -> web.Response:
        return await self._put(request, self.store.checklists, update_checklist)

    async def _put(self, request: web.Request, records: dict[str, dict[str, Any]],
                   update: Callable[[Store, dict[str, Any], dict[str, Any]], None]) -> web.Response:
        record_id, record = self._lookup(request, records)
        body = await _json_body(request)
        try:
            update(self.store, record, body)
        except Rejected as exc:
            return _unprocessable(exc.errors)
        self.stats.writes_per_record[record_id] += 1
        return _json(200, {"data": record})

    # ------------------------------------------------------------------ lists

    async def list_runs(self, request: web.Request) -> web.Response:
        query = request.query
        owners = _id_set(query, "owners")
        statuses = set(query["status"].split(",")) if query.get("status") else None
        needle = (query.get("q") or "").lower()
        checklist_id = query.get("checklist_id")
        starred = _flag(query, "starred")
        assignees = self.store.task_assignees
        if owners is statuses is starred is None and not needle and not checklist_id:
            # No filter: skip testing each record (a 20,000-run org is paged 200 times).
            return self._page(request, list(self.store.runs.values()))
        # As on production, owners= matches the owner, any member OR any task assignee.
        items = [
            run for run in self.store.runs.values()
            if (owners is None or run.get("owner_id") in owners
                or not owners.isdisjoint(run.get("users") or ())
                or not owners.isdisjoint(assignees.get(run["id"], ())))
            and (statuses is None or run.get("status") in statuses)
            and (not needle or needle in (run.get("name") or "").lower())
            and (not checklist_id or run.get("checklist_id") == checklist_id)
            and (starred is None or bool(run.get("starred")) == starred)
        ]
        return self._page(request, items)

    async def list_checklists(self, request: web.Request) -> web.Response:
        query = request.query
        owners = _id_set(query, "owner_id")
        needle = (query.get("q") or "").lower()
        starred = _flag(query, "starred")
        items = [
            checklist for checklist in self.store.checklists.values()
            if (owners is None or checklist.get("owner_id") in owners)
            and (not needle or needle in (checklist.get("title") or "").lower())
            and (starred is None or bool(checklist.get("starred")) == starred)
        ]
        return self._page(request, items)

    async def list_users(self, request: web.Request) -> web.Response:
        """The organization's members, paged, as production lists them (`bulk` resolves
        emails with it)."""
        items = [{"id": m["id"], "email": m.get("email"), "first_name": m.get("first_name"),
                  "last_name": m.get("last_name"), "full_name": m.get("full_name"),
                  "active": m.get("active", True)}
                 for m in self.store.members.values()]
        return self._page(request, items)

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        query = request.query
        return _json(200, self.lists.page(
            request, items, self.store, asked=_int_param(query, "per_page", DEFAULT_PER_PAGE),
            page=_int_param(query, "page", 1)))
