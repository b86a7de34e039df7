"""What a job did, for the one-line summary and the exit code (see `Job.run`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bulk.engine.exit_codes import ExitCode


@dataclass
class Summary:
    ledger_path: Path
    total: int
    done: Counter[str] = field(default_factory=Counter)  # outcomes recorded by this run
    skipped: int = 0  # rows already finished by an earlier run
    settled: int = 0  # in-doubt rows from an earlier run that this run settled
    read_back: int = 0  # rows `ok` because a read after the write showed it landed
    ledger_counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    requests: int = 0  # HTTP requests sent by this run
    dry_run: bool = False  # nothing was written: `ok` means "would be written"
    second_chance: int = 0  # rows tried again in the end-of-job pass
    interrupted: bool = False
    aborted: str | None = None
    #: How the job stopped, for its history: "Ctrl-C", "signal SIGTERM", "outage",
    #: "failure stop"... (None: it ran to its end).
    stopped_by: str | None = None
    rate_limited: int = 0  # 429s met
    pauses: int = 0  # shared pauses they imposed
    outage_seconds: float = 0.0  # the API unreachable, every worker waiting
    kept_ledger: Path | None = None  # a fresh start kept the previous ledger here

    @property
    def exit_code(self) -> ExitCode:
        if self.aborted:
            return ExitCode.ABORTED
        if self.interrupted:
            return ExitCode.INTERRUPTED
        unfinished = ("failed", "invalid", "in_doubt", "pending", "conflict")
        if any(self.ledger_counts.get(name) for name in unfinished):
            return ExitCode.ROWS_FAILED
        return ExitCode.OK

    @property
    def outcome(self) -> str:
        if self.aborted:
            return "aborted"
        return "interrupted" if self.interrupted else "done"

    def line(self) -> str:
        """One line with counts, elapsed time and the ledger path."""
        head = self.outcome
        if self.dry_run:
            head = f"dry run {head}, nothing written (ok = would change)"
        counts = self.ledger_counts
        parts = [f"{name} {counts.get(name, 0)}" for name in ("ok", "unchanged", "invalid")]
        if self.read_back:
            parts[0] += f" ({self.read_back} confirmed by reading back)"
        parts.append(f"failed {counts.get('failed', 0)}")
        if counts.get("conflict"):
            parts.append(f"conflict {counts['conflict']}")
        left = counts.get("in_doubt", 0) + counts.get("pending", 0)
        left += self.total - sum(counts.values())
        if left:
            parts.append(f"not done {left}")
        this_run = sum(self.done.values())
        rate = this_run / self.elapsed if self.elapsed > 0 else 0.0
        resumed = f", {self.skipped} skipped as done before" if self.skipped else ""
        settled = f", {self.settled} in-doubt settled" if self.settled else ""
        if self.second_chance:
            settled += f", {self.second_chance} tried again at the end"
        reason = f" ({self.aborted})" if self.aborted else ""
        kept = f" (the previous one kept as {self.kept_ledger})" if self.kept_ledger else ""
        met = ""
        if self.rate_limited or self.pauses or self.outage_seconds:
            met = (f" | met {self.rate_limited} 429s, {self.pauses} pauses, "
                   f"outage {self.outage_seconds:.0f}s")
        return (
            f"{head}{reason}: {self.total} rows: {', '.join(parts)} | "
            f"{this_run} processed in {self.elapsed:.1f}s ({rate:.0f} rows/s){resumed}{settled}"
            f"{met} | ledger {self.ledger_path}{kept}"
        )
