"""When to stop a job because its rows fail: systematically, or too many of them.

A job whose first rows that reach the server all fail with the same definitive error (an
`owner_id` that is not a member, a field the account may not change) would fail every
row the same way: better to stop after a few and say so once than to record thousands.
Any success disarms this rule for good, as does a different error: rows then fail for
their own reasons. A 404 is a stale id, the row's own problem: it neither counts nor
disarms. `--max-failures N` stops after N failed rows, whatever their errors.
"""

from __future__ import annotations

from bulk.engine.ledger import FAILED, OK, UNCHANGED, Entry

#: The first this-many rows reaching the server failing alike stop the job.
SYSTEMATIC_AFTER = 20

#: Entry.error_kind values.
TRANSIENT = "transient"
DEFINITIVE = "definitive"


class FailureWatch:
    def __init__(self, *, max_failures: int | None = None,
                 systematic_after: int = SYSTEMATIC_AFTER) -> None:
        self.max_failures = max_failures
        self.systematic_after = systematic_after
        self.failures = 0
        self._armed = True
        self._reason: str | None = None
        self._alike = 0

    def verdict(self, entry: Entry, *, again: bool = False) -> str | None:
        """A one-line reason to stop the job after this outcome, or None. `again`: the
        row already failed once in this job (the end pass); it is not counted twice."""
        if entry.status in (OK, UNCHANGED):
            self._armed = False
            return None
        if entry.status != FAILED or again:
            return None
        self.failures += 1
        reason = entry.reason or entry.error or "failed"
        if self._armed and entry.error_kind == DEFINITIVE and entry.http_status != 404:
            if self._reason is None:
                self._reason = reason
            if reason == self._reason:
                self._alike += 1
                if self._alike >= self.systematic_after:
                    return (f"the first {self._alike} rows that reached the server all "
                            f"failed the same way: {reason}")
            else:
                self._armed = False
        if self.max_failures is not None and self.failures >= self.max_failures:
            return (f"{self.failures} rows failed (--max-failures {self.max_failures}); "
                    f"last: {reason}")
        return None
