"""A job's requests against the sandbox's own quota model, in the event loop's time.

Workers take a slot from the pacer, spend a round trip, and ask the sandbox's `Quota`
(the token bucket the sandbox answers 429 from) whether the request got through. Run
under looptime, 60 s of job take a fraction of a second and are exact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bulk.engine.pacing import Pacer
from bulk.sandbox._faults import Quota

START = 10.0  # as `bulk apply` starts: at the default pace, whatever the ceiling


@dataclass
class QuotaRun:
    quota: float
    seconds: float
    accepted: int = 0
    refused: int = 0
    #: (time, accepted so far) once a second, for "time to settle".
    timeline: list[tuple[float, int]] = field(default_factory=list)
    pauses: int = 0
    pacer: Pacer | None = None

    @property
    def utilization(self) -> float:
        return self.accepted / (self.quota * self.seconds)

    @property
    def refused_share(self) -> float:
        return self.refused / max(1, self.accepted + self.refused)

    def settled_after(self, share: float = 0.9) -> float:
        """Seconds until the first whole second that got at least share * quota."""
        before = 0
        for second, accepted in self.timeline:
            if accepted - before >= share * self.quota:
                return second
            before = accepted
        return self.seconds


async def run_against_quota(
    quota: float,
    *,
    rate: float | None,
    retry_after: str = "always",
    seconds: float = 60.0,
    workers: int = 16,
    latency: float = 0.02,
    headers: bool = False,
) -> QuotaRun:
    """`rate=None` is `--rate auto`. `retry_after`: "always", "sometimes" (every other
    429 has none) or "never". `headers`: every answer tells the pacer the bucket's
    X-RateLimit-Limit and -Remaining, as the sandbox's answers do."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    bucket = Quota(quota, None, loop.time)
    pacer = Pacer(rate or 10.0, burst=2, auto=rate is None, start=START)
    run = QuotaRun(quota, seconds, pacer=pacer)
    end = start + seconds

    async def worker() -> None:
        while True:
            sent = await pacer.acquire()
            if sent >= end:
                return
            wait = bucket.take("token")
            left = bucket.remaining("token")  # counted on arrival, told with the answer
            await asyncio.sleep(latency)
            if wait:
                run.refused += 1
                given = {"always": True, "never": False}.get(retry_after, run.refused % 2 == 0)
                pacer.refused(float(wait) if given else None, sent)
            else:
                run.accepted += 1
                pacer.accepted(sent)
            if headers:
                pacer.observe(bucket.limit, left)

    async def ticker() -> None:
        for second in range(1, int(seconds) + 1):
            await asyncio.sleep(start + second - loop.time())
            run.timeline.append((float(second), run.accepted))

    await asyncio.gather(ticker(), *(worker() for _ in range(workers)))
    run.pauses = pacer.pauses
    return run
