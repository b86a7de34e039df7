"""The Tallyfy HTTP client: read one record, write one record."""

from __future__ import annotations

from typing import Any

import aiohttp

from bulk.engine.breaker import Breaker
from bulk.engine.http import Answer, JsonHttp
from bulk.engine.pacing import Pacer
from bulk.engine.retry import RetryPolicy
from bulk.tallyfy.connection import Connection
from bulk.tallyfy.fields import Target


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

    async def read(self, target: Target, record_id: str, *, attempt: int = 1) -> Answer:
        """GET one run or template; `data` of the answer is the record itself."""
        path = f"{target.path}/{record_id}"
        answer = await self.http.request(
            "GET", self._connection.url(target.path, record_id), path=path, attempt=attempt
        )
        return _unwrap(answer)

    async def write(
        self, target: Target, record_id: str, body: dict[str, Any], *, attempt: int = 1
    ) -> Answer:
        """PUT one run or template with a complete, safe body (see plan.py)."""
        path = f"{target.path}/{record_id}"
        answer = await self.http.request(
            "PUT",
            self._connection.url(target.path, record_id),
            path=path,
            body=body,
            attempt=attempt,
        )
        return _unwrap(answer)


def api_headers(connection: Connection) -> dict[str, str]:
    """What every request carries (never logged: it holds the token)."""
    return {
        "Authorization": f"Bearer {connection.token.reveal()}",
        "Accept": "application/json",
        "X-Tallyfy-Client": "APIClient",
    }


def _unwrap(answer: Answer) -> Answer:
    data = answer.data
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    return Answer(answer.status, data, answer.request_id)
