"""What the benchmark measures, at which sizes, and where the results go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from benchmarks._measure import ApplyRun, Resume, SdkRun

LATENCIES = (0.0, 20.0)
CONCURRENCIES = (32, 8, 64)  # 32 first: the headline figure
SDK_MODES = ("safe", "naive")  # naive last: it wipes members (restored after)


@dataclass(frozen=True)
class Sizes:
    runs: int = 10_000  # runs the sandbox holds (the 1M-row input cycles through them)
    fast_rows: int = 10_000  # bulk apply, no latency
    slow_rows: int = 5_000  # bulk apply, 20 ms (at concurrency 8: 2/5 of it)
    sdk_fast_rows: int = 1_000
    sdk_slow_rows: int = 300
    big_rows: int = 1_000_000
    repeats: int = 3  # each throughput figure is the median of this many runs
    warmup_rows: int = 2_000
    rps_seconds: float = 5.0

    def rows(self, latency_ms: float, concurrency: int) -> int:
        if not latency_ms:
            return self.fast_rows
        return self.slow_rows * 2 // 5 if concurrency < 16 else self.slow_rows

    def sdk_rows(self, latency_ms: float) -> int:
        return self.sdk_slow_rows if latency_ms else self.sdk_fast_rows


FULL = Sizes()
QUICK = Sizes(runs=2_000, fast_rows=2_000, slow_rows=1_000, sdk_fast_rows=200,
              sdk_slow_rows=60, big_rows=50_000, repeats=1, warmup_rows=500, rps_seconds=2.0)


@dataclass
class Results:
    sizes: Sizes
    quick: bool
    started: datetime
    load_before: tuple[float, float, float]
    apply: dict[tuple[float, int], list[ApplyRun]] = field(default_factory=dict)
    sdk: dict[tuple[float, str], list[SdkRun]] = field(default_factory=dict)
    big: ApplyRun | None = None
    resume: Resume | None = None
    sandbox_rss_mb: float | None = None  # the sandbox's RSS after the big job
    rps: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] | None = None  # select throughput and undo (benchmarks/loop.py)
    elapsed: float = 0.0
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quota: list[Any] = field(default_factory=list)  # benchmarks.quota.QuotaResult
