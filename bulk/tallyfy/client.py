"""The Tallyfy HTTP client: read one record, write one record.

A 2xx answer counts only when it shows the record asked for: an object (inside `data`)
whose `id` is that record's, with the fields the caller needs. Anything else (an empty
or HTML body, `{"data": {}}`, another record) proves nothing, and the engine raises
AmbiguousAnswer: a write that got it may or may not have landed, so it is read back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bulk.engine.breaker import Breaker
from bulk.engine.http import Answer, AnswerCheck, JsonHttp
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.targets import Target

#: What every read must show: a PUT is built from both (see plan.py).
READ_NEEDS = ("users", "groups")


def read_needs(target: Target) -> tuple[str, ...]:
    """What a read of this target must show (a task: its whole `owners`)."""
    return target.shown_fields(target.membership) if target.membership_object else READ_NEEDS


class TallyfyClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        connection: Connection,
        pacer: Pacer,
        policy: RetryPolicy,
        *,
        timeout: float = 30.0,
        breaker: Breaker | None = None,
    ) -> None:
        self._connection = connection
        self.http = JsonHttp(
            session,
            pacer,
            policy,
            headers=api_headers(connection),
            timeout=timeout,
            breaker=breaker,
        )

    @property
    def requests(self) -> int:
        """HTTP requests sent so far."""
        return self.http.requests

    async def slot(self) -> None:
        """Wait for a pacer slot now, for a write sent later with ``paced=False``."""
        await self.http.slot()

    async def cooled(self) -> None:
        """Wait out a shared cooldown (a 429) without taking a new slot."""
        await self.http.cooled()

    async def read(self, target: Target, record_id: str, *, attempt: int = 1) -> Answer:
        """GET one record; `data` of the answer is the record itself, seen flat
        (``Target.view``: a task's assignee lists at the top, like a run's)."""
        segments = target.record_path(record_id)
        # A task asks for its form fields in the same read (the ids of empty fields show
        # nowhere else): no second request.
        query = f"?{urlencode(target.read_query)}" if target.read_query else ""
        answer = await self.http.request(
            "GET",
            self._connection.url(*segments) + query,
            path="/".join(segments) + query,
            attempt=attempt,
            check=record_check(target.answer_id(record_id), read_needs(target)),
        )
        return _unwrap(answer, target)

    async def list_page(
        self, target: Target, params: dict[str, str], *, attempt: int = 1,
        segments: tuple[str, ...] | None = None,
    ) -> Answer:
        """GET one page of a list (the target's own, or `segments`'); `data` is the whole
        envelope, its records as the API sent them."""
        path = "/".join(segments or (target.path,))
        url = f"{self._connection.url(path)}?{urlencode(params)}"
        return await self.http.request(
            "GET", url, path=f"{path}?{urlencode(params)}", attempt=attempt
        )

    async def write(
        self,
        target: Target,
        record_id: str,
        body: dict[str, Any],
        *,
        attempt: int = 1,
        expect: Iterable[str] = (),
        paced: bool = True,
    ) -> Answer:
        """PUT one record with a complete, safe body (see plan.py).

        `expect` names the fields the answer must show (the ones the PUT changes);
        ``paced=False`` when the caller already holds a pacer slot.
        """
        segments = target.record_path(record_id)
        answer = await self.http.request(
            "PUT",
            self._connection.url(*segments),
            path="/".join(segments),
            body=body,
            attempt=attempt,
            check=record_check(target.answer_id(record_id), target.shown_fields(list(expect)),
                               target=target),
            paced=paced,
        )
        return _unwrap(answer, target)


def api_headers(connection: Connection) -> dict[str, str]:
    """What every request carries (never logged: it holds the token)."""
    return {
        "Authorization": f"Bearer {connection.token.reveal()}",
        "Accept": "application/json",
        "X-Tallyfy-Client": "APIClient",
    }


def record_check(record_id: str, needs: tuple[str, ...], *,
                 target: Target | None = None) -> AnswerCheck:
    """A check that the answer is the record `record_id`, showing each field of `needs`
    (for a write's answer, as ``target.not_shown`` decides it)."""

    def check(data: Any) -> str | None:
        if data is None or data == "":
            return "an empty body"
        if isinstance(data, str):
            return "a body that is not JSON"
        record = _record(data)
        if not isinstance(record, dict) or not record:
            return "no record in the answer"
        if str(record.get("id", "")).strip().lower() != record_id:
            return "the answer is another record" if "id" in record else "a record without an id"
        if target is None:
            missing = [name for name in needs if record.get(name) is None]
        else:
            missing = target.not_shown(record, needs)
            if any(name in target.unechoed for name in missing):
                return (f"the answer cannot show {', '.join(missing)} (a {target.name[:-1]} "
                        "write's answer never does); read back")
        if missing:
            return f"the record lacks {', '.join(missing)}"
        return None

    return check


def _record(data: Any) -> Any:
    if isinstance(data, dict) and "data" in data:
        return data["data"]
    return data


def _unwrap(answer: Answer, target: Target) -> Answer:
    data = answer.data
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    return Answer(answer.status, target.view(data), answer.request_id, answer.sent_at)
